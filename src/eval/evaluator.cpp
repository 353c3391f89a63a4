#include "vlm/eval/evaluator.h"

#include <chrono>
#include <filesystem>
#include <map>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "vlm/core/atomic_file.h"
#include "vlm/core/check.h"
#include "vlm/core/progress.h"
#include "vlm/eval/classify.h"
#include "vlm/io/png.h"
#include "vlm/io/svg_plot.h"
#include "vlm/text/sequences.h"
#include "vlm/models/gpt_checkpoint.h"

namespace vlm {
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string join(const std::string& dir, const std::string& name) { return (std::filesystem::path(dir) / name).string(); }

// Images for a [digit][sample] table of strings: decoded rows of `cols` each; invalid strings become black squares
// (what the seed showed for them), missing cells stay grey padding.
at::Tensor digit_grid(const ImageTokenCodec& codec, const std::vector<std::vector<std::string>>& images, int64_t cols,
                      int64_t height, int64_t width) {
  std::vector<at::Tensor> tiles;
  for (const auto& row : images)
    for (int64_t c = 0; c < cols; ++c) {
      if (c < static_cast<int64_t>(row.size()) && !row[c].empty()) tiles.push_back(codec.decode_text_one(row[c]));
      else tiles.push_back(at::zeros({1, height, width}));
    }
  return image_grid(at::stack(tiles), cols);
}

}  // namespace

ExactClassification classify_exact(GPT& model, const CharTokenizer& tokenizer, const std::vector<std::string>& images,
                                   const at::Tensor& labels, int64_t batch_size) {
  auto t0 = Clock::now();
  Classification c = classify_images(model, tokenizer, images, batch_size);
  ExactClassification out;
  out.seconds = since(t0);
  out.predicted = at::tensor(c.predicted, at::kLong);
  out.probs = at::softmax(c.log_probs, 1);  // renormalised over the ten digits
  out.metrics = classification_metrics(out.predicted, labels, out.probs);
  return out;
}

int64_t parse_digit_answer(const std::string& completion) {
  auto dot = completion.find('.');
  if (dot != 1) return -1;
  char c = completion[0];
  return (c >= '0' && c <= '9') ? c - '0' : -1;
}

SampledClassification classify_sampled(GPT& model, const CharTokenizer& tokenizer,
                                       const std::vector<std::string>& images, const at::Tensor& labels,
                                       const SamplerOptions& options) {
  auto t0 = Clock::now();
  std::vector<std::string> prompts;
  prompts.reserve(images.size());
  for (const auto& s : images) prompts.push_back(classification_prompt(s));
  Sampler sampler(model, tokenizer, options);
  auto completions = sampler.complete(prompts);
  std::vector<int64_t> predicted;
  for (const auto& c : completions) predicted.push_back(parse_digit_answer(c));
  SampledClassification out;
  out.seconds = since(t0);
  out.metrics = classification_metrics(at::tensor(predicted, at::kLong), labels);
  return out;
}

Generation generate_digits(GPT& model, const CharTokenizer& tokenizer, int64_t image_length, int64_t per_digit,
                           const SamplerOptions& options, bool constrained) {
  VLM_CHECK(per_digit > 0 && image_length > 0, "generate_digits: per_digit and image_length must be positive");
  TemplateConstraint constraint(Template::kGenerate, tokenizer, image_length);
  Sampler sampler(model, tokenizer, options);
  auto t0 = Clock::now();
  Generation g;
  for (int64_t d = 0; d < 10; ++d) {
    std::vector<std::string> prompts(per_digit, generation_prompt(d));
    auto completions = sampler.complete(prompts, constrained ? &constraint : nullptr);
    std::vector<std::string> images;
    for (const auto& c : completions) {
      // Valid = exactly the template's continuation: image_length alphabet letters and '.'.
      bool ok = constraint.matches(generation_prompt(d) + c);
      images.push_back(ok ? c.substr(0, image_length) : "");
      g.invalid += !ok;
    }
    g.completions.push_back(std::move(completions));
    g.images.push_back(std::move(images));
    g.total += per_digit;
  }
  g.seconds = since(t0);
  g.tokens = sampler.tokens_generated();
  return g;
}

