// kill -9 of a real training process at random moments: the checkpoint on disk is always whole, the run lock left by
// the dead process does not block the next one, and resuming ends bit for bit where the uninterrupted run ends.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <random>
#include <thread>

#include <ATen/ATen.h>

#include "test_helpers.h"
#include "vlm/models/gpt_checkpoint.h"

namespace fs = std::filesystem;

namespace {

const std::string kTrainGpt = VLM_TRAIN_GPT_PATH;
const std::string kTokens = std::string(VLM_FIXTURE_DIR) + "/seed-tokens/";

std::vector<std::string> args(const std::string& out_dir, const std::string& init_from) {
  return {kTrainGpt, "--train_text=" + kTokens + "train_head.txt", "--val_text=" + kTokens + "valid_head.txt",
          "--out_dir=" + out_dir, "--init_from=" + init_from, "--threads=1", "--n_layer=2", "--n_head=2",
          "--n_embd=64", "--block_size=32", "--dropout=0", "--batch_size=32", "--max_iters=160",
          "--lr_decay_iters=160", "--warmup_iters=10", "--learning_rate=0.003", "--checkpoint_interval=10",
          "--eval_interval=0", "--eval_iters=1", "--eval_classify=0", "--final_classify=0", "--log_interval=10"};
}

pid_t start(const std::vector<std::string>& argv, const std::string& log) {
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

  std::mt19937 rng(2026);
  const std::string out = dir.file("killed");
  int kills = 0, resumes = 0;
  for (int k = 0; k < 5; ++k) {
    // Start (from the last checkpoint when there is one), let it run 0.2 to 1.5 s, kill -9.
    const bool have = fs::exists(out + "/ckpt.pt");
    const pid_t pid = start(args(out, have ? "resume" : "scratch"), dir.file("killed.log"));
    resumes += have;
    std::this_thread::sleep_for(std::chrono::milliseconds(200 + rng() % 1300));
    if (kill(pid, SIGKILL) == 0) ++kills;
    const int code = wait_exit(pid);
    INFO("attempt " << k << " exit " << code);
    CHECK((code == 128 + SIGKILL || code == 0));
    if (fs::exists(out + "/ckpt.pt")) {
      // Whatever the moment, the checkpoint on disk loads (written to a temporary, then renamed).
      CHECK_NOTHROW(vlm::read_gpt_checkpoint_header(out + "/ckpt.pt"));
    }
  }
  // Finish: the stale run lock of the killed process must not stop this one.
  const int code = wait_exit(start(args(out, fs::exists(out + "/ckpt.pt") ? "resume" : "scratch"), dir.file("killed.log")));
  INFO(vlm::testing::read_text(dir.file("killed.log")));
  REQUIRE(code == 0);
  CHECK(kills >= 3);    // most attempts were killed mid-run (a fast machine may finish one first)
  CHECK(resumes >= 2);  // and most started from a checkpoint a killed process left
  const auto got = params(out + "/ckpt.pt");
  REQUIRE(got.size() == expected.size());
  for (size_t i = 0; i < got.size(); ++i) CHECK(at::equal(got[i], expected[i]));
}
