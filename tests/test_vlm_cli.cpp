// Smoke tests of the vlm command: every subcommand runs the built binary (VLM_CLI_PATH) on one tiny finished run and
// its output is checked against what the library computes; every bad input fails with a message naming it.
//
// The run is made once per ctest invocation by the fixture test "vlm_cli_tests:fixture" (hidden tag [.fixture]);
// running the executable directly makes it on first use.
#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>

#include <ATen/ATen.h>

#include "synthetic_mnist.h"
#include "test_helpers.h"
#include "vlm/core/atomic_file.h"
#include "vlm/data/idx.h"
#include "vlm/data/colored_mnist.h"
#include "vlm/data/mnist.h"
#include "vlm/eval/classify.h"
#include "vlm/io/png_read.h"
#include "vlm/pipeline/pipeline.h"
#include "vlm/tokenizer/image_token_codec.h"
#include "vlm/models/gpt_checkpoint.h"

namespace fs = std::filesystem;

namespace {

using Result = vlm::testing::ShellResult;

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

Result run_program(const std::string& program, const std::string& args) {
  return vlm::testing::run_shell(quote(program) + " " + args);
}

Result vlm_cli(const std::string& args) { return run_program(VLM_CLI_PATH, args); }

bool contains(const std::string& s, const std::string& what) { return s.find(what) != std::string::npos; }


const std::string kRoot = VLM_CLI_FIXTURE_DIR;
const std::string kData = kRoot + "/data";
const std::string kRun = kRoot + "/run";
const std::string kScratch = kRoot + "/scratch";

// A fresh tiny run (fresh = true), or the existing one when it is finished.
void make_run(bool fresh) {
  if (!fresh && fs::exists(kRun + "/report.md")) return;
  fs::remove_all(kRoot);
  vlm::testing::write_synthetic_mnist(kData, 600, 100);
  fs::create_directories(kScratch);
  auto r = vlm_cli("run --preset=tiny --threads=1 --data_dir=" + quote(kData) + " --run_dir=" + quote(kRun));
  INFO(r.out);
  REQUIRE(r.rc == 0);
  REQUIRE(contains(r.out, "report: " + kRun + "/report.md"));
  REQUIRE(fs::exists(kRun + "/report.md"));
}

std::string common() { return " --threads=1 --run_dir=" + quote(kRun) + " --data_dir=" + quote(kData); }

std::string last_line(const std::string& s) {
  auto end = s.find_last_not_of('\n');
  auto start = s.rfind('\n', end);
  return s.substr(start == std::string::npos ? 0 : start + 1, end - (start == std::string::npos ? 0 : start + 1) + 1);
}

std::string scratch(const std::string& name) { return kScratch + "/" + name; }

// A file that is not an image (one per test: ctest may run them in parallel).
std::string text_file(const std::string& name) {
  const std::string path = scratch(name + "_not_an_image.png");
  std::ofstream(path) << "this is text, not a PNG\n";
  return path;
}

}  // namespace

TEST_CASE("fixture: vlm run --preset=tiny finishes a run", "[.fixture]") { make_run(/*fresh=*/true); }

TEST_CASE("vlm without a command prints its usage: an unknown command is an error", "[cli]") {
  auto none = vlm_cli("");
  CHECK(none.rc == 1);
  CHECK(contains(none.out, "usage: vlm COMMAND"));
  auto help = vlm_cli("--help");
  CHECK(help.rc == 0);
  for (auto cmd : {"run", "generate", "classify", "encode", "decode"}) CHECK(contains(help.out, cmd));
  auto bogus = vlm_cli("bogus");
  CHECK(bogus.rc != 0);
  CHECK(contains(bogus.out, "unknown command 'bogus'"));
}

TEST_CASE("vlm run rejects an unknown flag, a bad value and a missing data directory", "[cli][run]") {
  auto flag = vlm_cli("run --preset=tiny --no_such_flag=1");
  CHECK(flag.rc != 0);
  CHECK(contains(flag.out, "unknown flag --no_such_flag"));
  auto value = vlm_cli("run --preset=tiny --seed=abc");
  CHECK(value.rc != 0);
  CHECK(contains(value.out, "--seed"));
  vlm::testing::TempDir dir;
  auto data = vlm_cli("run --preset=tiny --threads=1 --data_dir=" + dir.file("nothing") + " --run_dir=" + dir.file("r"));
  CHECK(data.rc != 0);
  CHECK(contains(data.out, dir.file("nothing")));
}

