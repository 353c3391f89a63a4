// kill -9 of real training processes (train_gpt, train_vqvae, vlm run) at random moments: the checkpoints on disk are
// always whole, the run lock left by the dead process does not block the next one, and running the command again
// ends bit for bit where the uninterrupted run ends.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <filesystem>
#include <random>
#include <thread>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "synthetic_mnist.h"
#include "test_helpers.h"
#include "vlm/io/checkpoint.h"
#include "vlm/models/gpt_checkpoint.h"
#include "vlm/tokenizer/image_token_codec.h"

namespace fs = std::filesystem;

namespace {

const std::string kTrainGpt = VLM_TRAIN_GPT_PATH;
const std::string kTrainVqvae = VLM_TRAIN_VQVAE_PATH;
const std::string kVlm = VLM_CLI_PATH;
const std::string kTokens = std::string(VLM_FIXTURE_DIR) + "/seed-tokens/";

std::vector<std::string> args(const std::string& out_dir, const std::string& init_from) {
  return {kTrainGpt, "--train_text=" + kTokens + "train_head.txt", "--val_text=" + kTokens + "valid_head.txt",
          "--out_dir=" + out_dir, "--init_from=" + init_from, "--threads=1", "--n_layer=2", "--n_head=2",
          "--n_embd=64", "--block_size=32", "--dropout=0", "--batch_size=32", "--max_iters=160",
          "--lr_decay_iters=160", "--warmup_iters=10", "--learning_rate=0.003", "--checkpoint_interval=10",
          "--eval_interval=0", "--eval_iters=1", "--eval_classify=0", "--final_classify=0", "--log_interval=10"};
}

pid_t start(const std::vector<std::string>& argv, const std::string& log) {
  std::fflush(stdout);  // or the child's copy of the buffer is written again
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    FILE* f = std::freopen(log.c_str(), "a", stdout);
    (void)f;
    dup2(fileno(stdout), 2);
    std::vector<char*> a;
    for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    execv(a[0], a.data());
    _exit(127);
  }
  return pid;
}

