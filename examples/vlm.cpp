// The vlm command: the main job and the everyday commands on a finished run.
//
//   vlm run      [--preset=default|unsupervised|seed|tiny] [--run_dir=DIR] [--data_dir=DIR] [--nproc=N] [--key=value ...]
//   vlm generate --run_dir=DIR --label=7 [--n=16] [--out=label7.png]      (--label=sneaker on a fashion run)
//   vlm classify --run_dir=DIR (--image=FILE.png | --index=N [--split=test|train])
//   vlm encode   --run_dir=DIR (--image=FILE.png | --index=N [--split=test|train])
//   vlm decode   --run_dir=DIR --tokens=ABCDEFGH [--out=decoded.png]
//   vlm import-nanogpt CKPT.pt (--meta=meta.pkl | --vocab=CHARS | --seed_vocab) --out=gpt.pt
//   vlm launch   --nproc=N [--master_port=P] -- COMMAND [ARGS ...]       (data-parallel ranks on this machine)
//   vlm serve    --run_dir=DIR [--port=8080] [--host=127.0.0.1]         (the page and the JSON API, docs/serve.md)
#include <algorithm>
#include <filesystem>
#include <iostream>

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "common.h"
#include "vlm/data/datasets.h"
#include "vlm/core/check.h"
#include "vlm/core/options.h"
#include "vlm/data/mnist.h"
#include "vlm/dist/launch.h"
#include "vlm/dist/process_group.h"
#include "vlm/engine/engine.h"
#include "vlm/eval/classify.h"
#include "vlm/eval/evaluator.h"
#include "vlm/io/nanogpt.h"
#include "vlm/io/png.h"
#include "vlm/io/png_read.h"
#include "vlm/pipeline/pipeline.h"
#include "vlm/sample/sampler.h"
#include "vlm/serve/server.h"
#include "vlm/text/sequence_format.h"
#include "vlm/eval/generation_metrics.h"
#include "vlm/tokenizer/image_token_codec.h"
#include "vlm/models/gpt_checkpoint.h"

