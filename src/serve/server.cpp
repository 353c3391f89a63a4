#include "vlm/serve/server.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <chrono>
#include <future>
#include <iostream>
#include <thread>

#include <fmt/format.h>
#include <httplib.h>
#include <torch/version.h>

#include "serve/assets.h"
#include "serve/jobs.h"
#include "vlm/core/options.h"
#include "vlm/core/runtime.h"
#include "vlm/io/png.h"
#include "vlm/engine/engine.h"
#include "vlm/serve/requests.h"

#ifndef VLM_VERSION_STRING
#define VLM_VERSION_STRING "unknown"
#endif

namespace vlm {

using serve_detail::Job;
using serve_detail::JobResult;
using serve_detail::Pixels;

void ServerOptions::validate() const {
  batching.validate();
  VLM_CHECK(port >= 0 && port <= 65535, "--port must be in [0, 65535], got ", port);
  VLM_CHECK(http_threads >= 1 && http_threads <= 4096, "--http_threads must be in [1, 4096], got ", http_threads);
  VLM_CHECK(max_body_bytes >= 1024, "--max_body_bytes must be at least 1024, got ", max_body_bytes);
  VLM_CHECK(max_image_bytes >= 64 && max_image_bytes <= max_body_bytes,
            "--max_image_bytes must be in [64, --max_body_bytes], got ", max_image_bytes);
  VLM_CHECK(max_n >= 1 && max_n <= 1024, "--max_n must be in [1, 1024], got ", max_n);
  VLM_CHECK(keep_alive_seconds >= 1, "--keep_alive_seconds must be at least 1, got ", keep_alive_seconds);
}

namespace {

const char* kRoutes =
    "GET /, GET /api/health, GET /api/info, POST /api/classify, POST /api/encode, POST /api/decode, "
    "POST /api/generate";

void set_json(httplib::Response& res, int status, const nlohmann::json& j) {
  res.status = status;
  res.set_content(j.dump(), "application/json");
}

std::string png_data_url(const Pixels& pixels, const RequestLimits& limits) {
  const int size = static_cast<int>(limits.image_size);
  return "data:image/png;base64," +
         base64_encode(encode_png(pixels.data(), size, size, static_cast<int>(limits.image_channels)));
}

// cpp-httplib 0.11 listens with a backlog of 5 (CPPHTTPLIB_LISTEN_BACKLOG, compiled into Debian's library): 64 clients
// connecting at once overflow it and some connections die unanswered. Calling listen() again on the bound socket
// raises the backlog; the subclass reaches the socket.
class HttpServer : public httplib::Server {
 public:
  void raise_backlog() {
    const socket_t sock = svr_sock_;
    VLM_CHECK(sock != INVALID_SOCKET && ::listen(sock, SOMAXCONN) == 0, "vlm serve: listen() failed: ",
              std::strerror(errno));
  }
};

}  // namespace

struct Server::Impl {
  ServerOptions options;
  Engine engine;
  RequestLimits limits;
  ThreadSetting threads = current_threads();
  std::unique_ptr<Batcher<Job>> batcher;
  HttpServer http;
  int port = -1;
  std::atomic<bool> stop_requested{false}, listen_done{false};

  Impl(const ServerOptions& o, c10::Device device) : options(o), engine(Engine::load(o.run_dir, device)) {
    limits.image_size = serve_detail::square_image_size(engine);
    limits.image_channels = engine.item_shape()[0];
    limits.max_image_bytes = options.max_image_bytes;
    limits.max_n = options.max_n;
    limits.max_top_k = engine.tokenizer().vocab_size();
    limits.alphabet = engine.codec().alphabet();
    limits.letters = engine.codec().length();
    limits.words = engine.words();
    batcher = std::make_unique<Batcher<Job>>(
        options.batching, [this](std::vector<Job>& jobs) { serve_detail::run_jobs(engine, jobs); },
        [](Job& job, std::exception_ptr e) { job.fail(e); },
        // LibTorch's OpenMP thread count is per thread: the worker takes the split init_runtime gave main.
        [setting = threads] { apply_threads(setting); });
    routes();
  }

  JobResult submit(Job job) {
    auto reply = job.reply.get_future();
    batcher->submit(std::move(job));
    return reply.get();
  }

  // Runs a handler body; every failure becomes a JSON answer and the server goes on.
  template <class F>
  void respond(httplib::Response& res, F&& body) {
    try {
      set_json(res, 200, body());
    } catch (const HttpError& e) {
      set_json(res, e.status(), e.to_json());
    } catch (const QueueFull& e) {
      res.set_header("Retry-After", "1");
      set_json(res, 503, {{"error", e.what()}, {"expected", "retry after the Retry-After seconds"}});
    } catch (const std::exception& e) {
      set_json(res, 500, {{"error", e.what()}});
    }
  }

  nlohmann::json classify_json(const JobResult& r, bool with_image) {
    nlohmann::json j = {{"letters", r.letters}, {"labels", limits.words}, {"probabilities", r.probabilities}};
    size_t best = 0;
    for (size_t c = 1; c < r.probabilities.size(); ++c)
      if (r.probabilities[c] > r.probabilities[best]) best = c;
    j["prediction"] = limits.words[best];
    j["probability"] = r.probabilities[best];
    if (with_image) j["reconstruction"] = png_data_url(r.image, limits);
    return j;
  }