int wait_exit(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

size_t count_in(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}
bool exited(pid_t pid) {  // a zombie counts: it has exited but is not reaped yet
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string pid_field, comm, state;
  stat >> pid_field >> comm >> state;
  return !stat || state == "Z";
}
// Waits until `log` holds `marker` `times` times (true), or the process has exited (false).
bool wait_for_line(pid_t pid, const std::string& log, const std::string& marker, size_t times) {
  for (;;) {
    if (count_in(vlm::testing::read_text(log), marker) >= times) return true;
    if (exited(pid)) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}
// Waits until `file` has been written after `since` (true), or the process has exited (false).
bool wait_for_write(pid_t pid, const std::string& file, fs::file_time_type since) {
  for (;;) {
    std::error_code ec;
    const auto t = fs::last_write_time(file, ec);
    if (!ec && t > since) return true;
    if (exited(pid)) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

// Starts `argv`; once the process has written `file` (newer than before the start), kills it with SIGKILL a random
// 0..period_ms later. Returns its exit status (128 + 9 when killed, 0 when it finished first).
int run_and_kill_after_write(const std::vector<std::string>& argv, const std::string& log, const std::string& file,
                             std::mt19937& rng, int period_ms) {
  std::error_code ec;
  const auto before = fs::exists(file) ? fs::last_write_time(file, ec) : fs::file_time_type::min();
  const pid_t pid = start(argv, log);
  if (wait_for_write(pid, file, before)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % period_ms));
    kill(pid, SIGKILL);
  }
  return wait_exit(pid);
}

std::vector<at::Tensor> params(const std::string& ckpt) {
  auto g = vlm::load_gpt_checkpoint(ckpt);
  std::vector<at::Tensor> out;
  for (const auto& p : g.model->parameters()) out.push_back(p.detach().clone());
  REQUIRE(g.meta.at("iter") == 160);
  return out;
}

}  // namespace

TEST_CASE("train_gpt killed with SIGKILL at five random moments resumes to the uninterrupted result", "[kill]") {
  vlm::testing::TempDir dir;
  REQUIRE(wait_exit(start(args(dir.file("straight"), "scratch"), dir.file("straight.log"))) == 0);
  const auto expected = params(dir.file("straight/ckpt.pt"));
  // The time between two checkpoints (10 steps) of the uninterrupted run: kill delays are drawn within 1.5 of it.
  const std::string straight_log = vlm::testing::read_text(dir.file("straight.log"));
  const size_t at_ms = straight_log.find(" ms/iter");
  REQUIRE(at_ms != std::string::npos);
  const double ms_per_iter = std::stod(straight_log.substr(straight_log.rfind('(', at_ms) + 1));
  const int period_ms = std::max(2, static_cast<int>(15 * ms_per_iter));

  std::mt19937 rng(2026);
  const std::string out = dir.file("killed"), ckpt = out + "/ckpt.pt";
  int kills = 0, resumes = 0;
  for (int k = 0; k < 5; ++k) {
    // Start (from the last checkpoint when there is one); once this process has written a checkpoint of its own,
    // kill -9 it within 1.5 checkpoint periods: inside a step or inside the next checkpoint write, at comparable
    // points of the run whatever the machine's load.
    const bool have = fs::exists(ckpt);
    resumes += have;
    const int code =
        run_and_kill_after_write(args(out, have ? "resume" : "scratch"), dir.file("killed.log"), ckpt, rng, period_ms);
    kills += code == 128 + SIGKILL;
    INFO("attempt " << k << " exit " << code);
    CHECK((code == 128 + SIGKILL || code == 0));
    if (fs::exists(ckpt)) {
      // Whatever the moment, the checkpoint on disk loads (written to a temporary, then renamed).
      CHECK_NOTHROW(vlm::read_gpt_checkpoint_header(ckpt));
    }
  }
  // Finish: the stale run lock of the killed process must not stop this one.
  const int code = wait_exit(start(args(out, fs::exists(out + "/ckpt.pt") ? "resume" : "scratch"), dir.file("killed.log")));
  INFO(vlm::testing::read_text(dir.file("killed.log")));
  REQUIRE(code == 0);
  CHECK(kills >= 4);    // killed mid-run (the last attempts may find little left to do)
  CHECK(resumes >= 4);  // every start after the first continued from a checkpoint a killed process left
  const auto got = params(out + "/ckpt.pt");
  REQUIRE(got.size() == expected.size());
  for (size_t i = 0; i < got.size(); ++i) CHECK(at::equal(got[i], expected[i]));
}

namespace {
std::vector<std::string> vqvae_args(const std::string& data, const std::string& out_dir) {
  return {kTrainVqvae, "--data_dir=" + data, "--out_dir=" + out_dir, "--variant=conv", "--threads=1",
          "--hidden_dim=64", "--channels=8", "--max_epochs=40", "--batch_size=32", "--latent_map=pca",
          "--latent_points=100", "--recon_images=8", "--quiet", "--resume"};
}
std::vector<at::Tensor> vqvae_state(const std::string& ckpt) {
  auto codec = vlm::ImageTokenCodec::load(ckpt);
  std::vector<at::Tensor> out;
  for (const auto& p : codec.model()->parameters()) out.push_back(p.detach().clone());
  for (const auto& b : codec.model()->buffers()) out.push_back(b.detach().clone());
  return out;
}
}  // namespace

TEST_CASE("train_vqvae killed with SIGKILL at five random moments resumes to the uninterrupted result", "[kill]") {
  vlm::testing::TempDir dir;
  const std::string data = dir.file("data");
  vlm::testing::write_synthetic_mnist(data, 600, 100);
  REQUIRE(wait_exit(start(vqvae_args(data, dir.file("straight")), dir.file("straight.log"))) == 0);
  const auto expected = vqvae_state(dir.file("straight/vqvae.pt"));
  // One epoch of the uninterrupted run ("trained 40 epochs in S s"): kill delays are drawn within 1.5 of it.
  const std::string straight_log = vlm::testing::read_text(dir.file("straight.log"));
  const size_t at_in = straight_log.find("epochs in ");
  REQUIRE(at_in != std::string::npos);
  const int period_ms = std::max(2, static_cast<int>(1500 * std::stod(straight_log.substr(at_in + 10)) / 40));

  std::mt19937 rng(2027);
  const std::string out = dir.file("killed"), state = out + "/state.pt";
  int kills = 0, resumes = 0;
  for (int k = 0; k < 5; ++k) {
    // The same command each time: it resumes from state.pt when a killed run left one. Killed once it has finished
    // an epoch of its own, within 1.5 epochs: in an epoch's steps, its validation, its checkpoint or state write.
    resumes += fs::exists(state);
    const int code = run_and_kill_after_write(vqvae_args(data, out), dir.file("killed.log"), state, rng, period_ms);
    kills += code == 128 + SIGKILL;
    INFO("attempt " << k << " exit " << code);
    CHECK((code == 128 + SIGKILL || code == 0));
    for (const char* f : {"/state.pt", "/vqvae.pt"})  // whatever the moment, what is on disk loads
      if (fs::exists(out + f)) CHECK_NOTHROW(vlm::peek_checkpoint(out + f));
  }
  const int code = wait_exit(start(vqvae_args(data, out), dir.file("killed.log")));
  const std::string log = vlm::testing::read_text(dir.file("killed.log"));
  INFO(log);
  REQUIRE(code == 0);
  CHECK(kills >= 4);
  CHECK(resumes >= 4);
  CHECK(log.find("resuming from") != std::string::npos);
  const auto got = vqvae_state(out + "/vqvae.pt");
  REQUIRE(got.size() == expected.size());
  for (size_t i = 0; i < got.size(); ++i) CHECK(at::equal(got[i], expected[i]));
  // The epoch log of the killed-and-resumed run holds every epoch once, as the uninterrupted one does.
  const std::string got_log = vlm::testing::read_text(out + "/epochs.jsonl");
  const std::string straight_epochs = vlm::testing::read_text(dir.file("straight/epochs.jsonl"));
  CHECK(std::count(got_log.begin(), got_log.end(), '\n') == std::count(straight_epochs.begin(), straight_epochs.end(), '\n'));
}

namespace {
std::vector<std::string> run_args(const std::string& data, const std::string& run_dir) {
  return {kVlm, "run", "--preset=tiny", "--threads=1", "--data_dir=" + data, "--run_dir=" + run_dir,
          "--vq.max_epochs=30", "--gpt.max_iters=800", "--gpt.lr_decay_iters=800", "--gpt.eval_interval=80",
          "--gpt.checkpoint_interval=80"};
}
std::vector<at::Tensor> gpt_params(const std::string& ckpt) {
  auto g = vlm::load_gpt_checkpoint(ckpt);
  std::vector<at::Tensor> out;
  for (const auto& p : g.model->parameters()) out.push_back(p.detach().clone());
  return out;
}
}  // namespace

TEST_CASE("vlm run killed with SIGKILL at five random moments (in and between stages) ends as the uninterrupted run",
          "[kill]") {
  vlm::testing::TempDir dir;
  const std::string data = dir.file("data");
  vlm::testing::write_synthetic_mnist(data, 600, 100);
  REQUIRE(wait_exit(start(run_args(data, dir.file("straight")), dir.file("straight.log"))) == 0);

  // Kill points relative to what the run is doing: inside the tokenizer's epochs (twice: the second time in a resumed
  // stage), at the boundary of two stages, inside the GPT's steps and checkpoints, and in the evaluation.
  // The GPT's point waits for its first checkpoint of that start rather than for a time, so that it lands inside
  // the stage at any speed (a sanitizer build runs several times slower).
  struct Point {
    std::string marker;
    int spread_ms;         // kill [0, spread_ms) after the marker (and the checkpoint)
    bool after_checkpoint;
  };
  const std::vector<Point> points = {{"[vqvae] running", 1000, false},
                                     {"[vqvae] running", 600, false},
                                     {"[tokens] running", 0, false},
                                     {"[gpt] running", 300, true},
                                     {"[eval] running", 100, false}};
  std::mt19937 rng(2028);
  const std::string out = dir.file("killed"), log_file = dir.file("killed.log"), ckpt = out + "/gpt/ckpt.pt";
  int kills = 0;
  for (const auto& [marker, spread, after_checkpoint] : points) {
    const size_t seen = count_in(vlm::testing::read_text(log_file), marker);
    std::error_code ec;
    const auto before = fs::exists(ckpt) ? fs::last_write_time(ckpt, ec) : fs::file_time_type::min();
    const pid_t pid = start(run_args(data, out), log_file);
    if (wait_for_line(pid, log_file, marker, seen + 1) && (!after_checkpoint || wait_for_write(pid, ckpt, before))) {
      std::this_thread::sleep_for(std::chrono::milliseconds(spread ? rng() % spread : 0));
      kill(pid, SIGKILL);
    }
    const int code = wait_exit(pid);
    INFO("kill at '" << marker << "': exit " << code);
    CHECK((code == 128 + SIGKILL || code == 0));
    kills += code == 128 + SIGKILL;
  }
  const int code = wait_exit(start(run_args(data, out), dir.file("killed.log")));
  const std::string log = vlm::testing::read_text(dir.file("killed.log"));
  INFO(log);
  REQUIRE(code == 0);
  CHECK(kills >= 4);
  WARN("vlm run: " << kills << " kills; stages continued: vqvae " << count_in(log, "resuming from") << ", gpt "
                   << count_in(log, "continuing the interrupted run") << "; stages skipped as done: "
                   << count_in(log, "up to date"));
  CHECK(count_in(log, "continuing the interrupted run") >= 1);
  // Bit for bit the uninterrupted run's tokenizer and language model, and so its figures.
  const auto a = vqvae_state(out + "/vqvae/vqvae.pt"), b = vqvae_state(dir.file("straight/vqvae/vqvae.pt"));
  for (size_t i = 0; i < a.size(); ++i) CHECK(at::equal(a[i], b[i]));
  const auto g = gpt_params(out + "/gpt/best.pt"), h = gpt_params(dir.file("straight/gpt/best.pt"));
  for (size_t i = 0; i < g.size(); ++i) CHECK(at::equal(g[i], h[i]));
  CHECK(vlm::testing::read_text(out + "/tokens/train.txt") == vlm::testing::read_text(dir.file("straight/tokens/train.txt")));
  auto figures = [](const std::string& run) {
    auto s = nlohmann::json::parse(vlm::testing::read_text(run + "/summary.json"));
    return std::make_pair(s["test_accuracy"], s["generation_graded_accuracy"]);
  };
  CHECK(figures(out) == figures(dir.file("straight")));
}

namespace {
// Live processes whose command line holds `needle` (a zombie's command line reads empty).
std::vector<pid_t> processes_with(const std::string& needle) {
  std::vector<pid_t> found;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = vlm::testing::read_text(e.path().string() + "/cmdline");
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    if (cmdline.find(needle) != std::string::npos) found.push_back(std::stoi(name));
  }
  return found;
}
}  // namespace

