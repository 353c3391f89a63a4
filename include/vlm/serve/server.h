#pragma once
// `vlm serve`: the interactive page (web/, embedded in the binary) and the JSON API over one finished run, with
// dynamic batching (vlm/serve/batcher.h). docs/serve.md documents the routes.
//
//   vlm::ServerOptions o;  o.run_dir = "runs/mnist";  o.port = 0;   // 0 = a free port
//   vlm::Server server(o);                 // loads the models, binds the port
//   std::cout << server.url() << "\n";
//   server.run();                          // serves until stop() (any thread) or a signal (run_until_signal)
//
// Threads: the HTTP library's worker threads parse, check, queue, wait and answer; the batcher's single worker
// thread runs every model forward, so LibTorch and OpenBLAS are only ever driven by one thread.
#include <cstdint>
#include <memory>
#include <string>

#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include "vlm/serve/batcher.h"

namespace vlm {

struct ServerOptions {
  std::string run_dir = "runs/mnist";
  std::string host = "127.0.0.1";
  int64_t port = 8080;                  ///< 0 = any free port (printed)
  BatcherOptions batching;
  int64_t http_threads = 128;           ///< connections served at once (each keep-alive client holds one)
  int64_t max_body_bytes = 256 << 10;   ///< larger request bodies: 413
  int64_t max_image_bytes = 64 << 10;   ///< an uploaded PNG
  int64_t max_n = 64;                   ///< images per generate request
  double keep_alive_seconds = 2;        ///< an idle connection is closed after this (and at shutdown)

  template <class V>
  void fields(V& v) {
    v("run_dir", run_dir, "a finished run directory (vlm run)");
    v("host", host, "address to listen on");
    v("port", port, "TCP port (0 = a free one)");
    v("batching", batching, "dynamic batching");
    v("http_threads", http_threads, "HTTP worker threads (concurrent connections)");
    v("max_body_bytes", max_body_bytes, "largest request body accepted");
    v("max_image_bytes", max_image_bytes, "largest uploaded image accepted");
    v("max_n", max_n, "most images one generate request may ask for");
    v("keep_alive_seconds", keep_alive_seconds, "idle keep-alive connections are closed after this");
  }
  void validate() const;
};

class Server {
 public:
  /// Loads the run's models and binds host:port; throws naming what failed (a missing run, a port in use).
  explicit Server(const ServerOptions& options, c10::Device device = c10::kCPU);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  int port() const;         ///< the bound port (the free one chosen for port 0)
  std::string url() const;  ///< http://host:port/
  /// Serves until stop(); then lets the requests in flight finish and stops the batcher.
  void run();
  /// Thread-safe; also safe before run() (which then returns at once).
  void stop();
  /// Serves until stop() or SIGINT/SIGTERM (installs handlers for both for the duration).
  void run_until_signal();
  BatcherStats stats() const;
  /// What /api/info answers.
  nlohmann::json info() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vlm