nlohmann::json run_evaluation(EvaluationInputs& in, const EvaluatorOptions& o) {
  VLM_CHECK(in.model, "run_evaluation: no model");
  VLM_CHECK(!in.test_strings.empty() && in.test_labels.defined() &&
                in.test_labels.size(0) == static_cast<int64_t>(in.test_strings.size()),
            "run_evaluation: ", in.test_strings.size(), " test strings but ",
            in.test_labels.defined() ? in.test_labels.size(0) : 0, " labels");
  ensure_directory(o.out_dir);
  const int64_t N = static_cast<int64_t>(in.test_strings.size());
  const int64_t L = static_cast<int64_t>(in.test_strings[0].size());
  nlohmann::json summary = {{"model", in.model_path}, {"test_examples", N}, {"image_length", L}};
  std::vector<std::string> skipped;
  std::vector<std::string> digits_txt;
  for (int d = 0; d < 10; ++d) digits_txt.push_back(std::to_string(d));

  // --- classification, exact ------------------------------------------------------------------------------------
  fmt::print("evaluate: exact classification of {} examples\n", N);
  auto exact = classify_exact(in.model, in.tokenizer, in.test_strings, in.test_labels, o.batch_size);
  summary["classification_exact"] = exact.metrics.to_json();
  summary["classification_exact"]["seconds"] = exact.seconds;
  fmt::print("  accuracy {:.4f} +- {:.4f} (top-2 {:.4f}, ECE {:.4f}) in {:.2f}s\n", exact.metrics.accuracy,
             exact.metrics.std_error, exact.metrics.top2_accuracy, exact.metrics.ece, exact.seconds);
  {
    std::vector<std::vector<double>> m;
    for (const auto& row : exact.metrics.confusion) m.emplace_back(row.begin(), row.end());
    plot::save_svg(join(o.out_dir, "confusion.svg"),
                   plot::heatmap(m, digits_txt, digits_txt,
                                 {fmt::format("Confusion matrix (exact, accuracy {:.4f})", exact.metrics.accuracy),
                                  "predicted", "true", 560, 560}));
  }

  // --- classification, the seed's way ------------------------------------------------------------------------------
  SamplerOptions seed_style = SamplerOptions().temperature(o.sampled_temperature).top_k(o.sampled_top_k).seed(o.seed)
                                  .batch_size(o.batch_size);
  if (o.sampled) {
    fmt::print("evaluate: sampled classification (temperature {}, top-k {} clamped to {})\n", o.sampled_temperature,
               o.sampled_top_k, std::min<int64_t>(o.sampled_top_k, in.tokenizer.vocab_size()));
    auto sampled = classify_sampled(in.model, in.tokenizer, in.test_strings, in.test_labels, seed_style);
    summary["classification_sampled"] = sampled.metrics.to_json();
    summary["classification_sampled"]["seconds"] = sampled.seconds;
    fmt::print("  accuracy {:.4f} +- {:.4f}, invalid answers {}, in {:.2f}s\n", sampled.metrics.accuracy,
               sampled.metrics.std_error, sampled.metrics.invalid, sampled.seconds);
  }
  if (o.naive_prompts > 0) {
    // The seed's notebook loop (multi_prompt_sampling): one prompt at a time, nanoGPT's generate with
    // max_new_tokens=10, no cache and no early stop.
    const int64_t n = std::min<int64_t>(o.naive_prompts, N);
    Sampler naive(in.model, in.tokenizer,
                  SamplerOptions(seed_style).batch_size(1).use_cache(false).max_new_tokens(10).stop('\0'));
    auto t0 = Clock::now();
    for (int64_t i = 0; i < n; ++i) naive.complete({classification_prompt(in.test_strings[i])});
    double per_prompt = since(t0) / n;
    const std::string prompt = classification_prompt(in.test_strings[0]);
    const int64_t T0 = static_cast<int64_t>(prompt.size()), block = in.model->options.block_size();
    int64_t naive_positions = 0;
    for (int64_t i = 0; i < 10; ++i) naive_positions += std::min(T0 + i, block);
    // Exact scoring shares the text before the image letters ("image:") across the batch.
    const int64_t exact_positions = T0 - static_cast<int64_t>(prompt.find(in.test_strings[0]));
    summary["speed"] = {{"exact_seconds", exact.seconds},
                        {"naive_prompts_timed", n},
                        {"naive_seconds_per_prompt", per_prompt},
                        {"naive_seconds_extrapolated", per_prompt * N},
                        {"exact_speedup_vs_naive", per_prompt * N / exact.seconds},
                        // Positions run through the model per prompt: the naive loop re-runs its whole context for
                        // each of 10 tokens; exact scoring runs the prompt once, sharing the "image:" prefix. Their
                        // ratio bounds the speed-up when both run at the same FLOP rate.
                        {"naive_positions_per_prompt", naive_positions},
                        {"exact_positions_per_prompt", exact_positions}};
    fmt::print("  naive loop: {:.2f} ms per prompt -> {:.1f}s for {} (extrapolated from {}); exact is {:.0f}x faster\n",
               per_prompt * 1e3, per_prompt * N, N, n, per_prompt * N / exact.seconds);
  }

  // --- accuracy over checkpoints -------------------------------------------------------------------------------------
  if (!in.series.empty()) {
    nlohmann::json rows = nlohmann::json::array();
    plot::Series s{"exact classification", {}, {}, {}};
    for (const auto& path : in.series) {
      auto loaded = load_gpt_checkpoint(path);
      auto r = classify_exact(loaded.model, loaded.tokenizer, in.test_strings, in.test_labels, o.batch_size);
      int64_t iter = loaded.meta.value("iter", int64_t(0));
      rows.push_back({{"checkpoint", path}, {"iter", iter}, {"accuracy", r.metrics.accuracy},
                      {"std_error", r.metrics.std_error}});
      s.x.push_back(iter), s.y.push_back(r.metrics.accuracy), s.yerr.push_back(r.metrics.std_error);
      fmt::print("  checkpoint {} (iter {}): accuracy {:.4f} +- {:.4f}\n", path, iter, r.metrics.accuracy,
                 r.metrics.std_error);
    }
    summary["accuracy_over_checkpoints"] = rows;
    plot::save_svg(join(o.out_dir, "accuracy_over_checkpoints.svg"),
                   plot::line_chart({s}, {"Classification accuracy over training (+- 1 standard error)", "iteration",
                                          "accuracy"}));
  }

  if (o.samples_per_digit > 0) {
    // --- generation ------------------------------------------------------------------------------------------------
    SamplerOptions gen_opts = SamplerOptions().temperature(o.gen_temperature).top_k(o.gen_top_k).seed(o.seed)
                                  .batch_size(o.batch_size);
    fmt::print("evaluate: generating {} images per digit (constrained, then unconstrained)\n", o.samples_per_digit);
    auto gen = generate_digits(in.model, in.tokenizer, L, o.samples_per_digit, gen_opts, /*constrained=*/true);
    auto free_gen = generate_digits(in.model, in.tokenizer, L, o.samples_per_digit, gen_opts, /*constrained=*/false);
    // Cache speed-up on the same work: one digit's worth of unconstrained generation without the cache.
    auto t_nc = Clock::now();
    Sampler no_cache(in.model, in.tokenizer, SamplerOptions(gen_opts).use_cache(false));
    no_cache.complete(std::vector<std::string>(o.samples_per_digit, generation_prompt(0)));
    double nc_rate = no_cache.tokens_generated() / since(t_nc);
    Sampler with_cache(in.model, in.tokenizer, gen_opts);
    auto t_c = Clock::now();
    with_cache.complete(std::vector<std::string>(o.samples_per_digit, generation_prompt(0)));
    double c_rate = with_cache.tokens_generated() / since(t_c);

    std::vector<std::string> all;
    for (const auto& row : gen.images) all.insert(all.end(), row.begin(), row.end());
    std::unordered_set<std::string> distinct(all.begin(), all.end());
    nlohmann::json g = {{"samples_per_digit", o.samples_per_digit},
                        {"temperature", o.gen_temperature},
                        {"top_k", o.gen_top_k},
                        {"invalid_rate_constrained", double(gen.invalid) / gen.total},
                        {"invalid_rate_unconstrained", double(free_gen.invalid) / free_gen.total},
                        {"distinct_fraction", double(distinct.size()) / all.size()},
                        {"tokens_per_second_cached", c_rate},
                        {"tokens_per_second_uncached", nc_rate},
                        {"cache_speedup", c_rate / nc_rate},
                        {"seconds", gen.seconds}};
    if (in.train_strings) {
      int64_t seen = 0;
      for (const auto& s : all) seen += in.train_strings->count(s) > 0;
      g["memorised_fraction"] = double(seen) / all.size();
    } else {
      skipped.push_back("memorisation (no training strings given)");
    }
    fmt::print("  invalid: {:.4f} constrained, {:.4f} unconstrained; distinct {:.4f}; cache {:.0f} vs {:.0f} tok/s\n",
               g["invalid_rate_constrained"].get<double>(), g["invalid_rate_unconstrained"].get<double>(),
               g["distinct_fraction"].get<double>(), c_rate, nc_rate);

    if (in.codec) {
      const int64_t H = in.test_images.defined() ? in.test_images.size(2) : 28;
      const int64_t W = in.test_images.defined() ? in.test_images.size(3) : 28;
      write_png(join(o.out_dir, "generated.png"), digit_grid(*in.codec, gen.images, o.grid_columns, H, W));
      write_png(join(o.out_dir, "generated_unconstrained.png"),
                digit_grid(*in.codec, free_gen.images, o.grid_columns, H, W));
      if (in.classifier) {
        std::vector<double> per_digit;
        int64_t right = 0;
        for (int64_t d = 0; d < 10; ++d) {
          auto imgs = in.codec->decode_text(gen.images[d]);
          auto pred = classifier_probabilities(in.classifier, imgs).argmax(1);
          int64_t ok = pred.eq(d).sum().item<int64_t>();
          right += ok;
          per_digit.push_back(double(ok) / gen.images[d].size());
        }
        g["graded_accuracy"] = double(right) / gen.total;
        g["graded_accuracy_per_digit"] = per_digit;
        fmt::print("  graded accuracy {:.4f} (per digit:{})\n", g["graded_accuracy"].get<double>(),
                   fmt::format("{:.2f}", fmt::join(per_digit, " ")));
        plot::save_svg(join(o.out_dir, "graded_accuracy.svg"),
                       plot::bar_chart(digits_txt, per_digit,
                                       {"Generated digits the reference classifier recognises", "digit asked for",
                                        "graded accuracy", 560, 360, 0.0, 1.0}));
        if (in.test_images.defined()) {
          LabeledImages test{in.test_images, in.test_labels};
          auto recon = in.codec->decode_codes(in.codec->encode_codes(in.test_images));
          summary["reference_classifier"] = {
              {"accuracy_real_test", classifier_accuracy(in.classifier, test)},
              {"accuracy_vqvae_reconstructions", classifier_accuracy(in.classifier, {recon, in.test_labels})}};
        }
      } else {
        skipped.push_back("graded accuracy (no reference classifier)");
      }
    } else {
      skipped.push_back("image grids and graded accuracy (no tokenizer checkpoint to decode images)");
    }
    summary["generation"] = g;
  } else {
    skipped.push_back("generation (--samples_per_digit=0)");
  }

  // --- token figures: sequence logo per digit and codebook usage -----------------------------------------------------
  {
    const std::string& alphabet = in.tokenizer.image_alphabet();
    std::vector<std::vector<std::map<char, double>>> counts(10, std::vector<std::map<char, double>>(L));
    std::map<char, double> usage;
    auto labels = in.test_labels.to(at::kCPU).contiguous();
    for (int64_t i = 0; i < N; ++i) {
      const auto& s = in.test_strings[i];
      for (char c : s) usage[c] += 1;
      if (i < o.logo_examples) {
        int64_t d = labels[i].item<int64_t>();
        if (d >= 0 && d < 10)
          for (int64_t p = 0; p < L && p < static_cast<int64_t>(s.size()); ++p) counts[d][p][s[p]] += 1;
      }
    }
    std::vector<std::string> titles;
    for (int d = 0; d < 10; ++d) titles.push_back("digit " + std::to_string(d));
    plot::save_svg(join(o.out_dir, "token_logo.svg"),
                   plot::sequence_logo(titles, counts, static_cast<int>(alphabet.size()),
                                       fmt::format("Image letters per position (first {} test examples)",
                                                   std::min<int64_t>(N, o.logo_examples))));
    std::vector<std::string> letters;
    std::vector<double> freq;
    for (char c : alphabet) letters.emplace_back(1, c), freq.push_back(usage[c] / double(N * L));
    plot::save_svg(join(o.out_dir, "codebook_usage.svg"),
                   plot::bar_chart(letters, freq, {"Codebook usage on the test set", "code", "frequency", 720, 360}));
  }

  summary["skipped"] = skipped;
  write_text_atomically(join(o.out_dir, "summary.json"), summary.dump(2) + "\n");
  return summary;
}

}  // namespace vlm