TEST_CASE("vlm encode prints the codec's letters: bad inputs name the flag or file", "[cli][encode]") {
  make_run(false);
  auto r = vlm_cli("encode --index=0" + common());
  INFO(r.out);
  REQUIRE(r.rc == 0);
  const std::string letters = last_line(r.out);
  CHECK(std::regex_match(letters, std::regex("[A-Z]{8}")));
  auto codec = vlm::ImageTokenCodec::load(vlm::RunPaths::of(kRun).vqvae);
  auto mnist = vlm::load_mnist(kData);
  CHECK(letters == codec.encode_text_one(mnist.test.images[0]));
  CHECK(contains(r.out, "test image 0 (label 0)"));

  auto range = vlm_cli("encode --index=100000" + common());
  CHECK(range.rc != 0);
  CHECK(contains(range.out, "--index=100000 is out of range"));
  auto neither = vlm_cli("encode" + common());
  CHECK(neither.rc != 0);
  CHECK(contains(neither.out, "--image=FILE.png or --index=N"));
  auto both = vlm_cli("encode --index=0 --image=" + quote(text_file("both")) + common());
  CHECK(both.rc != 0);
  CHECK(contains(both.out, "give --image=FILE or --index=N, not both"));
  auto split = vlm_cli("encode --index=0 --split=valid" + common());
  CHECK(split.rc != 0);
  CHECK(contains(split.out, "--split must be test or train"));
  const std::string text = text_file("encode");
  auto not_image = vlm_cli("encode --image=" + text + common());
  CHECK(not_image.rc != 0);
  CHECK(contains(not_image.out, "cannot read image '" + text + "'"));
  auto missing = vlm_cli("encode --image=" + scratch("missing.png") + common());
  CHECK(missing.rc != 0);
  CHECK(contains(missing.out, scratch("missing.png")));
  auto no_run = vlm_cli("encode --index=0 --threads=1 --run_dir=" + scratch("no_such_run"));
  CHECK(no_run.rc != 0);
  CHECK(contains(no_run.out, "run directory '" + scratch("no_such_run") + "' does not exist"));
  auto flag = vlm_cli("encode --index=0 --digit=3" + common());  // --digit belongs to generate
  CHECK(flag.rc != 0);
  CHECK(contains(flag.out, "unknown flag --digit"));
}

TEST_CASE("vlm decode writes the codec's 28x28 image: bad token strings are named", "[cli][decode]") {
  make_run(false);
  auto codec = vlm::ImageTokenCodec::load(vlm::RunPaths::of(kRun).vqvae);
  const std::string tokens = "ABCDEFGH", out = scratch("decoded.png");
  fs::remove(out);
  auto r = vlm_cli("decode --tokens=" + tokens + " --out=" + quote(out) + common());
  INFO(r.out);
  REQUIRE(r.rc == 0);
  CHECK(contains(r.out, "wrote " + out));
  auto png = vlm::read_image_gray(out);
  REQUIRE(png.sizes() == at::IntArrayRef({1, 28, 28}));
  auto expected = codec.decode_text_one(tokens);
  CHECK((png - expected).abs().max().item<double>() <= 1.0 / 255 + 1e-6);  // 8-bit PNG of the decoded image

  auto short_tokens = vlm_cli("decode --tokens=ABC --out=" + scratch("x.png") + common());
  CHECK(short_tokens.rc != 0);
  CHECK(contains(short_tokens.out, "ABC"));
  auto lower = vlm_cli("decode --tokens=ABCDEFGh --out=" + scratch("x.png") + common());
  CHECK(lower.rc != 0);
  CHECK(contains(lower.out, "'h' at position 7"));
  auto none = vlm_cli("decode" + common());
  CHECK(none.rc != 0);
  CHECK(contains(none.out, "--tokens=STRING is required"));
  CHECK_FALSE(fs::exists(scratch("x.png")));
}

