#pragma once
// The built-in presets (src/pipeline/presets/*.json), embedded at build time by CMakeLists.txt so that `vlm run`
// needs nothing beside its binary.
#include <string>
#include <utility>
#include <vector>

namespace vlm::pipeline_detail {

/// (name, JSON text) of each built-in preset, in the order --help lists them.
const std::vector<std::pair<std::string, std::string>>& preset_files();

}  // namespace vlm::pipeline_detail
