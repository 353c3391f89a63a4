#include "vlm/core/progress.h"

#include <unistd.h>

#include <cmath>

#include <fmt/format.h>

namespace vlm {

Progress::Progress(std::string label, int64_t total, std::string unit, double min_interval_seconds, std::FILE* out)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), min_interval_(min_interval_seconds),
      out_(out), tty_(isatty(fileno(out)) != 0), start_(std::chrono::steady_clock::now()), last_draw_(start_) {}

double Progress::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

std::string Progress::format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  if (s < 60) return fmt::format("{:.1f}s", s);
  auto total = static_cast<int64_t>(s + 0.5);
  if (total < 3600) return fmt::format("{}m{:02d}s", total / 60, total % 60);
  return fmt::format("{}h{:02d}m", total / 3600, (total % 3600) / 60);
}

void Progress::update(int64_t done, const std::string& extra) {
  done_ = done;
  extra_ = extra;
  auto now = std::chrono::steady_clock::now();
  double since = std::chrono::duration<double>(now - last_draw_).count();
  double interval = tty_ ? 0.2 : min_interval_;
  if (drawn_ && since < interval && done_ < total_) return;
  last_draw_ = now;
  draw(false);
}

void Progress::finish(const std::string& extra) {
  if (finished_) return;
  finished_ = true;
  if (!extra.empty()) extra_ = extra;
  if (done_ < total_) done_ = total_;
  draw(true);
}

void Progress::draw(bool final_line) {
  double el = elapsed_seconds();
  double rate = el > 0 ? done_ / el : 0;
  double eta = rate > 0 ? (total_ - done_) / rate : NAN;
  std::string line = fmt::format("{} {}/{} {} ({:.0f}%) | {:.2f} {}/s | elapsed {} | ETA {}", label_, done_, total_,
                                 unit_, total_ > 0 ? 100.0 * done_ / total_ : 100.0, rate, unit_,
                                 format_duration(el), final_line ? "0s" : format_duration(eta));
  if (!extra_.empty()) line += " | " + extra_;
  if (tty_) fmt::print(out_, "\r\033[K{}{}", line, final_line ? "\n" : "");
  else fmt::print(out_, "{}\n", line);
  std::fflush(out_);
  drawn_ = true;
}

}  // namespace vlm