TEST_CASE("vlm classify prints the library's prediction: bad images are named", "[cli][classify]") {
  make_run(false);
  auto r = vlm_cli("classify --index=0" + common());
  INFO(r.out);
  REQUIRE(r.rc == 0);
  auto paths = vlm::RunPaths::of(kRun);
  auto codec = vlm::ImageTokenCodec::load(paths.vqvae);
  auto gpt = vlm::load_gpt_checkpoint(paths.gpt);
  const std::string tokens = codec.encode_text_one(vlm::load_mnist(kData).test.images[0]);
  auto c = vlm::classify_exact(gpt.model, gpt.tokenizer, gpt.format, {vlm::Record{0, {tokens, ""}}});
  CHECK(contains(r.out, "tokens " + tokens + "\n"));
  CHECK(contains(r.out, "prediction " + std::to_string(c.predicted[0]) + " (p = "));
  for (int d = 0; d < 10; ++d) CHECK(contains(r.out, "  " + std::to_string(d) + ": "));

  // The same image as a PNG file classifies the same (the PNG holds MNIST's 8-bit pixels exactly).
  auto png = vlm_cli("decode --tokens=" + tokens + " --out=" + scratch("c.png") + common());
  REQUIRE(png.rc == 0);
  auto from_file = vlm_cli("classify --image=" + scratch("c.png") + common());
  CHECK(from_file.rc == 0);
  CHECK(contains(from_file.out, "prediction "));

  const std::string text = text_file("classify");
  auto not_image = vlm_cli("classify --image=" + text + common());
  CHECK(not_image.rc != 0);
  CHECK(contains(not_image.out, "cannot read image '" + text + "'"));
  auto flag = vlm_cli("classify --index=0 --bogus=1" + common());
  CHECK(flag.rc != 0);
  CHECK(contains(flag.out, "unknown flag --bogus"));
}

TEST_CASE("vlm generate writes a grid of the asked size: a bad digit or count is named", "[cli][generate]") {
  make_run(false);
  const std::string out = scratch("digit3.png");
  fs::remove(out);
  auto r = vlm_cli("generate --digit=3 --n=4 --out=" + quote(out) + common());
  INFO(r.out);
  REQUIRE(r.rc == 0);
  CHECK(contains(r.out, "wrote " + out + " (4 images of 3; 0 invalid)"));  // constrained by default
  auto png = vlm::read_image_gray(out);
  CHECK(png.size(2) == 4 * (28 + 2) + 2);  // 4 columns (min(n, 8)), one row
  CHECK(png.size(1) == 1 * (28 + 2) + 2);
  auto wide = vlm_cli("generate --digit=0 --n=10 --out=" + scratch("d0.png") + common());
  REQUIRE(wide.rc == 0);
  auto png10 = vlm::read_image_gray(scratch("d0.png"));
  CHECK(png10.size(2) == 8 * (28 + 2) + 2);  // 8 columns, two rows
  CHECK(png10.size(1) == 2 * (28 + 2) + 2);

  auto digit = vlm_cli("generate --digit=12" + common());
  CHECK(digit.rc != 0);
  CHECK(contains(digit.out, "--digit=12 is not a class of the run (0, 1, 2, 3, 4, 5, 6, 7, 8, 9)"));
  auto no_digit = vlm_cli("generate" + common());
  CHECK(no_digit.rc != 0);
  CHECK(contains(no_digit.out, "give the class to draw: --label=WORD"));
  auto word = vlm_cli("generate --label=sneaker" + common());
  CHECK(word.rc != 0);
  CHECK(contains(word.out, "--label=sneaker is not a class of the run"));
  auto by_word = vlm_cli("generate --label=3 --n=2 --out=" + scratch("l3.png") + common());
  CHECK(by_word.rc == 0);
  CHECK(contains(by_word.out, "(2 images of 3; 0 invalid)"));
  auto n = vlm_cli("generate --digit=3 --n=0" + common());
  CHECK(n.rc != 0);
  CHECK(contains(n.out, "--n must be positive"));
  auto typed = vlm_cli("generate --digit=three" + common());
  CHECK(typed.rc != 0);
  CHECK(contains(typed.out, "--digit"));
  auto tokens_flag = vlm_cli("generate --digit=3 --tokens=ABCDEFGH" + common());
  CHECK(tokens_flag.rc != 0);
  CHECK(contains(tokens_flag.out, "unknown flag --tokens"));
}

