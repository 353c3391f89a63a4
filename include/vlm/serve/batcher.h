#pragma once
// Dynamic batching, as inference servers do it: callers on many threads submit jobs; one worker thread takes the
// first waiting job, keeps collecting until `max_batch` jobs are in hand or `max_wait_ms` have passed since that
// first job arrived, and runs them together. The queue is bounded: a submit past `max_queue` waiting jobs throws
// QueueFull at once (the server answers 503 with Retry-After) instead of letting latency grow without limit.
//
//   Batcher<Job> b(options, [&](std::vector<Job>& jobs) { ... fulfil every job ... },
//                  [](Job& job, std::exception_ptr e) { job.reply.set_exception(e); });
//   b.submit(std::move(job));   // from any thread; the job carries its own promise
//
// Only the worker thread runs `run`, so everything it touches (the models, LibTorch's thread pools) is used by one
// thread at a time. `on_start` runs first on the worker (thread-local settings: threads, inference mode).
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "vlm/core/check.h"

namespace vlm {

struct BatcherOptions {
  int64_t max_batch = 64;    ///< jobs per batch; 1 = no batching (each job alone, in arrival order)
  double max_wait_ms = 2.0;  ///< how long the first job of a batch waits for company
  int64_t max_queue = 512;   ///< jobs waiting (not yet taken by the worker) before submit refuses

  template <class V>
  void fields(V& v) {
    v("max_batch", max_batch, "requests run together in one batched forward pass (1 = no batching)");
    v("max_wait_ms", max_wait_ms, "how long the first request of a batch waits for others (milliseconds)");
    v("max_queue", max_queue, "requests waiting before the server answers 503 (overload)");
  }
  /// Throws naming the flag for a value the batcher cannot work with.
  void validate() const {
    VLM_CHECK(max_batch >= 1, "--max_batch must be at least 1, got ", max_batch);
    VLM_CHECK(max_wait_ms >= 0 && max_wait_ms <= 10000, "--max_wait_ms must be in [0, 10000], got ", max_wait_ms);
    VLM_CHECK(max_queue >= 1, "--max_queue must be at least 1, got ", max_queue);
  }
};

/// Thrown by Batcher::submit when the queue is full.
class QueueFull : public Error {
 public:
  using Error::Error;
};

/// What the batcher has done so far (for /api/info and the tests that check batching happened).
struct BatcherStats {
  int64_t jobs = 0, batches = 0, largest_batch = 0, rejected = 0;
};

template <class Job>
class Batcher {
 public:
  using Run = std::function<void(std::vector<Job>&)>;
  using Fail = std::function<void(Job&, std::exception_ptr)>;

  Batcher(BatcherOptions options, Run run, Fail fail, std::function<void()> on_start = {})
      : options_(options), run_(std::move(run)), fail_(std::move(fail)) {
    options_.validate();
    worker_ = std::thread([this, on_start = std::move(on_start)] {
      if (on_start) on_start();
      loop();
    });
  }
  ~Batcher() { stop(); }
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  /// Queues a job; throws QueueFull (the job untouched) when max_queue jobs are already waiting, or vlm::Error
  /// after stop().
  void submit(Job job) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      VLM_CHECK(!stopping_, "the server is shutting down");
      if (static_cast<int64_t>(queue_.size()) >= options_.max_queue) {
        ++stats_.rejected;
        throw QueueFull(detail::concat("the request queue is full (", options_.max_queue,
                                       " requests waiting); retry later"));
      }
      queue_.push_back({std::move(job), Clock::now()});
    }
    wake_.notify_one();
  }

  /// Finishes the batch in progress, fails the jobs still waiting, joins the worker. Idempotent.
  void stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    if (worker_.joinable()) worker_.join();
  }

  BatcherStats stats() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }
  const BatcherOptions& options() const { return options_; }

 private:
  using Clock = std::chrono::steady_clock;
  struct Waiting {
    Job job;
    Clock::time_point arrived;
  };

  void loop() {
    for (;;) {
      std::vector<Job> batch;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (stopping_) break;
        // The first job's arrival starts the clock: it waits at most max_wait_ms, however busy the worker was.
        const auto deadline = queue_.front().arrived + std::chrono::duration_cast<Clock::duration>(
                                                           std::chrono::duration<double, std::milli>(options_.max_wait_ms));
        wake_.wait_until(lock, deadline, [&] {
          return stopping_ || static_cast<int64_t>(queue_.size()) >= options_.max_batch;
        });
        const int64_t n = std::min<int64_t>(options_.max_batch, static_cast<int64_t>(queue_.size()));
        for (int64_t i = 0; i < n; ++i) {
          batch.push_back(std::move(queue_.front().job));
          queue_.pop_front();
        }
        stats_.jobs += n;
        stats_.batches += 1;
        stats_.largest_batch = std::max(stats_.largest_batch, n);
      }
      try {
        run_(batch);
      } catch (...) {
        // run_ fulfils every job it can; whatever escapes it fails the batch, not the worker.
        for (auto& j : batch) fail_(j, std::current_exception());
      }
    }
    std::deque<Waiting> left;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      left.swap(queue_);
    }
    for (auto& w : left) fail_(w.job, std::make_exception_ptr(Error("the server is shutting down")));
  }

  BatcherOptions options_;
  Run run_;
  Fail fail_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Waiting> queue_;
  bool stopping_ = false;
  BatcherStats stats_;
  std::thread worker_;
};

}  // namespace vlm
