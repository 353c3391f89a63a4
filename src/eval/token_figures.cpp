#include "vlm/eval/token_figures.h"

#include <algorithm>
#include <filesystem>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "vlm/core/check.h"
#include "vlm/io/svg_plot.h"

namespace vlm {

TokenUsage token_usage(const std::vector<std::string>& strings, const at::Tensor& labels, const std::string& alphabet,
                       std::vector<std::string> class_names, int64_t logo_examples) {
  const int64_t N = static_cast<int64_t>(strings.size());
  VLM_CHECK(N > 0 && labels.defined() && labels.numel() == N, "token_usage: ", N, " strings but ",
            labels.defined() ? labels.numel() : 0, " labels");
  const int64_t L = static_cast<int64_t>(strings[0].size());
  TokenUsage u;
  u.alphabet = alphabet;
  u.strings = N;
  u.logo_examples = std::min(N, logo_examples);
  const auto C = static_cast<int64_t>(class_names.size());
  u.class_names = std::move(class_names);
  u.position_counts.assign(C, std::vector<std::map<char, double>>(L));
  std::map<char, double> usage;
  int64_t letters = 0;
  auto lab = labels.to(at::kCPU).to(at::kLong).contiguous();
  const int64_t* pl = lab.data_ptr<int64_t>();
  for (int64_t i = 0; i < N; ++i) {
    const auto& s = strings[i];
    for (char c : s) usage[c] += 1;
    letters += static_cast<int64_t>(s.size());
    const int64_t d = pl[i];
    if (i < logo_examples && d >= 0 && d < C)
      for (int64_t p = 0; p < L && p < static_cast<int64_t>(s.size()); ++p) u.position_counts[d][p][s[p]] += 1;
  }
  for (char c : alphabet) {
    u.frequency.push_back(letters ? usage[c] / double(letters) : 0.0);
    u.codes_used += usage[c] > 0;
  }
  return u;
}

nlohmann::json TokenUsage::to_json() const {
  nlohmann::json f = nlohmann::json::object();
  for (size_t k = 0; k < alphabet.size() && k < frequency.size(); ++k) f[std::string(1, alphabet[k])] = frequency[k];
  return {{"strings", strings}, {"codes_used", codes_used}, {"frequency", f}};
}

void write_token_figures(const TokenUsage& u, const std::string& out_dir) {
  namespace fs = std::filesystem;
  std::vector<std::string> titles;
  for (const auto& name : u.class_names) titles.push_back(name);
  plot::save_svg((fs::path(out_dir) / "token_logo.svg").string(),
                 plot::sequence_logo(titles, u.position_counts, static_cast<int>(u.alphabet.size()),
                                     fmt::format("Codec letters per position (first {} test examples)",
                                                 u.logo_examples)));
  std::vector<std::string> letters;
  for (char c : u.alphabet) letters.emplace_back(1, c);
  plot::save_svg((fs::path(out_dir) / "codebook_usage.svg").string(),
                 plot::bar_chart(letters, u.frequency, {"Codebook usage on the test set", "code", "frequency", 720, 360}));
}

}  // namespace vlm