TEST_CASE("vlm run --dataset=fashion writes word labels through every stage", "[cli][run][fashion]") {
  make_run(false);  // the synthetic data set (ten classes, like Fashion-MNIST's)
  const std::string run = scratch("fashion_run");
  fs::remove_all(run);
  auto r = vlm_cli("run --preset=tiny --dataset=fashion --threads=1 --data_dir=" + quote(kData) + " --run_dir=" + quote(run));
  INFO(r.out);
  REQUIRE(r.rc == 0);
  CHECK(contains(r.out, "dataset"));
  const auto format = vlm::SequenceFormat::load(run + "/tokens/format.json");
  CHECK(format.field(1).name == "item");
  CHECK(format.field(1).words[7] == "sneaker");
  auto test = format.read(run + "/tokens/test.txt");
  auto labels = vlm::load_mnist(kData).test.labels;
  for (size_t i = 0; i < test.size(); ++i) CHECK(test[i].values[1] == format.field(1).words[labels[i].item<int64_t>()]);
  const auto summary = nlohmann::json::parse(vlm::read_text_file(run + "/eval/summary.json"));
  CHECK(summary["classification_exact"]["classes"][7] == "sneaker");
  CHECK(summary["generation"]["graded_accuracy_per_class"].contains("sneaker"));
  auto gen = vlm_cli("generate --label=sneaker --n=2 --threads=1 --run_dir=" + quote(run) + " --out=" + scratch("sn.png"));
  INFO(gen.out);
  CHECK(gen.rc == 0);
  CHECK(contains(gen.out, "(2 images of sneaker; 0 invalid)"));
  auto bad = vlm_cli("run --preset=tiny --dataset=cifar --data_dir=" + quote(kData));
  CHECK(bad.rc != 0);
  CHECK(contains(bad.out, "--dataset=cifar is not one of colored, fashion, mnist"));
}

TEST_CASE("vlm run --dataset=colored writes two label fields through every stage", "[cli][run][colored]") {
  make_run(false);  // the synthetic digits, tinted by the data set
  const std::string run = scratch("colored_run");
  fs::remove_all(run);
  auto r = vlm_cli("run --preset=tiny --dataset=colored --threads=1 --data_dir=" + quote(kData) + " --run_dir=" +
                   quote(run));
  INFO(r.out);
  REQUIRE(r.rc == 0);
  const auto format = vlm::SequenceFormat::load(run + "/tokens/format.json");
  REQUIRE(format.num_fields() == 3);
  CHECK(format.field(1).name == "colour");
  CHECK(format.field(2).name == "number");
  CHECK(format.block_size() == 48);
  // Each test line's colour is the one the data set drew for that image, its number the file's label.
  auto test = format.read(run + "/tokens/test.txt");
  const auto colours = vlm::draw_colours(static_cast<int64_t>(test.size()), 1);
  auto labels = vlm::load_mnist(kData).test.labels;
  for (size_t i = 0; i < test.size(); ++i) {
    CHECK(test[i].values[1] == vlm::colour_names()[colours[i].item<int64_t>()]);
    CHECK(test[i].values[2] == format.field(2).words[labels[i].item<int64_t>()]);
  }
  // Each field classified alone and both together; generation graded on the 40 combinations.
  const auto summary = nlohmann::json::parse(vlm::read_text_file(run + "/eval/summary.json"));
  CHECK(summary["classification_exact"]["classes"].size() == 40);
  CHECK(summary["classification_exact"]["classes"][27] == "blue 7");
  for (const char* field : {"colour", "number"})
    for (const char* how : {"exact", "sampled"}) {
      INFO(field << " " << how);
      CHECK(summary["classification_fields"][field][how]["accuracy"].is_number());
    }
  CHECK(summary["generation"]["graded_accuracy_per_class"].contains("yellow 9"));
  const auto run_summary = nlohmann::json::parse(vlm::read_text_file(run + "/summary.json"));
  CHECK(run_summary["test_accuracy_fields"]["colour"]["exact"].is_number());
  const auto classifier = nlohmann::json::parse(vlm::read_text_file(run + "/classifier/stage.json"));
  CHECK(classifier["config"]["options"]["model"]["image_channels"] == 3);
  CHECK(classifier["config"]["options"]["model"]["num_classes"] == 40);

  // The everyday commands take the class by its words and read the data set's coloured images.
  auto gen = vlm_cli("generate --label='red 7' --n=2 --threads=1 --run_dir=" + quote(run) + " --out=" +
                     scratch("red7.png"));
  INFO(gen.out);
  CHECK(gen.rc == 0);
  CHECK(contains(gen.out, "(2 images of red 7; "));
  auto cls = vlm_cli("classify --index=0 --dataset=colored --threads=1 --data_dir=" + quote(kData) + " --run_dir=" +
                     quote(run));
  INFO(cls.out);
  CHECK(cls.rc == 0);
  CHECK(contains(cls.out, "(label " + std::to_string(colours[0].item<int64_t>()) + ", "));
  CHECK(contains(cls.out, "yellow 9: "));
  auto grey = vlm_cli("generate --label=7 --n=2 --threads=1 --run_dir=" + quote(run));
  CHECK(grey.rc != 0);
  CHECK(contains(grey.out, "--label=7 is not a class of the run"));
}

