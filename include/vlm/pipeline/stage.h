#pragma once
// Resumable pipeline stages. A stage records, in `<run_dir>/<name>/stage.json`, the configuration it ran with and a
// checksum of every output it produced. On the next run the stage is skipped only if the configuration is the same
// and every output is still there with the same checksum; a missing or corrupt output makes it run again, so an
// interrupted run resumes where it stopped and nothing damaged is trusted.
//
//   Stage s(run_dir, "vqvae", config_json);
//   if (!s.up_to_date(force)) { ... write outputs ...; s.complete({"vqvae.pt", "metrics.json"}, seconds); }
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace vlm {

/// 64-bit FNV-1a of a file's bytes as 16 hex digits; throws naming the file if it cannot be read.
std::string file_checksum(const std::string& path);

class Stage {
 public:
  Stage(std::string run_dir, std::string name, nlohmann::json config);

  /// The stage's own directory, `<run_dir>/<name>` (created).
  const std::string& dir() const { return dir_; }
  std::string path(const std::string& file) const;
  const std::string& name() const { return name_; }

  /// True when the recorded configuration equals this one and every recorded output verifies. `why()` says why not.
  bool up_to_date(bool force = false);
  const std::string& why() const { return why_; }

  /// Marks the stage as started with this configuration (stage.started.json). resuming() then says whether the
  /// previous start had the same configuration and never completed: its partial outputs (e.g. a training
  /// checkpoint) were made for this very configuration and can be continued.
  void begin();
  bool resuming() const { return resuming_; }
  /// A data-parallel rank other than 0: takes rank 0's begin() decision instead of writing the marker itself.
  void follow(bool resuming) { resuming_ = resuming; }

  /// Records the outputs (file names relative to dir()) with their checksums and the stage's wall time, atomically.
  void complete(const std::vector<std::string>& outputs, double seconds, const nlohmann::json& results = {});

  /// The record of a completed stage (config, outputs, seconds, results); null if none.
  nlohmann::json record() const;
  /// Checksum of one recorded output (for downstream configurations).
  std::string output_checksum(const std::string& file) const;

 private:
  std::string dir_, name_, why_;
  nlohmann::json config_;
  bool resuming_ = false;
};

}  // namespace vlm
