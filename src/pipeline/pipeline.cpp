#include "vlm/pipeline/pipeline.h"

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "vlm/core/atomic_file.h"
#include "vlm/core/check.h"
#include "vlm/core/run_lock.h"
#include "vlm/core/runtime.h"
#include "vlm/dist/process_group.h"
#include "vlm/pipeline/report.h"
#include "pipeline/preset_files.h"
#include "vlm/train/gpt_presets.h"

namespace vlm {
namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------------------------
// Options

PipelineOptions::PipelineOptions() { apply_preset("default"); }

void PipelineOptions::apply_vq_variant(const std::string& variant) {
  vq_model = VQVAEOptions::preset(variant);
  vq_train = VQVAETrainOptions::preset(variant);
}

void PipelineOptions::apply_dataset(const std::string& name) {
  const ImageDataset& d = image_dataset(name);  // throws listing the known ones
  dataset = d.name;
  data_dir = d.data_dir;
  run_dir = d.run_dir;
  gpt_model.block_size(d.block_size);  // the data set's lines (48 characters for two label fields)
}

namespace {

// A preset file: {"description", "base", "flags", "notes"}; keys in the order written (the flags apply in order).
nlohmann::ordered_json read_preset(const std::string& name_or_file, std::string& where) {
  const bool is_file = name_or_file.find('/') != std::string::npos ||
                       (name_or_file.size() > 5 && name_or_file.compare(name_or_file.size() - 5, 5, ".json") == 0);
  std::string text;
  if (is_file) {
    where = "preset file '" + name_or_file + "'";
    VLM_CHECK(fs::is_regular_file(name_or_file), "--preset=", name_or_file, ": no such file (a preset is one of ",
              fmt::format("{}", fmt::join(PipelineOptions::preset_names(), ", ")), ", or a JSON file of flags)");
    text = read_text_file(name_or_file);
  } else {
    where = "preset '" + name_or_file + "'";
    for (const auto& [name, body] : pipeline_detail::preset_files())
      if (name == name_or_file) text = body;
    VLM_CHECK(!text.empty(), "unknown preset '", name_or_file, "' (known: ",
              fmt::format("{}", fmt::join(PipelineOptions::preset_names(), ", ")), "; or a FILE.json of flags)");
  }
  nlohmann::ordered_json j;
  try {
    j = nlohmann::ordered_json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    VLM_FAIL(where, ": not JSON: ", e.what());
  }
  VLM_CHECK(j.is_object() && j.contains("flags") && j["flags"].is_object(), where,
            ": expected {\"description\": ..., \"base\": ..., \"flags\": {\"key\": value, ...}}");
  for (const auto& [key, value] : j.items())
    VLM_CHECK(key == "description" || key == "base" || key == "flags" || key == "notes", where, ": unknown key '", key,
              "' (known: description, base, flags, notes)");
  VLM_CHECK(!j.contains("base") || j["base"].is_string(), where, ": \"base\" must be a preset name or file");
  return j;
}

// A flag's value as the command line would give it.
std::string flag_text(const nlohmann::ordered_json& v, const std::string& where, const std::string& key) {
  if (v.is_string()) return v.get<std::string>();
  VLM_CHECK(v.is_number() || v.is_boolean(), where, ": flag '", key, "' must be a string, a number or a boolean, got ",
            v.dump());
  return v.dump();  // numbers round-trip exactly; booleans as true / false
}

}  // namespace

std::vector<std::string> PipelineOptions::preset_names() {
  std::vector<std::string> names;
  for (const auto& [name, body] : pipeline_detail::preset_files()) names.push_back(name);
  return names;
}

std::string PipelineOptions::preset_description(const std::string& name_or_file) {
  std::string where;
  return read_preset(name_or_file, where).value("description", std::string());
}

void PipelineOptions::apply_preset(const std::string& name_or_file) {
  std::string where;
  const auto j = read_preset(name_or_file, where);
  if (j.contains("base")) {
    // A chain of bases ends in a preset without one; a file that leads back to itself never would.
    thread_local int depth = 0;
    VLM_CHECK(depth < 8, where, ": its chain of \"base\" presets is more than 8 deep (does it lead back to itself?)");
    ++depth;
    struct Leave {
      ~Leave() { --depth; }
    } leave;
    apply_preset(j["base"].get<std::string>());
  } else {  // every group from its struct defaults
    vq_model = VQVAEOptions();
    vq_train = VQVAETrainOptions();
    clf_model = ImageClassifierOptions();
    clf_train = ClassifierTrainOptions();
    gpt_model = GPTOptions();
    gpt_train = GPTTrainOptions();
    eval = EvaluatorOptions();
    gpt_snapshots = PipelineOptions::kDefaultSnapshots;
  }
  preset = name_or_file;
  Flags flags(where, "");
  register_flags(flags);
  const auto& set = j["flags"];
  for (const auto& [key, value] : set.items()) {
    VLM_CHECK(key != "preset", where, ": a preset names its base with \"base\", not a \"preset\" flag");
    try {
      flags.set(key, flag_text(value, where, key));
    } catch (const Error& e) {
      VLM_FAIL(where, ": ", e.what());
    }
  }
  // The lines' length is the data set's unless the preset says otherwise (a GPT preset sets its own).
  if (!set.contains("gpt.block_size")) gpt_model.block_size(image_dataset(dataset).block_size);
}

namespace {
std::string dataset_help() {
  std::string help = "the data set, which sets --data_dir, --run_dir, the label fields and the block size:";
  for (const auto& name : image_dataset_names()) help += " " + name + " (" + image_dataset(name).description + ");";
  help.back() = '.';
  return help;
}
}  // namespace

void PipelineOptions::register_flags(Flags& f) {
  std::map<std::string, std::function<void()>> datasets;
  for (const auto& name : image_dataset_names()) datasets[name] = [this, name] { apply_dataset(name); };
  f.add_choice("dataset", &dataset, datasets, dataset_help());
  f.add("run_dir", &run_dir, "run directory (stage outputs, report.md, summary.json)");
  f.add("data_dir", &data_dir, "directory with the four MNIST-format IDX files (raw or .gz)");
  f.add("format", &format, "sequence format file (JSON, docs/formats.md); default: the data set's two templates");
  f.add("threads", &threads, "cores to use (0 = all); each stage splits them between OpenBLAS and LibTorch as measured fastest");
  f.add("seed", &seed, "random seed of every stage");
  f.add("flush_denormal", &flush_denormal, "treat denormal floats as zero (faster late in training)");
  f.add("blas_kernels", &blas_kernels, "give OpenBLAS the AVX-512/AVX2 kernels of this CPU when it fell back to generic ones");
  f.add("device", &device, "cpu, cuda, cuda:N or auto");
  f.add("force", &force, "redo every stage");
  f.add("force_stages", &force_stages, "comma-separated stages to redo: data,vqvae,tokens,classifier,gpt,eval");
  f.add("limit_train", &limit_train, "use only the first N training-file images (0 = all)");
  f.add("limit_test", &limit_test, "use only the first N test images (0 = all)");
  f.add("classifier_checkpoint", &classifier_checkpoint, "reuse this reference classifier instead of training one");
  f.add_choice("gpt.preset", &gpt_preset,
               {{"cpu", [this] { apply_cpu_preset(gpt_model, gpt_train); }},
                {"seed", [this] { apply_seed_preset(gpt_model, gpt_train); }}},
               "the GPT's sizes and schedule (vlm/train/gpt_presets.h), applied before the other gpt. flags");
  f.add_choice("vq.variant", &vq_model.variant(),
               {{"mlp", [this] { apply_vq_variant("mlp"); }}, {"conv", [this] { apply_vq_variant("conv"); }}},
               "tokenizer variant with its own sizes and schedule, applied before the other vq. flags");
  add_option_flags(f, vq_model, "vq.", false);
  add_option_flags(f, vq_train, "vq.", false);
  f.add("vq.threads", &vq_threads, "threads while training the VQ-VAE (0 = --threads)");
  add_option_flags(f, clf_model, "clf.", false);
  add_option_flags(f, clf_train, "clf.", false);
  add_option_flags(f, gpt_model, "gpt.", false);
  add_option_flags(f, gpt_train, "gpt.", false);
  f.add("gpt.snapshots", &gpt_snapshots, "checkpoints kept along training for the accuracy chart");
  f.add("gpt.log_interval", &gpt_train.log_interval, "console and metrics.jsonl line every N iterations");
  f.add("gpt.threads", &gpt_threads, "threads while training the GPT (0 = --threads)");
  add_option_flags(f, eval, "eval.", false);
  for (const auto& name : preset_names())
    f.add_preset(name, [this, name] { apply_preset(name); }, preset_description(name));
  f.set_preset_loader([this](const std::string& file) { apply_preset(file); },
                      "a JSON file of flags, as src/pipeline/presets/*.json (docs/lm_presets.md)");
}

void PipelineOptions::validate() const {
  VLM_CHECK(limit_train >= 0 && limit_test >= 0, "--limit_train and --limit_test must be >= 0 (0 = all), got ",
            limit_train, " and ", limit_test);
  VLM_CHECK(gpt_snapshots >= 0, "--gpt.snapshots must be >= 0, got ", gpt_snapshots);
  VLM_CHECK(threads >= 0 && gpt_threads >= 0 && vq_threads >= 0, "--threads, --gpt.threads and --vq.threads must be >= 0");
  std::set<std::string> known = {"all"};
  for (const auto& s : pipeline_stages()) known.insert(s.name);
  std::stringstream ss(force_stages);
  for (std::string s; std::getline(ss, s, ',');)
    VLM_CHECK(known.count(s), "--force_stages: unknown stage '", s, "' (stages: data, vqvae, tokens, classifier, gpt, ",
              "eval, or all)");
  vq_train.validate();
  clf_train.validate();
  gpt_train.validate();
}

// ---------------------------------------------------------------------------------------------------------------
// Running

PipelineContext::PipelineContext(const PipelineOptions& o, ProcessGroup* g)
    : options(o),
      group(g && g->distributed() ? g : nullptr),
      rank_threads(group ? group->env().threads_per_rank(o.threads) : o.threads),
      device(resolve_device(o.device)),
      dataset(image_dataset(o.dataset)),
      data(dataset.load(o.data_dir, o.limit_train, o.limit_test)),
      split(split_train_validation(data.train)) {
  VLM_CHECK(data.train.label_columns() == static_cast<int64_t>(dataset.labels.size()), "data set '", dataset.name,
            "': its loader gave ", data.train.label_columns(), " label columns for ", dataset.labels.size(),
            " label fields");
}

LabeledImages PipelineContext::combined(const LabeledImages& d) const {
  return {d.images, d.combined_labels(dataset.label_sizes())};
}

SequenceFormat PipelineContext::sequence_format(const std::string& alphabet, int64_t length) const {
  const int64_t block = options.gpt_model.block_size();
  if (options.format.empty())
    return dataset.format(alphabet, length, block);
  SequenceFormat f = SequenceFormat::load(options.format).with_block_size(block);
  const int64_t codec = f.first_codec_field();
  const auto labels = f.label_fields();
  VLM_CHECK(codec >= 0 && labels.size() == dataset.labels.size(), "--format '", options.format,
            "': the main job needs a codec field for the images and ", dataset.labels.size(),
            " label field(s) for the data set's labels; it has ", labels.size());
  const FieldSpec& c = f.field(codec);
  VLM_CHECK(c.alphabet == alphabet && c.length == length, "--format '", options.format, "': field '", c.name,
            "' has alphabet \"", c.alphabet, "\" and length ", c.length, ", the codec writes \"", alphabet, "\" and ",
            length, " letters");
  for (size_t k = 0; k < labels.size(); ++k)
    VLM_CHECK(f.field(labels[k]).num_classes() == dataset.labels[k].num_classes(), "--format '", options.format,
              "': field '", f.field(labels[k]).name, "' has ", f.field(labels[k]).num_classes(), " words, the data set's ",
              dataset.labels[k].name, " ", dataset.labels[k].num_classes(), " classes");
  return f;
}

bool PipelineContext::is_main() const { return !group || group->is_main(); }

std::string PipelineContext::path(const std::string& stage, const std::string& file) const {
  return (fs::path(options.run_dir) / stage / file).string();
}

namespace {
using Clock = std::chrono::steady_clock;

// A figure of the vqvae stage's results: {"test": {key}} (tokenizer_metrics), or the flat key of runs recorded before
// that schema.
nlohmann::json tokenizer_figure(const nlohmann::json& results, const char* key, const char* flat_key) {
  if (results.contains("test") && results["test"].contains(key)) return results["test"][key];
  return results.contains(flat_key) ? results[flat_key] : nlohmann::json(nullptr);
}

bool forced(const PipelineOptions& o, const std::string& stage) {
  if (o.force) return true;
  std::stringstream ss(o.force_stages);
  for (std::string s; std::getline(ss, s, ',');)
    if (s == stage || s == "all") return true;
  return false;
}

// Runs one stage unless it is up to date. Its hash: the options it depends on and every upstream output's checksum.
// Data-parallel: rank 0 decides (and marks the start); every rank follows its decision. True if it ran.
bool run_stage(PipelineContext& ctx, const StageSpec& spec) {
  const bool main = ctx.is_main();
  nlohmann::json config = {{"options", spec.options(ctx)}, {"inputs", nlohmann::json::object()}};
  for (const auto& in : spec.inputs) config["inputs"][in] = Stage(ctx.options.run_dir, in, {}).record()["outputs"];
  Stage stage(ctx.options.run_dir, spec.name, config);
  std::vector<double> decision = {0, 0};  // run it, resuming
  if (main) {
    if (stage.up_to_date(forced(ctx.options, spec.name))) {
      fmt::print("[{}] up to date, skipped\n", spec.name);
    } else {
      fmt::print("[{}] running ({}{})\n", spec.name, stage.why(),
                 ctx.group && spec.data_parallel ? fmt::format(", {} processes", ctx.group->world_size()) : "");
      std::fflush(stdout);
      stage.begin();
      decision = {1, stage.resuming() ? 1.0 : 0.0};
    }
  }
  if (ctx.group) decision = ctx.group->all_reduce_sum(decision);  // rank 0's, the others add zeros
  if (decision[0] == 0) return false;
  if (!main) stage.follow(decision[1] != 0);
  const auto t0 = Clock::now();
  StageOutcome out;
  if (main || spec.data_parallel) out = spec.run(ctx, stage);
  // The others wait for rank 0's stage, however long it takes: a rank 0 that dies meanwhile still breaks the wait.
  if (ctx.group) ctx.group->wait_for_main(std::chrono::hours(24));
  if (!main) return true;
  std::vector<std::string> outputs = spec.outputs;
  outputs.insert(outputs.end(), out.extra_outputs.begin(), out.extra_outputs.end());
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  stage.complete(outputs, seconds, out.results);
  fmt::print("[{}] done in {:.1f}s\n", spec.name, seconds);
  return true;
}

// The run's headline figures, from the stages' records and the evaluator's summary.
nlohmann::json summarise(const PipelineContext& ctx, double seconds_this_invocation) {
  const auto& o = ctx.options;
  double stage_seconds = 0;
  for (const auto& spec : pipeline_stages())
    stage_seconds += Stage(o.run_dir, spec.name, {}).record().value("seconds", 0.0);
  const auto vq = Stage(o.run_dir, "vqvae", {}).record()["results"];
  const auto e = nlohmann::json::parse(read_text_file(ctx.path("eval", "summary.json")));
  // Several label fields: each one's exact and sampled accuracy (test_accuracy is then all fields right).
  auto field_accuracies = [](const nlohmann::json& e) {
    nlohmann::json out = nlohmann::json::object();
    if (!e.contains("classification_fields")) return out;
    for (const auto& [name, f] : e["classification_fields"].items())
      for (const char* how : {"exact", "sampled"})
        if (f.contains(how)) out[name][how] = f[how]["accuracy"];
    return out;
  };
  auto pick = [&](const char* section, const char* key) {
    return e.contains(section) && e[section].contains(key) ? e[section][key] : nlohmann::json(nullptr);
  };
  return {{"preset", o.preset},
          {"dataset", o.dataset},
          {"run_dir", o.run_dir},
          {"wall_seconds", stage_seconds},
          {"wall_seconds_this_invocation", seconds_this_invocation},
          {"vq_test_mse", tokenizer_figure(vq, "recon_mse", "test_mse")},
          {"vq_probe_10nn_accuracy", tokenizer_figure(vq, "probe_accuracy", "probe_10nn_accuracy")},
          {"test_accuracy", pick("classification_exact", "accuracy")},
          {"test_accuracy_std_error", pick("classification_exact", "std_error")},
          {"test_accuracy_sampled", pick("classification_sampled", "accuracy")},
          {"generation_graded_accuracy", pick("generation", "graded_accuracy")},
          {"test_accuracy_fields", field_accuracies(e)},
          {"generation_invalid_rate", pick("generation", "invalid_rate_constrained")},
          {"generation_invalid_rate_unconstrained", pick("generation", "invalid_rate_unconstrained")},
          {"test_examples", e["test_examples"]}};
}
}  // namespace

nlohmann::json run_pipeline(const PipelineOptions& o, const nlohmann::json& resolved_config, ProcessGroup* group) {
  const auto t_start = Clock::now();
  o.validate();
  const bool main = !group || group->is_main();
  std::unique_ptr<RunLock> lock;
  // one writer per run directory: a second `vlm run` here is refused, naming this one
  if (main) lock = std::make_unique<RunLock>(o.run_dir);
  if (group) group->barrier();  // a refused rank 0 stops the others here
  if (main && !resolved_config.is_null()) {
    // Rewritten only when it changed, so that a finished run on a read-only disk can still be reported.
    const std::string path = (fs::path(o.run_dir) / "config.json").string(), text = resolved_config.dump(2) + "\n";
    if (!fs::exists(path) || read_text_file(path) != text) write_text_atomically(path, text);
  }
  PipelineContext ctx(o, group);
  bool ran = false;
  for (const auto& spec : pipeline_stages()) ran = run_stage(ctx, spec) || ran;
  if (!main) return nullptr;

  const std::string summary_path = (fs::path(o.run_dir) / "summary.json").string();
  nlohmann::json summary;
  if (!ran && fs::exists(summary_path) && fs::exists(fs::path(o.run_dir) / "report.md")) {
    // Nothing ran: the report of the invocation that finished the run stands (and a read-only run stays readable).
    summary = nlohmann::json::parse(read_text_file(summary_path));
  } else {
    summary = summarise(ctx, std::chrono::duration<double>(Clock::now() - t_start).count());
    const auto eval_summary = nlohmann::json::parse(read_text_file(ctx.path("eval", "summary.json")));
    write_text_atomically(summary_path, summary.dump(2) + "\n");
    write_report(o.run_dir, summary, eval_summary);
  }
  fmt::print("run {} finished: test accuracy {:.4f}, graded generation accuracy {}, {:.1f}s of stages\n", o.run_dir,
             summary["test_accuracy"].get<double>(), summary["generation_graded_accuracy"].dump(),
             summary["wall_seconds"].get<double>());
  return summary;
}

RunPaths RunPaths::of(const std::string& run_dir) {
  VLM_CHECK(fs::is_directory(run_dir), "run directory '", run_dir,
            "' does not exist: run the pipeline first (scripts/run_mnist.sh --run_dir=", run_dir, ")");
  RunPaths p;
  p.run_dir = run_dir;
  p.vqvae = (fs::path(run_dir) / "vqvae" / "vqvae.pt").string();
  p.gpt = (fs::path(run_dir) / "gpt" / "best.pt").string();
  p.classifier = (fs::path(run_dir) / "classifier" / "classifier.pt").string();
  p.tokens_train = (fs::path(run_dir) / "tokens" / "train.txt").string();
  for (const auto& f : {p.vqvae, p.gpt})
    VLM_CHECK(fs::exists(f), "'", run_dir, "' is not a finished run: '", f, "' is missing (resume it with ",
              "scripts/run_mnist.sh --run_dir=", run_dir, ")");
  return p;
}

}  // namespace vlm
