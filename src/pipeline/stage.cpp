#include "vlm/pipeline/stage.h"

#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "vlm/core/atomic_file.h"
#include "vlm/core/check.h"

namespace vlm {

std::string file_checksum(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  VLM_CHECK(f, "cannot read '", path, "' to checksum it");
  uint64_t h = 1469598103934665603ULL;
  std::vector<char> buf(1 << 16);
  while (f) {
    f.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    for (std::streamsize i = 0; i < f.gcount(); ++i) h = (h ^ static_cast<unsigned char>(buf[i])) * 1099511628211ULL;
  }
  return fmt::format("{:016x}", h);
}

Stage::Stage(std::string run_dir, std::string name, nlohmann::json config)
    : dir_((std::filesystem::path(run_dir) / name).string()), name_(std::move(name)), config_(std::move(config)) {
  ensure_directory(dir_);
}

std::string Stage::path(const std::string& file) const { return (std::filesystem::path(dir_) / file).string(); }

nlohmann::json Stage::record() const {
  const std::string p = path("stage.json");
  if (!std::filesystem::exists(p)) return nullptr;
  try {
    return nlohmann::json::parse(read_text_file(p));
  } catch (const nlohmann::json::exception&) {
    return nullptr;  // a damaged record is the same as none: the stage runs again
  }
}

bool Stage::up_to_date(bool force) {
  if (force) return why_ = "forced", false;
  auto r = record();
  if (r.is_null()) return why_ = "not run yet", false;
  if (!r.contains("config") || r["config"] != config_) return why_ = "configuration changed", false;
  const nlohmann::json outputs = r.value("outputs", nlohmann::json::object());
  for (const auto& [file, sum] : outputs.items()) {
    const std::string p = path(file);
    if (!std::filesystem::exists(p)) return why_ = "output " + file + " is missing", false;
    if (file_checksum(p) != sum.get<std::string>()) return why_ = "output " + file + " is corrupt (checksum)", false;
  }
  why_ = "up to date";
  return true;
}

void Stage::begin() {
  const std::string p = path("stage.started.json");
  resuming_ = false;
  if (std::filesystem::exists(p)) {
    try {
      resuming_ = nlohmann::json::parse(read_text_file(p)) == config_;
    } catch (const nlohmann::json::exception&) {
    }
  }
  write_text_atomically(p, config_.dump() + "\n");
}

void Stage::complete(const std::vector<std::string>& outputs, double seconds, const nlohmann::json& results) {
  nlohmann::json sums = nlohmann::json::object();
  for (const auto& file : outputs) sums[file] = file_checksum(path(file));
  nlohmann::json r = {{"stage", name_}, {"config", config_}, {"outputs", sums}, {"seconds", seconds}};
  if (!results.is_null()) r["results"] = results;
  write_text_atomically(path("stage.json"), r.dump(2) + "\n");
  std::error_code ec;
  std::filesystem::remove(path("stage.started.json"), ec);
}

std::string Stage::output_checksum(const std::string& file) const {
  auto r = record();
  VLM_CHECK(!r.is_null() && r["outputs"].contains(file), "stage '", name_, "' has no recorded output '", file, "'");
  return r["outputs"][file];
}

}  // namespace vlm