  nlohmann::json generate_json(const GenerateRequestBody& q, const JobResult& r) {
    nlohmann::json samples = nlohmann::json::array();
    for (size_t i = 0; i < r.generated.letters.size(); ++i) {
      nlohmann::json s = {{"letters", r.generated.letters[i]},
                          {"completion", r.generated.completions[i]},
                          {"valid", !r.generated.letters[i].empty()}};
      if (r.generated.letters[i].empty()) {
        s["image"] = nullptr;
        s["reference"] = nullptr;
      } else {
        s["image"] = png_data_url(r.images[i], limits);
        const auto& g = r.grades[i];
        const size_t best = static_cast<size_t>(std::max_element(g.begin(), g.end()) - g.begin());
        s["reference"] = {{"label", limits.words[best]}, {"probability", g[best]}};
      }
      samples.push_back(std::move(s));
    }
    return {{"label", limits.words[q.label]}, {"n", q.n},           {"temperature", q.temperature},
            {"top_k", q.top_k},               {"seed", q.seed},     {"samples", std::move(samples)}};
  }

  void routes() {
    for (const char* path : {"/", "/index.html", "/app.js", "/style.css"})
      http.Get(path, [path](const httplib::Request&, httplib::Response& res) {
        const auto* asset = serve_detail::find_asset(std::string(path) == "/" ? "/index.html" : path);
        VLM_CHECK(asset, "the page asset ", path, " is not embedded in this binary");
        res.set_header("Cache-Control", "no-cache");
        res.set_content(asset->data, asset->size, asset->content_type);
      });
    http.Get("/api/health", [](const httplib::Request&, httplib::Response& res) {
      set_json(res, 200, {{"status", "ok"}});
    });
    http.Get("/api/info", [this](const httplib::Request&, httplib::Response& res) {
      respond(res, [&] { return info(); });
    });
    http.Post("/api/classify", [this](const httplib::Request& req, httplib::Response& res) {
      respond(res, [&] {
        auto in = parse_image_request(req.body, req.get_header_value("Content-Type"), limits, true);
        Job job;
        job.kind = Job::Kind::kClassify;
        job.pixels = std::move(in.pixels);
        job.reconstruction = in.reconstruction;
        return classify_json(submit(std::move(job)), in.reconstruction);
      });
    });
    http.Post("/api/encode", [this](const httplib::Request& req, httplib::Response& res) {
      respond(res, [&] {
        auto in = parse_image_request(req.body, req.get_header_value("Content-Type"), limits, false);
        Job job;
        job.kind = Job::Kind::kEncode;
        job.pixels = std::move(in.pixels);
        return nlohmann::json{{"letters", submit(std::move(job)).letters}};
      });
    });
    http.Post("/api/decode", [this](const httplib::Request& req, httplib::Response& res) {
      respond(res, [&] {
        Job job;
        job.kind = Job::Kind::kDecode;
        job.letters = parse_decode_request(req.body, limits);
        auto r = submit(std::move(job));
        return nlohmann::json{{"letters", r.letters}, {"image", png_data_url(r.image, limits)}};
      });
    });
    http.Post("/api/generate", [this](const httplib::Request& req, httplib::Response& res) {
      respond(res, [&] {
        auto q = parse_generate_request(req.body, limits);
        Job job;
        job.kind = Job::Kind::kGenerate;
        job.generate = {q.label, q.n, q.temperature, q.top_k, q.seed};
        return generate_json(q, submit(std::move(job)));
      });
    });
    // A known route with the wrong method says which method it takes.
    auto wrong_method = [](const char* method) {
      return [method](const httplib::Request& req, httplib::Response& res) {
        set_json(res, 405, {{"error", fmt::format("{} {} is not served", req.method, req.path)},
                            {"expected", fmt::format("{} {}", method, req.path)}});
      };
    };
    for (const char* path : {"/api/classify", "/api/encode", "/api/decode", "/api/generate"})
      http.Get(path, wrong_method("POST"));
    for (const char* path : {"/api/health", "/api/info"}) http.Post(path, wrong_method("GET"));
    // Last, so that they match only what nothing above did.
    auto no_route = [](const httplib::Request& req, httplib::Response& res) {
      set_json(res, 404, {{"error", fmt::format("no route {} {}", req.method, req.path)}, {"expected", kRoutes}});
    };
    http.Get(".*", no_route).Post(".*", no_route).Put(".*", no_route).Patch(".*", no_route).Delete(".*", no_route);
    http.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req,
                                                                       httplib::Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;  // a JSON answer already
      if (res.status == 404)
        set_json(res, 404, {{"error", fmt::format("no route {} {}", req.method, req.path)}, {"expected", kRoutes}});
      else if (res.status == 413)
        set_json(res, 413, {{"error", fmt::format("the request body is over the limit of {} bytes",
                                                  options.max_body_bytes)},
                            {"expected", fmt::format("a body of at most {} bytes", options.max_body_bytes)}});
      else
        set_json(res, res.status, {{"error", fmt::format("HTTP {} for {} {}", res.status, req.method, req.path)},
                                   {"expected", kRoutes}});
      return httplib::Server::HandlerResponse::Handled;
    }));
    http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        set_json(res, 500, {{"error", e.what()}});
      } catch (...) {
        set_json(res, 500, {{"error", "unknown error"}});
      }
    });
    // Headers and body go out in separate writes: with Nagle's algorithm the body waits for the client's delayed
    // ACK, 40 ms a request (measured: 20 requests/s for one client, the server idle).
    http.set_tcp_nodelay(true);
    http.set_payload_max_length(static_cast<size_t>(options.max_body_bytes));
    http.set_keep_alive_max_count(1u << 30);
    http.set_keep_alive_timeout(static_cast<time_t>(options.keep_alive_seconds));
    http.set_read_timeout(5);
    const size_t n = static_cast<size_t>(options.http_threads);
    http.new_task_queue = [n] { return new httplib::ThreadPool(n); };
  }

  nlohmann::json info() {
    auto j = engine.describe();
    j["image_size"] = limits.image_size;
    j["image_channels"] = limits.image_channels;
    const auto s = batcher->stats();
    j["versions"] = {{"vlm", VLM_VERSION_STRING},
                     {"libtorch", TORCH_VERSION},
                     {"cpp-httplib", CPPHTTPLIB_VERSION},
                     {"compiler", __VERSION__}};
    j["batching"] = options_to_json(options.batching);
    j["stats"] = {{"requests", s.jobs}, {"batches", s.batches}, {"largest_batch", s.largest_batch},
                  {"rejected", s.rejected}};
    j["limits"] = {{"max_body_bytes", options.max_body_bytes},
                   {"max_image_bytes", options.max_image_bytes},
                   {"max_n", options.max_n},
                   {"max_top_k", limits.max_top_k},
                   {"max_temperature", limits.max_temperature}};
    return j;
  }
};

