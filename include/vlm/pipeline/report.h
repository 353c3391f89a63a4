#pragma once
// The run report: <run_dir>/report.md, readable without any tool, with the numbers and links to the figures.
#include <string>

#include <nlohmann/json.hpp>

namespace vlm {

/// Writes <run_dir>/report.md from the run summary, the evaluator's summary and the stages' records.
void write_report(const std::string& run_dir, const nlohmann::json& summary, const nlohmann::json& eval_summary);

}  // namespace vlm