TEST_CASE("examples/custom_codec trains and evaluates a GPT through a codec the library does not know",
          "[cli][custom_codec]") {
  make_run(false);
  const std::string out = scratch("custom_codec");
  fs::remove_all(out);
  auto r = run_program(VLM_CUSTOM_CODEC_PATH, "--threads=1 --data_dir=" + quote(kData) + " --out_dir=" + quote(out) +
                                                  " --gpt.max_iters=300 --gpt.lr_decay_iters=300 --gpt.n_layer=1 "
                                                  "--gpt.n_embd=32 --gpt.n_head=2 --gpt.batch_size=32 "
                                                  "--gpt.eval_interval=0 --gpt.learning_rate=0.005 "
                                                  "--eval.samples_per_class=3 --clf_epochs=2");
  INFO(r.out);
  REQUIRE(r.rc == 0);
  const auto summary = nlohmann::json::parse(vlm::read_text_file(out + "/eval/summary.json"));
  // The synthetic digits are separable from their 4x4 block means: well above chance (0.1).
  CHECK(summary["classification_exact"]["accuracy"].get<double>() > 0.5);
  CHECK(summary["generation"]["invalid_rate_constrained"] == 0.0);
  CHECK(summary["format"]["fields"][0]["codec"] == "downsample");
  CHECK(summary["format"]["fields"][0]["length"] == 16);
  CHECK(fs::exists(out + "/eval/generated.png"));  // drawn by the codec's own renderer
}

TEST_CASE("vlm run on a finished run on a read-only file system reports it, and a write names the cause",
          "[cli][run][hardening]") {
  make_run(/*fresh=*/false);
  vlm::testing::TempDir dir;
  const std::string mnt = dir.file("ro");
  fs::create_directories(mnt);
  if (std::system(("mount -t tmpfs -o size=64m none " + quote(mnt) + " 2>/dev/null").c_str()) != 0) {
    WARN("cannot mount a tmpfs here (needs root): the read-only run directory case is not exercised");
    return;
  }
  struct Unmount {
    std::string at;
    ~Unmount() { (void)std::system(("umount " + quote(at) + " 2>/dev/null").c_str()); }
  } unmount{mnt};
  const std::string run = mnt + "/run";
  fs::copy(kRun, run, fs::copy_options::recursive);
  REQUIRE(std::system(("mount -o remount,ro " + quote(mnt)).c_str()) == 0);
  const std::string args = "run --preset=tiny --threads=1 --data_dir=" + quote(kData) + " --run_dir=" + quote(run);
  auto r = vlm_cli(args);
  INFO(r.out);
  CHECK(r.rc == 0);
  CHECK(contains(r.out, "[eval] up to date"));
  CHECK(!contains(r.out, "running ("));
  CHECK(contains(r.out, "finished: test accuracy"));
  CHECK(contains(r.out, "report: " + run + "/report.md"));
  // Forcing a stage on it: an error naming the file it could not write and why; the run is unchanged.
  auto f = vlm_cli(args + " --force_stages=eval");
  INFO(f.out);
  CHECK(f.rc != 0);
  CHECK(contains(f.out, "Read-only file system"));
  CHECK(contains(f.out, "cannot write '" + run + "/"));
  CHECK(vlm::testing::read_text(run + "/summary.json") == vlm::testing::read_text(kRun + "/summary.json"));
}
