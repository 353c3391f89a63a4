// vlm serve as a program: the built binary is started on a free port over the tiny finished run of the
// vlm_cli_tests fixture, and every endpoint's answer is checked against the library called directly (same letters,
// same probabilities, same generated strings for a seed), alone and under concurrent (batched) load; every kind of
// bad input is a 4xx with a JSON message and the server keeps serving; overload is a 503 with Retry-After; SIGTERM
// and SIGINT stop it with exit status 0.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <ATen/ATen.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "test_helpers.h"
#include "vlm/core/runtime.h"
#include "vlm/data/datasets.h"
#include "vlm/data/mnist.h"
#include "vlm/engine/engine.h"
#include "vlm/eval/classify.h"
#include "vlm/eval/generation_metrics.h"
#include "vlm/io/image_decode.h"
#include "vlm/io/png.h"
#include "vlm/models/image_classifier.h"
#include "vlm/models/gpt_checkpoint.h"
#include "vlm/pipeline/pipeline.h"
#include "vlm/serve/requests.h"
#include "vlm/tokenizer/image_token_codec.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const std::string kRun = std::string(VLM_CLI_FIXTURE_DIR) + "/run";
const std::string kData = std::string(VLM_CLI_FIXTURE_DIR) + "/data";

// A `vlm serve` process on a free port; the destructor kills it if a test did not stop it.
class ServerProcess {
 public:
  explicit ServerProcess(const std::vector<std::string>& extra = {}, const std::string& run = kRun) {
    REQUIRE(fs::exists(run + "/report.md"));  // kRun: made by vlm_cli_tests:fixture
    log_ = dir_.file("serve.log");
    std::vector<std::string> args = {VLM_CLI_PATH, "serve", "--run_dir=" + run, "--port=0", "--threads=1"};
    args.insert(args.end(), extra.begin(), extra.end());
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      const int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    const std::regex listening("listening on http://127\\.0\\.0\\.1:([0-9]+)/");
    for (int i = 0; i < 1200 && port_ == 0; ++i) {
      std::smatch m;
      const std::string out = log();
      if (std::regex_search(out, m, listening)) port_ = std::stoi(m[1]);
      int status = 0;
      if (port_ == 0 && ::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        FAIL("vlm serve exited before listening:\n" << out);
      }
      if (port_ == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    REQUIRE(port_ > 0);
  }
  ~ServerProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  int port() const { return port_; }
  std::string log() const { return vlm::testing::read_text(log_); }
  httplib::Client client() const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(60);
    return c;
  }
  /// Sends `sig` and returns the exit status (-1 if it did not exit normally within 30 s).
  int stop(int sig = SIGTERM) {
    ::kill(pid_, sig);
    int status = 0;
    for (int i = 0; i < 600; ++i) {
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return -1;
  }

 private:
  vlm::testing::TempDir dir_;
  std::string log_;
  pid_t pid_ = -1;
  int port_ = 0;
};

// The library, called directly on the same run, with the runtime the server gives itself (vlm::init_runtime with
// --threads=1: the same BLAS kernels, denormals flushed), so that both compute the same floats.
struct Library {
  vlm::RuntimeInfo runtime = vlm::init_runtime({1});
  vlm::ImageTokenCodec codec = vlm::ImageTokenCodec::load(vlm::RunPaths::of(kRun).vqvae);
  vlm::LoadedGPT gpt = vlm::load_gpt_checkpoint(vlm::RunPaths::of(kRun).gpt);
  vlm::ImageClassifier classifier = vlm::load_image_classifier(vlm::RunPaths::of(kRun).classifier, at::kCPU);
  vlm::TrainTest data = vlm::load_mnist(kData, 0, 50);

  at::Tensor image(int64_t i) const { return data.test.images[i]; }  // (1, 28, 28) in [0, 1]
  at::Tensor probabilities(const std::string& letters) {
    const auto& f = gpt.format;
    vlm::Record r{f.template_ending_with(f.first_label_field()), std::vector<std::string>(f.num_fields())};
    r.values[f.first_codec_field()] = letters;
    return vlm::classify_exact(gpt.model, gpt.tokenizer, f, {r}).probs[0];
  }
  vlm::Generation generate(int64_t cls, int64_t n, double temperature, int64_t top_k, uint64_t seed) {
    const auto& f = gpt.format;
    return vlm::generate_per_class(gpt.model, gpt.tokenizer, f, f.first_codec_field(), f.first_label_field(), n,
                                   vlm::SamplerOptions().temperature(temperature).top_k(top_k).seed(seed), true, cls);
  }
};

Library& library() {
  static Library lib;
  return lib;
}

json pixels_body(const at::Tensor& image, bool reconstruction = false) {
  auto flat = image.contiguous().view({-1});
  std::vector<double> values(flat.data_ptr<float>(), flat.data_ptr<float>() + flat.numel());
  json j = {{"pixels", values}};
  if (reconstruction) j["reconstruction"] = true;
  return j;
}

std::string png_of(const at::Tensor& image) {  // (1, H, W) float -> PNG bytes, as write_png rounds
  auto bytes = (image.clamp(0, 1) * 255).round().to(at::kByte).contiguous();
  return vlm::encode_png(bytes.data_ptr<uint8_t>(), static_cast<int>(image.size(2)), static_cast<int>(image.size(1)), 1);
}

// A data URL's PNG -> its 8-bit pixels.
std::vector<uint8_t> pixels_of_data_url(const std::string& url) {
  const std::string prefix = "data:image/png;base64,";
  REQUIRE(url.rfind(prefix, 0) == 0);
  const std::string png = vlm::base64_decode(url.substr(prefix.size()));
  return vlm::decode_image_gray(reinterpret_cast<const uint8_t*>(png.data()), png.size(), "response").pixels;
}

std::vector<uint8_t> pixels_of(const at::Tensor& image) {
  auto bytes = (image.clamp(0, 1) * 255).round().to(at::kByte).contiguous();
  return std::vector<uint8_t>(bytes.data_ptr<uint8_t>(), bytes.data_ptr<uint8_t>() + bytes.numel());
}

json post(httplib::Client& c, const std::string& path, const json& body, int expected_status = 200) {
  auto r = c.Post(path.c_str(), body.dump(), "application/json");
  REQUIRE(r);
  INFO(path << " " << body.dump().substr(0, 200) << " -> " << r->status << " " << r->body.substr(0, 400));
  REQUIRE(r->status == expected_status);
  REQUIRE(r->get_header_value("Content-Type") == "application/json");
  return json::parse(r->body);
}

// exact: the same float, bit for bit (a request alone is a batch of one for the server and for the library); in a
// batch, OpenBLAS's matrix products round a row differently depending on the rows around it (up to ~1e-7 here).
void check_classify(const json& got, int64_t index, double tolerance = 0) {
  auto& lib = library();
  const std::string letters = lib.codec.encode_text_one(lib.image(index));
  CHECK(got["letters"] == letters);
  auto probs = lib.probabilities(letters);
  REQUIRE(got["probabilities"].size() == static_cast<size_t>(probs.size(0)));
  for (int64_t c = 0; c < probs.size(0); ++c)
    CHECK(std::abs(got["probabilities"][c].get<float>() - probs[c].item<float>()) <= tolerance);
  const auto& words = lib.gpt.format.field(lib.gpt.format.first_label_field()).words;
  CHECK(got["prediction"] == words[probs.argmax().item<int64_t>()]);
}

void check_generate(const json& got, int64_t cls, int64_t n, double temperature, int64_t top_k, uint64_t seed) {
  auto& lib = library();
  auto g = lib.generate(cls, n, temperature, top_k, seed);
  REQUIRE(got["samples"].size() == static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const auto& s = got["samples"][i];
    INFO("sample " << i << " of class " << cls << " seed " << seed);
    CHECK(s["letters"] == g.values[cls][i]);
    CHECK(s["completion"] == g.completions[cls][i]);
    if (g.values[cls][i].empty()) continue;
    auto image = lib.codec.decode_text_one(g.values[cls][i]);
    CHECK(pixels_of_data_url(s["image"].get<std::string>()) == pixels_of(image));
    auto ref = vlm::classifier_probabilities(lib.classifier, image.unsqueeze(0))[0];
    const auto& words = lib.gpt.format.field(lib.gpt.format.first_label_field()).words;
    CHECK(s["reference"]["label"] == words[ref.argmax().item<int64_t>()]);
  }
}

}  // namespace

TEST_CASE("vlm serve: health, info and the page", "[serve]") {
  ServerProcess server;
  auto c = server.client();
  auto health = c.Get("/api/health");
  REQUIRE(health);
  CHECK(health->status == 200);
  CHECK(json::parse(health->body)["status"] == "ok");
  auto info_r = c.Get("/api/info");
  REQUIRE(info_r);
  REQUIRE(info_r->status == 200);
  auto info = json::parse(info_r->body);
  auto& lib = library();
  CHECK(info["vocabulary"] == lib.gpt.tokenizer.chars());
  CHECK(info["labels"] == lib.gpt.format.field(lib.gpt.format.first_label_field()).words);
  CHECK(info["tokenizer"]["alphabet"] == lib.codec.alphabet());
  CHECK(info["tokenizer"]["letters_per_image"] == lib.codec.codes_per_image());
  CHECK(info["gpt"]["options"]["n_layer"] == lib.gpt.model->options.n_layer());
  CHECK(info["versions"]["cpp-httplib"].get<std::string>().rfind("0.11", 0) == 0);
  CHECK(info["versions"]["libtorch"].get<std::string>().rfind("1.", 0) == 0);
  for (const char* path : {"/", "/app.js", "/style.css"}) {
    auto r = c.Get(path);
    REQUIRE(r);
    INFO(path);
    CHECK(r->status == 200);
    CHECK(r->body.size() > 100);
  }
  CHECK(c.Get("/")->body.find("<script src=\"/app.js\">") != std::string::npos);
  CHECK(server.stop() == 0);
}

TEST_CASE("vlm serve: classify and encode answer what the library computes, for pixels and PNGs", "[serve]") {
  ServerProcess server;
  auto c = server.client();
  auto& lib = library();
  for (int64_t i = 0; i < 6; ++i) {
    INFO("test image " << i);
    check_classify(post(c, "/api/classify", pixels_body(lib.image(i))), i);
    auto with_recon = post(c, "/api/classify", pixels_body(lib.image(i), true));
    check_classify(with_recon, i);
    const std::string letters = lib.codec.encode_text_one(lib.image(i));
    CHECK(pixels_of_data_url(with_recon["reconstruction"]) == pixels_of(lib.codec.decode_text_one(letters)));
    CHECK(post(c, "/api/encode", pixels_body(lib.image(i)))["letters"] == letters);
  }
  // The same image as a PNG (exact: an MNIST image is 8-bit), raw and as base64 in JSON.
  const std::string png = png_of(lib.image(3));
  auto raw = c.Post("/api/classify", png, "image/png");
  REQUIRE(raw);
  REQUIRE(raw->status == 200);
  check_classify(json::parse(raw->body), 3);
  check_classify(post(c, "/api/classify", {{"png", vlm::base64_encode(png)}}), 3);
  CHECK(post(c, "/api/encode", {{"png", vlm::base64_encode(png)}})["letters"] ==
        lib.codec.encode_text_one(lib.image(3)));
  CHECK(server.stop() == 0);
}

TEST_CASE("vlm serve: decode and generate answer what the library computes", "[serve]") {
  ServerProcess server;
  auto c = server.client();
  auto& lib = library();
  const std::string letters = lib.codec.encode_text_one(lib.image(7));
  auto d = post(c, "/api/decode", {{"letters", letters}});
  CHECK(d["letters"] == letters);
  CHECK(pixels_of_data_url(d["image"]) == pixels_of(lib.codec.decode_text_one(letters)));
  check_generate(post(c, "/api/generate", {{"label", "3"}, {"n", 8}, {"temperature", 0.8}, {"top_k", 5}, {"seed", 42}}),
                 3, 8, 0.8, 5, 42);
  check_generate(post(c, "/api/generate", {{"label", 7}, {"n", 1}, {"seed", 7}}), 7, 1, 1.0, 0, 7);
  auto defaults = post(c, "/api/generate", {{"label", "0"}});
  CHECK(defaults["n"] == 16);
  CHECK(defaults["seed"] == 1337);
  check_generate(defaults, 0, 16, 1.0, 0, 1337);
  CHECK(server.stop() == 0);
}

TEST_CASE("vlm serve: concurrent requests are batched and answer as one at a time", "[serve]") {
  // A long collection window, so that the concurrent requests below do share batches.
  ServerProcess server({"--max_batch=64", "--max_wait_ms=200"});
  auto& lib = library();
  struct Call {
    std::string path;
    json body;
    json answer;
  };
  std::vector<Call> calls;
  for (int64_t i = 0; i < 12; ++i) calls.push_back({"/api/classify", pixels_body(lib.image(i)), {}});
  for (int64_t k = 0; k < 12; ++k)
    calls.push_back({"/api/generate",
                     {{"label", std::to_string(k % 10)}, {"n", 1 + (k % 5) * 3}, {"temperature", 0.5 + 0.1 * k},
                      {"top_k", k % 3 == 0 ? 0 : 3 + k}, {"seed", 100 + k}},
                     {}});
  for (int64_t i = 0; i < 4; ++i) calls.push_back({"/api/decode", {{"letters", lib.codec.encode_text_one(lib.image(i))}}, {}});
  std::vector<std::thread> threads;
  std::vector<int> status(calls.size(), 0);
  for (size_t t = 0; t < calls.size(); ++t)
    threads.emplace_back([&, t] {
      auto c = server.client();
      auto r = c.Post(calls[t].path.c_str(), calls[t].body.dump(), "application/json");
      if (!r) return;
      status[t] = r->status;
      calls[t].answer = json::parse(r->body);
    });
  for (auto& t : threads) t.join();
  for (size_t t = 0; t < calls.size(); ++t) {
    INFO(calls[t].path << " " << calls[t].answer.dump().substr(0, 300));
    REQUIRE(status[t] == 200);
  }
  for (int64_t i = 0; i < 12; ++i) check_classify(calls[i].answer, i, 1e-6);
  for (int64_t k = 0; k < 12; ++k) {
    const auto& b = calls[12 + k].body;
    check_generate(calls[12 + k].answer, k % 10, b["n"], b["temperature"], b["top_k"], b["seed"]);
  }
  for (int64_t i = 0; i < 4; ++i)
    CHECK(pixels_of_data_url(calls[24 + i].answer["image"]) ==
          pixels_of(lib.codec.decode_text_one(lib.codec.encode_text_one(lib.image(i)))));
  auto info = json::parse(server.client().Get("/api/info")->body);
  INFO(info["stats"].dump());
  CHECK(info["stats"]["largest_batch"].get<int64_t>() > 1);  // batching did happen
  CHECK(info["stats"]["requests"].get<int64_t>() == static_cast<int64_t>(calls.size()));
  CHECK(server.stop() == 0);
}

TEST_CASE("vlm serve: bad input is a 4xx with a JSON message and the server keeps serving", "[serve]") {
  ServerProcess server;
  auto c = server.client();
  auto& lib = library();
  struct Bad {
    std::string path, content_type, body;
    int status;
    std::string says;
  };
  auto pixels = pixels_body(lib.image(0));
  auto short_pixels = pixels;
  short_pixels["pixels"].erase(short_pixels["pixels"].begin());
  auto text_pixel = pixels;
  text_pixel["pixels"][5] = "white";
  auto big_pixel = pixels;
  big_pixel["pixels"][5] = 255;
  const std::string png30 = png_of(at::zeros({1, 30, 30}));
  std::vector<uint8_t> rgb(28 * 28 * 3, 100);
  const std::string png_rgb = vlm::encode_png(rgb.data(), 28, 28, 3);
  const std::vector<Bad> cases = {
      {"/api/classify", "application/json", "{\"pixels\": [1, 2", 400, "malformed JSON"},
      {"/api/classify", "application/json", "[1, 2, 3]", 400, "must be a JSON object"},
      {"/api/classify", "application/json", short_pixels.dump(), 400, "783 values, not 784"},
      {"/api/classify", "application/json", text_pixel.dump(), 400, "\"pixels\"[5] is \"white\", not a number"},
      {"/api/classify", "application/json", big_pixel.dump(), 400, "outside [0, 1]"},
      {"/api/classify", "application/json", "{\"pixels\": 3}", 400, "\"pixels\" must be an array"},
      {"/api/classify", "application/json", "{\"image\": [0]}", 400, "unknown key \"image\""},
      {"/api/classify", "application/json", "{}", 400, "give exactly one of \"pixels\" and \"png\""},
      {"/api/classify", "application/json", "{\"png\": \"not base64!\"}", 400, "base64"},
      {"/api/classify", "image/png", png30, 400, "the image is 30x30 pixels"},
      {"/api/classify", "image/png", png_rgb, 400, "3 channels (RGB), not 1 (grayscale)"},
      {"/api/classify", "image/png", "this is text, not a PNG", 400, "cannot read image"},
      {"/api/classify", "image/png", std::string(100 << 10, 'x'), 413, "over the limit of 65536 bytes"},
      {"/api/classify", "application/json", "{\"pixels\": [" + std::string(300 << 10, ' ') + "]}", 413,
       "over the limit of 262144 bytes"},
      {"/api/encode", "application/json", "{\"pixels\": [], \"reconstruction\": true}", 400,
       "unknown key \"reconstruction\""},
      {"/api/generate", "application/json", "{\"n\": 4}", 400, "\"label\" is missing"},
      {"/api/generate", "application/json", "{\"label\": \"x\"}", 400, "\"label\" \"x\" is not a label"},
      {"/api/generate", "application/json", "{\"label\": 12}", 400, "\"label\" = 12 is out of range"},
      {"/api/generate", "application/json", "{\"label\": \"1\", \"n\": 0}", 400, "\"n\" = 0 is out of range"},
      {"/api/generate", "application/json", "{\"label\": \"1\", \"n\": 65}", 400, "\"n\" = 65 is out of range"},
      {"/api/generate", "application/json", "{\"label\": \"1\", \"n\": \"4\"}", 400, "\"n\" must be an integer"},
      {"/api/generate", "application/json", "{\"label\": \"1\", \"n\": 2.5}", 400, "\"n\" must be an integer"},
      {"/api/generate", "application/json", "{\"label\": \"1\", \"top_k\": -1}", 400, "\"top_k\" = -1 is out of range"},
      {"/api/generate", "application/json", "{\"label\": \"1\", \"top_k\": 1000}", 400, "\"top_k\" = 1000 is out of range"},
      {"/api/generate", "application/json", "{\"label\": \"1\", \"temperature\": 0}", 400, "\"temperature\" = 0 is out"},
      {"/api/generate", "application/json", "{\"label\": \"1\", \"temperature\": \"hot\"}", 400, "must be a number"},
      {"/api/generate", "application/json", "{\"label\": \"1\", \"seed\": -1}", 400, "non-negative integer"},
      {"/api/decode", "application/json", "{\"letters\": \"AB1DEFGH\"}", 400, "'1' at position 3"},
      {"/api/decode", "application/json", "{\"letters\": \"ABC\"}", 400, "3 letters, not 8"},
      {"/api/decode", "application/json", "{\"letters\": 12345678}", 400, "\"letters\" must be a string"},
  };
  for (const auto& b : cases) {
    auto r = c.Post(b.path.c_str(), b.body, b.content_type.c_str());
    REQUIRE(r);
    INFO(b.path << " " << b.body.substr(0, 80) << " -> " << r->status << " " << r->body);
    CHECK(r->status == b.status);
    CHECK(r->get_header_value("Content-Type") == "application/json");
    json j = json::parse(r->body, nullptr, false);
    REQUIRE(j.is_object());
    CHECK(j["error"].get<std::string>().find(b.says) != std::string::npos);
    CHECK(j.contains("expected"));
  }
  auto invalid = post(c, "/api/decode", {{"letters", "AB1DEF2H"}}, 400);
  CHECK(invalid["invalid_positions"] == json::array({2, 6}));
  auto unknown = c.Get("/api/nothing");
  REQUIRE(unknown);
  CHECK(unknown->status == 404);
  CHECK(json::parse(unknown->body)["error"] == "no route GET /api/nothing");
  CHECK(json::parse(unknown->body)["expected"].get<std::string>().find("POST /api/classify") != std::string::npos);
  auto method = c.Get("/api/classify");
  REQUIRE(method);
  CHECK(method->status == 405);
  CHECK(json::parse(method->body)["expected"] == "POST /api/classify");
  // Still serving, and still right.
  check_classify(post(c, "/api/classify", pixels_body(lib.image(1))), 1);
  CHECK(server.stop() == 0);
}

TEST_CASE("vlm serve: overload answers 503 with Retry-After instead of queueing without limit", "[serve]") {
  ServerProcess server({"--max_batch=1", "--max_queue=1"});
  constexpr int kClients = 24;
  std::vector<int> status(kClients, 0);
  std::vector<std::string> retry(kClients), body(kClients);
  std::vector<std::thread> threads;
  for (int t = 0; t < kClients; ++t)
    threads.emplace_back([&, t] {
      auto c = server.client();
      const auto t0 = std::chrono::steady_clock::now();
      auto r = c.Post("/api/generate", json{{"label", "1"}, {"n", 64}, {"seed", t}}.dump(), "application/json");
      if (!r) {
        body[t] = "no answer: " + httplib::to_string(r.error()) + " after " +
                  std::to_string(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()) + " s";
        return;
      }
      status[t] = r->status;
      retry[t] = r->get_header_value("Retry-After");
      body[t] = r->body;
    });
  for (auto& t : threads) t.join();
  int ok = 0, refused = 0;
  for (int t = 0; t < kClients; ++t) {
    INFO(status[t] << " " << body[t].substr(0, 200));
    CHECK((status[t] == 200 || status[t] == 503));
    ok += status[t] == 200;
    if (status[t] == 503) {
      ++refused;
      CHECK(retry[t] == "1");
      CHECK(json::parse(body[t])["error"].get<std::string>().find("queue is full") != std::string::npos);
    }
  }
  CHECK(ok >= 1);
  CHECK(refused >= 1);
  auto c = server.client();
  auto health = c.Get("/api/health");
  REQUIRE(health);
  CHECK(health->status == 200);
  CHECK(json::parse(c.Get("/api/info")->body)["stats"]["rejected"] == refused);
  CHECK(server.stop() == 0);
}

TEST_CASE("vlm serve: SIGINT and SIGTERM stop it cleanly", "[serve]") {
  for (int sig : {SIGINT, SIGTERM}) {
    ServerProcess server;
    auto c = server.client();
    REQUIRE(c.Get("/api/health"));
    CHECK(server.stop(sig) == 0);
    const std::string log = server.log();
    INFO(log);
    CHECK(log.find(sig == SIGINT ? "SIGINT received, stopping" : "SIGTERM received, stopping") != std::string::npos);
    CHECK(log.find("vlm serve: stopped") != std::string::npos);
  }
}

TEST_CASE("vlm serve: a missing run or a bad flag is an error naming it", "[serve]") {
  vlm::testing::TempDir dir;
  auto missing = vlm::testing::run_shell(std::string(VLM_CLI_PATH) + " serve --port=0 --run_dir=" + dir.file("none"));
  CHECK(missing.rc != 0);
  CHECK(missing.out.find(dir.file("none")) != std::string::npos);
  auto batch = vlm::testing::run_shell(std::string(VLM_CLI_PATH) + " serve --port=0 --max_batch=0 --run_dir=" + kRun);
  CHECK(batch.rc != 0);
  CHECK(batch.out.find("--max_batch must be at least 1") != std::string::npos);
}


TEST_CASE("vlm serve on a Colored MNIST run: RGB images in and out, classes of two label fields", "[serve][colored]") {
  vlm::testing::TempDir dir;
  const std::string run = dir.file("colored");
  auto made = vlm::testing::run_shell(std::string(VLM_CLI_PATH) + " run --preset=tiny --dataset=colored --threads=1 " +
                                      "--data_dir=" + kData + " --run_dir=" + run);
  INFO(made.out);
  REQUIRE(made.rc == 0);
  ServerProcess server({}, run);
  auto c = server.client();
  auto info = json::parse(c.Get("/api/info")->body);
  CHECK(info["image_channels"] == 3);
  CHECK(info["label_fields"] == json({"colour", "number"}));
  REQUIRE(info["labels"].size() == 40);
  CHECK(info["labels"][27] == "blue 7");

  // What the library computes on the same run: an RGB test image (3, 28, 28) of the data set.
  library();  // the runtime the server gives itself
  auto engine = vlm::Engine::load(run);
  const auto data = vlm::image_dataset("colored").load(kData, 0, 20);
  for (int64_t i = 0; i < 3; ++i) {
    const auto image = data.test.images[i];
    const std::string letters = engine.encode(image.unsqueeze(0))[0];
    auto got = post(c, "/api/classify", pixels_body(image, true));
    CHECK(got["letters"] == letters);
    auto probs = engine.classify({letters})[0];
    REQUIRE(got["probabilities"].size() == 40);
    for (int64_t k = 0; k < 40; ++k) CHECK(std::abs(got["probabilities"][k].get<float>() - probs[k].item<float>()) < 1e-6);
    CHECK(got["prediction"] == engine.words()[probs.argmax().item<int64_t>()]);
    // The reconstruction comes back as an RGB PNG: the decoded image's bytes, channels interleaved.
    const std::string url = got["reconstruction"];
    const std::string png = vlm::base64_decode(url.substr(url.find(',') + 1));
    auto rgb = vlm::decode_image(reinterpret_cast<const uint8_t*>(png.data()), png.size(), "response", 3);
    CHECK(rgb.source_channels == 3);
    auto decoded = engine.decode({letters})[0].permute({1, 2, 0});  // (H, W, 3)
    CHECK(rgb.pixels == pixels_of(decoded));
  }
  // The same image as an RGB PNG; a grey PNG is refused by name.
  auto bytes = (data.test.images[1].clamp(0, 1) * 255).round().to(at::kByte).permute({1, 2, 0}).contiguous();
  const std::string png = vlm::encode_png(bytes.data_ptr<uint8_t>(), 28, 28, 3);
  auto raw = c.Post("/api/classify", png, "image/png");
  REQUIRE(raw);
  CHECK(raw->status == 200);
  CHECK(json::parse(raw->body)["letters"] == engine.encode(data.test.images[1].unsqueeze(0))[0]);
  auto grey = c.Post("/api/classify", png_of(data.test.images[1].narrow(0, 0, 1)), "image/png");
  REQUIRE(grey);
  CHECK(grey->status == 400);
  CHECK(json::parse(grey->body)["error"].get<std::string>().find("not 3 (RGB)") != std::string::npos);
  post(c, "/api/classify", pixels_body(data.test.images[1].narrow(0, 0, 1)), 400);  // 784 values, not 2352

  // Generation conditioned on both fields draws what the engine draws for that class alone, in colour.
  auto gen = post(c, "/api/generate", {{"label", "red 7"}, {"n", 3}, {"seed", 5}});
  auto expected = engine.generate("red 7", 3, 1.0, 0, 5);
  REQUIRE(gen["samples"].size() == 3);
  for (int64_t i = 0; i < 3; ++i) CHECK(gen["samples"][i]["letters"] == expected.letters[i]);
  CHECK(server.stop() == 0);
}