Server::Server(const ServerOptions& options, c10::Device device) {
  options.validate();
  impl_ = std::make_unique<Impl>(options, device);
  auto& http = impl_->http;
  if (options.port == 0) {
    impl_->port = http.bind_to_any_port(options.host);
  } else {
    impl_->port = http.bind_to_port(options.host, static_cast<int>(options.port)) ? static_cast<int>(options.port) : -1;
  }
  VLM_CHECK(impl_->port > 0, "cannot listen on ", options.host, ":", options.port,
            " (is the port in use, or the address not one of this machine's?)");
  http.raise_backlog();
}

Server::~Server() {
  stop();
  if (impl_) impl_->batcher->stop();
}

int Server::port() const { return impl_->port; }

std::string Server::url() const { return fmt::format("http://{}:{}/", impl_->options.host, impl_->port); }

void Server::run() {
  if (!impl_->stop_requested) impl_->http.listen_after_bind();
  impl_->listen_done = true;
  // The HTTP threads are joined: nothing can be submitted any more.
  impl_->batcher->stop();
}

void Server::stop() {
  if (!impl_) return;
  impl_->stop_requested = true;
  impl_->http.stop();  // a no-op until listening has begun: run() checks stop_requested first
}

BatcherStats Server::stats() const { return impl_->batcher->stats(); }

nlohmann::json Server::info() const { return impl_->info(); }

namespace {
int g_signal_pipe[2] = {-1, -1};
extern "C" void on_termination_signal(int sig) {
  const char c = static_cast<char>(sig);
  [[maybe_unused]] auto n = ::write(g_signal_pipe[1], &c, 1);  // async-signal-safe
}
}  // namespace

void Server::run_until_signal() {
  VLM_CHECK(::pipe(g_signal_pipe) == 0, "vlm serve: cannot create a pipe for signal handling");
  struct sigaction action {}, old_int {}, old_term {};
  action.sa_handler = on_termination_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  ::sigaction(SIGINT, &action, &old_int);
  ::sigaction(SIGTERM, &action, &old_term);
  // A handler, not sigwait: OpenBLAS starts its threads before main, with the signals unblocked, so any thread may
  // receive them; the handler only writes to a pipe and this thread does the rest.
  std::thread watcher([this] {
    char c = 0;
    ssize_t n;
    while ((n = ::read(g_signal_pipe[0], &c, 1)) < 0 && errno == EINTR) {
    }
    if (n == 1 && c != 0) {
      std::cout << "vlm serve: " << (c == SIGINT ? "SIGINT" : "SIGTERM") << " received, stopping" << std::endl;
      // Until run() has returned: a signal that lands just as listening begins must still stop it.
      while (!impl_->listen_done) {
        stop();
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
  });
  run();
  const char zero = 0;
  [[maybe_unused]] auto n = ::write(g_signal_pipe[1], &zero, 1);  // wakes the watcher when nothing was received
  watcher.join();
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGTERM, &old_term, nullptr);
  ::close(g_signal_pipe[0]);
  ::close(g_signal_pipe[1]);
  g_signal_pipe[0] = g_signal_pipe[1] = -1;
}

}  // namespace vlm