namespace {

const char* kUsage =
    "usage: vlm COMMAND [--key=value ...]   (vlm COMMAND --help lists a command's flags)\n"
    "  run       the main job: images -> VQ-VAE -> tokens -> GPT -> evaluation -> report (resumable)\n"
    "  generate  draw N images of a class with a finished run's model into a PNG\n"
    "  classify  classify a PNG or an IDX image by index\n"
    "  encode    print the token string of an image\n"
    "  decode    draw the image of a token string into a PNG\n"
    "  import-nanogpt  turn a nanoGPT ckpt.pt into a vlm GPT checkpoint\n"
    "  launch    start N data-parallel ranks of a command on this machine (vlm launch --nproc=2 -- train_gpt ...)\n"
    "  serve     the interactive page and the JSON API of a finished run, with dynamic batching (docs/serve.md)\n";

int run(int argc, char** argv) {
  vlm::PipelineOptions o;
  int64_t nproc = 1;
  vlm::Flags flags("vlm run", "Run (or resume) the whole pipeline into --run_dir.");
  o.register_flags(flags);
  flags.add("nproc", &nproc,
            "processes on this machine: the VQ-VAE and GPT stages train data-parallel across them and the evaluation "
            "shares its passes over the test set; the other stages run on the first with all cores "
            "(docs/distributed.md); under mpirun/srun/torchrun, their count");
  if (!flags.parse(argc, argv)) return 0;
  VLM_CHECK(nproc >= 1, "--nproc must be >= 1, got ", nproc);
  const vlm::DistEnv dist = vlm::dist_env_from_environment();
  if (nproc > 1 && !dist.distributed()) {
    // Start the ranks: this same command line, without --nproc, under vlm launch's environment.
    std::vector<std::string> command{std::filesystem::read_symlink("/proc/self/exe").string(), "run"};
    for (int i = 1; i < argc; ++i)
      if (std::string(argv[i]).rfind("--nproc=", 0) != 0) command.push_back(argv[i]);
    vlm::LaunchOptions lo;
    lo.nproc = nproc;
    lo.quiet = true;
    return vlm::launch_local(lo, command);
  }
  VLM_CHECK(nproc == 1 || nproc == dist.world_size, "--nproc=", nproc, " but the launcher started ", dist.world_size,
            " processes (", dist.summary(), ")");
  if (!flags.given("run_dir") && o.preset != "default") o.run_dir = "runs/" + o.preset;
  vlm::RuntimeOptions ro;
  ro.threads = dist.threads_per_rank(o.threads);
  ro.seed = o.seed;
  ro.flush_denormal = o.flush_denormal;
  ro.blas_kernels = o.blas_kernels;
  auto info = vlm::init_runtime(ro);
  vlm::ProcessGroup group(dist, vlm::resolve_device(o.device));
  if (dist.rank == 0) {
    std::cout << flags.resolved() << "runtime: " << info.summary() << "\n";
    if (dist.distributed()) std::cout << "data-parallel: " << dist.summary() << "\n";
    std::cout << std::flush;
  }
  auto config = flags.to_json();
  config.erase("nproc");  // how the run is spread, not what it computes: a run may resume with another count
  config.erase("run_dir");  // where config.json lives: a run moved (or mounted read-only elsewhere) stays the same
  config["runtime"] = info.summary();
  vlm::run_pipeline(o, config, &group);
  if (dist.rank == 0) fmt::print("report: {}/report.md\n", o.run_dir);
  return 0;
}

// Options of the everyday commands.
struct Everyday {
  vlm::examples::CommonOptions common;
  std::string run_dir = "runs/mnist", image, split = "test", tokens, out, label, dataset = "mnist";
  int64_t index = -1, digit = -1, n = 16;
  double temperature = 1.0;
  int64_t top_k = 0;
  bool constrained = true;
};

at::Tensor input_image(const Everyday& e, int64_t channels, int64_t expected_size) {
  VLM_CHECK(e.image.empty() || e.index < 0, "give --image=FILE or --index=N, not both (--image=", e.image,
            " --index=", e.index, ")");
  at::Tensor img;
  if (!e.image.empty()) {
    img = vlm::read_image(e.image, static_cast<int>(channels));
  } else {
    VLM_CHECK(e.index >= 0, "give --image=FILE.png or --index=N (an image of the --split of --data_dir)");
    VLM_CHECK(e.split == "test" || e.split == "train", "--split must be test or train, got '", e.split, "'");
    auto m = vlm::image_dataset(e.dataset).load(e.common.data_dir, 0, 0);
    const auto& d = e.split == "test" ? m.test : m.train;
    VLM_CHECK(e.index < d.size(), "--index=", e.index, " is out of range: the ", e.split, " split has ", d.size(),
              " images");
    img = d.images[e.index];
    std::string labels;
    for (int64_t k = 0; k < d.label_columns(); ++k)
      labels += (k ? ", " : "") + std::to_string(d.label_column(k)[e.index].item<int64_t>());
    fmt::print("{} image {} (label {})\n", e.split, e.index, labels);
  }
  VLM_CHECK(img.size(1) == expected_size && img.size(2) == expected_size, "the image is ", img.size(2), "x",
            img.size(1), " pixels; the run's tokenizer expects ", expected_size, "x", expected_size,
            " (white digit on black, like MNIST)");
  return img;
}

int everyday(const std::string& cmd, int argc, char** argv) {
  Everyday e;
  vlm::Flags flags("vlm " + cmd, "Everyday command on a finished run (see vlm --help).");
  vlm::examples::add_common_flags(flags, e.common);
  flags.add("run_dir", &e.run_dir, "a finished run directory");
  if (cmd == "generate") {
    flags.add("label", &e.label, "class to draw: a word of the run's label field (7, sneaker, ...; 'red 7' with two)");
    flags.add("digit", &e.digit, "the same by class index (0-9 on MNIST)");
    flags.add("n", &e.n, "images to draw");
    flags.add("temperature", &e.temperature, "sampling temperature");
    flags.add("top_k", &e.top_k, "top-k (0 = off)");
    flags.add("constrained", &e.constrained, "constrained decoding (only valid image letters)");
    flags.add("out", &e.out, "output PNG (default label<WORD>.png)");
  } else if (cmd == "classify" || cmd == "encode") {
    flags.add("image", &e.image, "a PNG/BMP/PGM image");
    flags.add("index", &e.index, "or an image of the data set by index");
    flags.add("split", &e.split, "test or train (with --index)");
    flags.add("dataset", &e.dataset, "the data set of --data_dir that --index reads (mnist, fashion, colored)");
  } else {
    flags.add("tokens", &e.tokens, "the image's token string, e.g. ABCDEFGH");
    flags.add("out", &e.out, "output PNG (default decoded.png)");
  }
  if (!flags.parse(argc, argv)) return 0;
  vlm::init_runtime(e.common.runtime());
  auto device = vlm::resolve_device(e.common.device);
  if (cmd == "decode" || cmd == "encode") {  // the tokenizer alone
    auto codec = vlm::ImageTokenCodec::load(vlm::RunPaths::of(e.run_dir).vqvae, device);
    if (cmd == "encode") {
      const auto& m = codec.model()->options;
      fmt::print("{}\n", codec.encode_text_one(input_image(e, m.image_channels(), m.image_size())));
      return 0;
    }
    VLM_CHECK(!e.tokens.empty(), "--tokens=STRING is required (", codec.codes_per_image(), " letters of ",
              codec.alphabet(), ")");
    auto img = codec.decode_text_one(e.tokens);  // throws naming an invalid letter or a wrong length
    const std::string out = e.out.empty() ? "decoded.png" : e.out;
    vlm::write_png(out, img);
    fmt::print("wrote {}\n", out);
    return 0;
  }
  auto engine = vlm::Engine::load(e.run_dir, device);
  const auto& words = engine.words();
  const auto& item = engine.item_shape();  // (C, S, S)
  if (cmd == "classify") {
    const std::string letters = engine.encode(input_image(e, item.front(), item.back()).unsqueeze(0))[0];
    auto probs = engine.classify({letters})[0];  // (C)
    const int64_t predicted = probs.argmax().item<int64_t>();
    fmt::print("tokens {}\nprediction {} (p = {:.3f})\n", letters, words[predicted], probs[predicted].item<double>());
    for (size_t w = 0; w < words.size(); ++w) fmt::print("  {}: {:.4f}\n", words[w], probs[w].item<double>());
    return 0;
  }
  // generate
  VLM_CHECK(e.label.empty() != (e.digit < 0), "give the class to draw: --label=WORD (one of the run's words) or --digit=N");
  const auto& format = engine.format();
  const int64_t cls = e.label.empty() ? e.digit : engine.classes().find(format, e.label);
  VLM_CHECK(cls >= 0 && cls < static_cast<int64_t>(words.size()), "--", e.label.empty() ? "digit" : "label", "=",
            e.label.empty() ? std::to_string(e.digit) : e.label, " is not a class of the run (",
            fmt::format("{}", fmt::join(words, ", ")), ")");
  VLM_CHECK(e.n > 0, "--n must be positive, got ", e.n);
  std::vector<std::string> strings;
  if (e.constrained) {
    strings = engine.generate({vlm::GenerateRequest{cls, e.n, e.temperature, e.top_k, e.common.seed}})[0].letters;
  } else {  // free sampling, which the engine does not offer: the evaluator's sampler, unconstrained
    auto options = vlm::SamplerOptions().temperature(e.temperature).top_k(e.top_k).seed(e.common.seed);
    strings = vlm::generate_per_class(engine.model(), engine.tokenizer(), format, engine.codec_field(), -1, e.n,
                                      options, false, cls).values[cls];
  }
  std::vector<at::Tensor> tiles;
  for (const auto& s : strings) tiles.push_back(s.empty() ? at::zeros(item) : engine.decode({s})[0]);
  std::string name = words[cls];
  std::replace(name.begin(), name.end(), ' ', '_');  // "red 7" -> labelred_7.png
  const std::string out = e.out.empty() ? fmt::format("label{}.png", name) : e.out;
  vlm::write_png(out, vlm::image_grid(at::stack(tiles), std::min<int64_t>(e.n, 8)));
  int64_t invalid = 0;
  for (const auto& s : strings) invalid += s.empty();
  fmt::print("wrote {} ({} images of {}; {} invalid)\n", out, e.n, words[cls], invalid);
  return 0;
}

// vlm import-nanogpt: a nanoGPT ckpt.pt (train.py's dict) -> a vlm "gpt" checkpoint (docs/checkpoints.md).
int import_nanogpt(int argc, char** argv) {
  std::string ckpt, meta, vocab, out;
  bool seed_vocab = false;
  vlm::Flags flags("vlm import-nanogpt",
                   "Convert a nanoGPT checkpoint (CKPT.pt or --ckpt) into a vlm GPT checkpoint (--out). The vocabulary "
                   "is not in ckpt.pt: give the data set's meta.pkl, the characters in id order, or --seed_vocab.");
  flags.add("ckpt", &ckpt, "nanoGPT's ckpt.pt (or give it as the positional argument)");
  flags.add("meta", &meta, "the data set's meta.pkl (nanoGPT's data/<set>/prepare.py writes it)");
  flags.add("vocab", &vocab, "the vocabulary: its characters in token-id order");
  flags.add("seed_vocab", &seed_vocab, "the seed's vocabulary (that of SequenceFormat::seed())");
  flags.add("out", &out, "the vlm checkpoint to write (e.g. runs/imported/gpt.pt)");
  flags.allow_positional(true);
  if (!flags.parse(argc, argv)) return 0;
  VLM_CHECK(flags.positional().size() <= 1 && (ckpt.empty() || flags.positional().empty()),
            "give one nanoGPT checkpoint, as CKPT.pt or --ckpt=PATH");
  if (ckpt.empty() && !flags.positional().empty()) ckpt = flags.positional()[0];
  VLM_CHECK(!ckpt.empty(), "give the nanoGPT checkpoint: vlm import-nanogpt CKPT.pt --out=PATH ...");
  VLM_CHECK(!out.empty(), "give --out=PATH, the vlm checkpoint to write");
  VLM_CHECK(int(!meta.empty()) + int(!vocab.empty()) + int(seed_vocab) == 1,
            "give exactly one of --meta=meta.pkl, --vocab=CHARS, --seed_vocab");
  vlm::CharTokenizer tok = !meta.empty()   ? vlm::read_nanogpt_meta(meta)
                           : seed_vocab     ? vlm::CharTokenizer::for_format(vlm::SequenceFormat::seed())
                                            : vlm::nanogpt_tokenizer(vocab);
  auto ck = vlm::import_nanogpt(ckpt, tok, out);
  fmt::print("{}: nanoGPT {}x{}x{} (block {}, bias {}{}), iter {}, vocabulary \"{}\"\nwrote {}\n", ckpt,
             ck.options.n_layer(), ck.options.n_head(), ck.options.n_embd(), ck.options.block_size(),
             ck.options.bias(), ck.compiled ? ", compiled" : "", ck.iter_num, tok.chars(), out);
  return 0;
}

// vlm launch: N ranks of a command with torchrun's environment; the first failing rank stops the others.
int launch(int argc, char** argv) {
  int split = argc;
  for (int i = 1; i < argc; ++i)
    if (std::string(argv[i]) == "--") {
      split = i;
      break;
    }
  vlm::LaunchOptions o;
  vlm::Flags flags("vlm launch", "Start --nproc data-parallel ranks of the command after --, on this machine.");
  flags.add("nproc", &o.nproc, "processes (ranks) to start");
  flags.add("master_addr", &o.master_addr, "rendezvous address (MASTER_ADDR)");
  flags.add("master_port", &o.master_port, "rendezvous port (MASTER_PORT; 0 = a free one)");
  flags.add("grace_seconds", &o.grace_seconds, "after a rank fails: SIGTERM to the others, SIGKILL after this");
  if (!flags.parse(split, argv)) return 0;
  VLM_CHECK(split < argc - 1, "vlm launch: give the command after --, e.g. vlm launch --nproc=2 -- ",
            "build/examples/train_gpt --preset=cpu ...");
  return vlm::launch_local(o, std::vector<std::string>(argv + split + 1, argv + argc));
}

// vlm serve: loads the run once, serves until SIGINT/SIGTERM, exits 0 after a clean stop.
int serve(int argc, char** argv) {
  vlm::ServerOptions o;
  vlm::examples::CommonOptions common;
  // One thread for the models by default: the batching worker keeps one core and the HTTP threads (and a load
  // generator on the same machine) the other. OpenBLAS's spinning threads measured 6x slower under contention
  // (generate n=16: 1.0 s with 2 threads, 0.16 s with 1, on the 2 shared cores).
  common.threads = 1;
  vlm::Flags flags("vlm serve", "Serve the interactive page and the JSON API of a finished run (docs/serve.md).");
  vlm::add_option_flags(flags, o);
  vlm::examples::add_common_flags(flags, common, /*with_data_dir=*/false);
  if (!flags.parse(argc, argv)) return 0;
  vlm::examples::start(flags, common);
  vlm::Server server(o, vlm::resolve_device(common.device));
  // Tests and scripts read the port from this line (--port=0 picks a free one).
  std::cout << "vlm serve: listening on " << server.url() << std::endl;
  server.run_until_signal();
  const auto s = server.stats();
  std::cout << "vlm serve: stopped (" << s.jobs << " requests in " << s.batches << " batches, largest " << s.largest_batch
            << ", " << s.rejected << " refused as overload)" << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return vlm::examples::run_main("vlm", [&] {
    if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
      std::cout << kUsage;
      return argc < 2 ? 1 : 0;
    }
    const std::string cmd = argv[1];
    if (cmd == "run") return run(argc - 1, argv + 1);
    if (cmd == "import-nanogpt") return import_nanogpt(argc - 1, argv + 1);
    if (cmd == "launch") return launch(argc - 1, argv + 1);
    if (cmd == "serve") return serve(argc - 1, argv + 1);
    if (cmd == "generate" || cmd == "classify" || cmd == "encode" || cmd == "decode")
      return everyday(cmd, argc - 1, argv + 1);
    VLM_FAIL("unknown command '", cmd, "'\n", kUsage);
  });
}
