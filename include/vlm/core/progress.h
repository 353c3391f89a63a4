#pragma once
// A progress line with rate and ETA for long loops. On a terminal it redraws one line; otherwise (logs, CI)
// it prints a line at most every `min_interval_seconds`.
//
//   vlm::Progress bar("train", iters, "it");
//   for (...) { ...; bar.update(i + 1, fmt::format("loss {:.4f}", loss)); }
//   bar.finish();
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace vlm {

class Progress {
 public:
  Progress(std::string label, int64_t total, std::string unit = "it", double min_interval_seconds = 2.0,
           std::FILE* out = stderr);
  /// `done` items are complete; `extra` is appended to the line (loss, accuracy, ...).
  void update(int64_t done, const std::string& extra = "");
  void finish(const std::string& extra = "");
  double elapsed_seconds() const;
  /// "1h02m", "3m07s", "12.3s"
  static std::string format_duration(double seconds);

 private:
  void draw(bool final_line);
  std::string label_, unit_, extra_;
  int64_t total_, done_ = 0;
  double min_interval_;
  std::FILE* out_;
  bool tty_;
  std::chrono::steady_clock::time_point start_, last_draw_;
  bool drawn_ = false, finished_ = false;
};

}  // namespace vlm