TEST_CASE("vlm run --nproc=2 killed with SIGKILL takes its ranks with it, and one process continues its GPT",
          "[kill][dist]") {
  vlm::testing::TempDir dir;
  const std::string data = dir.file("data");
  vlm::testing::write_synthetic_mnist(data, 600, 100);
  const std::string out = dir.file("killed"), log_file = dir.file("killed.log");
  auto argv = run_args(data, out);
  argv.push_back("--nproc=2");
  const pid_t pid = start(argv, log_file);
  REQUIRE(wait_for_write(pid, out + "/gpt/ckpt.pt", fs::file_time_type::min()));  // inside the GPT stage
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  kill(pid, SIGKILL);
  REQUIRE(wait_exit(pid) == 128 + SIGKILL);
  // The launcher could not forward SIGKILL; its ranks must go with it rather than train on, holding the run lock.
  // (The kernel's SIGKILL is immediate; a second is for the exit to show in /proc on a busy machine, far shorter
  // than what is left of the run, which orphaned ranks would finish.)
  std::vector<pid_t> left;
  for (int i = 0; i < 20 && !(left = processes_with("--run_dir=" + out)).empty(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(left.empty());
  for (pid_t p : left) kill(p, SIGKILL);
  CHECK_FALSE(fs::exists(out + "/summary.json"));

  // The process count is not part of a stage's configuration: one process picks up the 2 ranks' checkpoint.
  const int code = wait_exit(start(run_args(data, out), log_file));
  const std::string log = vlm::testing::read_text(log_file);
  INFO(log);
  REQUIRE(code == 0);
  CHECK(count_in(log, "continuing the interrupted run") == 1);
  CHECK(count_in(log, "[vqvae] up to date") == 1);
  const auto s = nlohmann::json::parse(vlm::testing::read_text(out + "/summary.json"));
  CHECK(s["test_accuracy"].get<double>() > 0.3);  // 10 classes: chance is 0.1
}
