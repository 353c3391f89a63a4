// Data-parallel training as processes: two ranks on 127.0.0.1 with Gloo, started by vlm launch (torchrun's
// environment), by mpirun (OpenMPI's) and by hand; their parameters against each other and against one process.
#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include "synthetic_mnist.h"
#include "test_helpers.h"
#include "vlm/dist/launch.h"
#include "vlm/dist/process_group.h"
#include "vlm/io/checkpoint.h"
#include "vlm/models/gpt.h"
#include "vlm/models/vqvae.h"

namespace fs = std::filesystem;

namespace {

vlm::testing::ShellResult sh(const std::string& cmd) { return vlm::testing::run_shell(cmd); }

bool contains(const std::string& s, const std::string& what) { return s.find(what) != std::string::npos; }

// The parameters a dist_check run wrote for one rank, flattened in module order.
std::vector<at::Tensor> params(const std::string& file) {
  vlm::GPT model(vlm::GPTOptions().vocab_size(50).block_size(32).n_layer(2).n_head(2).n_embd(32));
  vlm::CheckpointReader r(file, "test-params", 1);
  r.load_module("model", *model);
  std::vector<at::Tensor> out;
  for (const auto& p : model->parameters()) out.push_back(p.detach().clone());
  return out;
}

// Parameters and buffers (codebooks, EMA statistics) of dist_check --model=vqvae's tiny VQ-VAE.
std::vector<at::Tensor> vqvae_state(const std::string& file) {
  auto o = vlm::VQVAEOptions::preset("conv");
  o.image_size(28).hidden_dim(32).channels(4);
  vlm::VQVAE model(o);
  vlm::CheckpointReader r(file, "test-params", 1);
  r.load_module("model", *model);
  std::vector<at::Tensor> out;
  for (const auto& p : model->parameters()) out.push_back(p.detach().clone());
  for (const auto& b : model->buffers()) out.push_back(b.detach().clone().to(at::kFloat));
  return out;
}

// The largest ||a - b|| / ||b|| over the parameter tensors.
double max_relative_difference(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, ((a[i] - b[i]).norm() / b[i].norm()).item<double>());
  return worst;
}

bool identical(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  for (size_t i = 0; i < a.size(); ++i)
    if (!at::equal(a[i], b[i])) return false;
  return true;
}

const std::string kCheck = VLM_DIST_CHECK_PATH;
const std::string kVlm = VLM_CLI_PATH;
const std::string kEvaluate = VLM_EVALUATE_PATH;

}  // namespace

TEST_CASE("The process group reads torchrun's, OpenMPI's and Slurm's environment", "[dist]") {
  vlm::testing::ScopedEnv clear({{"WORLD_SIZE", nullptr}, {"RANK", nullptr}, {"LOCAL_RANK", nullptr},
                                 {"OMPI_COMM_WORLD_SIZE", nullptr}, {"OMPI_COMM_WORLD_RANK", nullptr},
                                 {"OMPI_COMM_WORLD_LOCAL_RANK", nullptr}, {"SLURM_NTASKS", nullptr},
                                 {"SLURM_PROCID", nullptr}, {"SLURM_LOCALID", nullptr}, {"MASTER_ADDR", nullptr},
                                 {"MASTER_PORT", nullptr}});
  auto none = vlm::dist_env_from_environment();
  CHECK_FALSE(none.distributed());
  CHECK(none.summary() == "single process");
  vlm::ProcessGroup alone;  // every collective a no-op
  auto t = at::ones({3});
  alone.all_reduce_sum({t});
  CHECK(at::equal(t, at::ones({3})));
  {
    vlm::testing::ScopedEnv e({{"OMPI_COMM_WORLD_SIZE", "4"}, {"OMPI_COMM_WORLD_RANK", "3"},
                               {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}, {"MASTER_ADDR", "10.0.0.2"}, {"MASTER_PORT", "1234"}});
    auto m = vlm::dist_env_from_environment();
    CHECK(m.launcher == "mpirun");
    CHECK(m.rank == 3);
    CHECK(m.world_size == 4);
    CHECK(m.local_rank == 1);
    CHECK(m.summary() == "rank 3 of 4 (mpirun, local rank 1, rendezvous 10.0.0.2:1234)");
  }
  {
    vlm::testing::ScopedEnv e({{"SLURM_NTASKS", "2"}, {"SLURM_PROCID", "1"}, {"SLURM_LOCALID", "0"}});
    auto s = vlm::dist_env_from_environment();
    CHECK(s.launcher == "slurm");
    CHECK(s.rank == 1);
    CHECK(s.master_port == 29500);
  }
  {
    vlm::testing::ScopedEnv e({{"WORLD_SIZE", "2"}, {"RANK", "2"}});
    CHECK_THROWS_WITH(vlm::dist_env_from_environment(), Catch::Contains("rank 2 is not below the world size 2"));
  }
  {
    vlm::testing::ScopedEnv e({{"WORLD_SIZE", "two"}});
    CHECK_THROWS_WITH(vlm::dist_env_from_environment(), Catch::Contains("WORLD_SIZE='two'"));
  }
}

TEST_CASE("Two ranks train bit-identical weights, equal to one process within summation order", "[dist]") {
  vlm::testing::TempDir dir;
  auto one = sh(kCheck + " --steps=50 --out=" + dir.file("one"));
  INFO(one.out);
  REQUIRE(one.rc == 0);
  auto two = sh(kVlm + " launch --nproc=2 -- " + kCheck + " --steps=50 --out=" + dir.file("two"));
  INFO(two.out);
  REQUIRE(two.rc == 0);
  CHECK(contains(two.out, "rank 1 of 2: 50 steps"));
  auto single = params(dir.file("one/params_rank0.pt"));
  auto r0 = params(dir.file("two/params_rank0.pt")), r1 = params(dir.file("two/params_rank1.pt"));
  CHECK(identical(r0, r1));
  const double diff = max_relative_difference(r0, single);
  WARN("largest relative parameter difference ||a - b|| / ||b||, 2 ranks vs 1 process after 50 steps: " << diff);
  CHECK(diff < 1e-4);
  // Only rank 0 wrote the trainer's files.
  CHECK(fs::exists(dir.file("two/gpt/ckpt.pt")));
}

TEST_CASE("Two ranks train a VQ-VAE with bit-identical codebooks, equal to one process within summation order",
          "[dist][vqvae]") {
  vlm::testing::TempDir dir;
  auto one = sh(kCheck + " --model=vqvae --epochs=3 --out=" + dir.file("one"));
  INFO(one.out);
  REQUIRE(one.rc == 0);
  auto two = sh(kVlm + " launch --nproc=2 -- " + kCheck + " --model=vqvae --epochs=3 --out=" + dir.file("two"));
  INFO(two.out);
  REQUIRE(two.rc == 0);
  CHECK(contains(two.out, "rank 1 of 2: 3 epochs"));
  CHECK(!contains(two.out, "restarts 0\n"));  // the dead-code restarts (and their gathered vectors) were exercised
  const auto single = vqvae_state(dir.file("one/params_rank0.pt"));
  const auto r0 = vqvae_state(dir.file("two/params_rank0.pt")), r1 = vqvae_state(dir.file("two/params_rank1.pt"));
  CHECK(identical(r0, r1));  // weights, codebooks, EMA counts and sums, usage
  const double diff = max_relative_difference(r0, single);
  WARN("VQ-VAE, largest relative difference of parameters and buffers, 2 ranks vs 1 process after 3 epochs: " << diff);
  CHECK(diff < 1e-3);
  CHECK(fs::exists(dir.file("two/vqvae/vqvae.pt")));
  // One process dies in epoch 3; resumed in 2 processes from its state after epoch 2: as 1 process throughout.
  REQUIRE(sh(kCheck + " --model=vqvae --epochs=3 --die_at=3 --out=" + dir.file("cut")).rc == 3);
  auto resumed = sh(kVlm + " launch --nproc=2 -- " + kCheck + " --model=vqvae --epochs=3 --resume --out=" + dir.file("cut"));
  INFO(resumed.out);
  REQUIRE(resumed.rc == 0);
  CHECK(contains(resumed.out, "resuming from"));
  const double d_resume = max_relative_difference(vqvae_state(dir.file("cut/params_rank0.pt")), single);
  WARN("VQ-VAE resumed 1 -> 2 processes vs 1 process throughout: " << d_resume);
  CHECK(d_resume < 1e-3);
}

TEST_CASE("The unsupervised objectives train data-parallel as in one process", "[dist][vqvae]") {
  // Random views drawn for the global batch on every rank, neighbours found alike, IIC's joint distribution summed
  // over the ranks, the pseudo-captions' clusters broadcast, a decoder epoch: two processes train what one does,
  // within summation order. One epoch and the decoder's (7 steps each), without dead-code restarts (dist_check.cpp):
  // IIC's floored logarithms amplify summation-order differences step by step.
  vlm::testing::TempDir dir;
  // OpenBLAS's generic kernels for both runs: its AVX-512 ones (vlm::select_blas_kernels) take other paths for the
  // small products of a rank's half batch than for the whole batch, and IIC amplifies those roundings (1.4e-2 here
  // against 2e-5); the check is about the objectives' arithmetic across ranks, not about the kernels.
  const std::string kernels = "OPENBLAS_CORETYPE=Prescott ";
  auto one = sh(kernels + kCheck + " --model=vqvae_unsupervised --epochs=1 --out=" + dir.file("one"));
  INFO(one.out);
  REQUIRE(one.rc == 0);
  auto two = sh(kernels + kVlm + " launch --nproc=2 -- " + kCheck + " --model=vqvae_unsupervised --epochs=1 --out=" +
                dir.file("two"));
  INFO(two.out);
  REQUIRE(two.rc == 0);
  const auto single = vqvae_state(dir.file("one/params_rank0.pt"));
  const auto r0 = vqvae_state(dir.file("two/params_rank0.pt")), r1 = vqvae_state(dir.file("two/params_rank1.pt"));
  CHECK(identical(r0, r1));
  const double diff = max_relative_difference(r0, single);
  WARN("unsupervised VQ-VAE, largest relative difference, 2 ranks vs 1 process after 1 + 1 epochs: " << diff);
  CHECK(diff < 1e-3);
}

TEST_CASE("Evaluation sharded across two ranks gives one process's figures", "[dist][eval]") {
  vlm::testing::TempDir dir;
  auto one = sh(kCheck + " --model=eval --eval_dir=one --out=" + dir.file("run"));
  INFO(one.out);
  REQUIRE(one.rc == 0);
  auto two = sh(kVlm + " launch --nproc=2 -- " + kCheck + " --model=eval --eval_dir=two --out=" + dir.file("run"));
  INFO(two.out);
  REQUIRE(two.rc == 0);
  CHECK(contains(two.out, "(2 processes)"));
  auto summary = [&](const char* d) {
    return nlohmann::json::parse(vlm::testing::read_text(dir.file(std::string("run/") + d + "/summary.json")));
  };
  const auto a = summary("one"), b = summary("two");
  // Exact classification is deterministic per record: the gathered shards give the same predictions, hence the same
  // confusion matrix, and the same posteriors to within summation order.
  const auto &ea = a["classification_exact"], &eb = b["classification_exact"];
  CHECK(eb["n"] == 256);
  CHECK(eb["accuracy"] == ea["accuracy"]);
  CHECK(eb["confusion"] == ea["confusion"]);
  int64_t predicted_classes = 0;  // the untrained model's answers vary, so records out of order would show
  for (int c = 0; c < 10; ++c) {
    int64_t column = 0;
    for (int t = 0; t < 10; ++t) column += ea["confusion"][t][c].get<int64_t>();
    predicted_classes += column > 0;
  }
  CHECK(predicted_classes >= 2);
  CHECK(std::abs(eb["ece"].get<double>() - ea["ece"].get<double>()) < 1e-6);
  REQUIRE(b["accuracy_over_checkpoints"].size() == 2);
  for (int i = 0; i < 2; ++i)
    CHECK(b["accuracy_over_checkpoints"][i]["accuracy"] == ea["accuracy"]);  // the series holds the same checkpoint
  // Sampled: rank 1 draws from its own stream, so only the assembly is checked: every record answered once.
  int64_t answered = 0;
  for (const auto& row : b["classification_sampled"]["confusion"])
    for (const auto& c : row) answered += c.get<int64_t>();
  CHECK(answered + b["classification_sampled"]["invalid"].get<int64_t>() == 256);
  WARN("sharded evaluation: exact accuracy " << eb["accuracy"] << " (1 process " << ea["accuracy"] << "), sampled "
                                             << b["classification_sampled"]["accuracy"] << " ("
                                             << a["classification_sampled"]["accuracy"] << ")");
}

TEST_CASE("examples/evaluate started by vlm launch shards the evaluation, and rank 0 alone writes", "[dist][eval]") {
  vlm::testing::TempDir dir;
  auto made = sh(kCheck + " --model=eval --out=" + dir.file("m"));
  INFO(made.out);
  REQUIRE(made.rc == 0);
  const std::string args = " --gpt=" + dir.file("m/eval_model.pt") + " --test_text=" + dir.file("m/eval_lines.txt") +
                           " --batch_size=48 --naive_prompts=2 --samples_per_class=2 --threads=1 --out_dir=";
  auto one = sh(kEvaluate + args + dir.file("one"));
  INFO(one.out);
  REQUIRE(one.rc == 0);
  auto two = sh(kVlm + " launch --nproc=2 -- " + kEvaluate + args + dir.file("two"));
  INFO(two.out);
  REQUIRE(two.rc == 0);
  CHECK(contains(two.out, "data-parallel: rank 0 of 2"));
  CHECK(contains(two.out, "(2 processes)"));
  size_t wrote = 0;  // rank 0 alone reports (and writes) the summary
  for (size_t at = two.out.find("wrote "); at != std::string::npos; at = two.out.find("wrote ", at + 1)) ++wrote;
  CHECK(wrote == 1);
  auto summary = [&](const char* d) {
    return nlohmann::json::parse(vlm::testing::read_text(dir.file(std::string(d) + "/summary.json")));
  };
  const auto a = summary("one")["classification_exact"], b = summary("two")["classification_exact"];
  CHECK(b["n"] == 256);
  CHECK(b["accuracy"] == a["accuracy"]);
  CHECK(b["confusion"] == a["confusion"]);
}

TEST_CASE("A run resumes with another number of processes and ends where one process ends", "[dist]") {
  vlm::testing::TempDir dir;
  const std::string common = " --decay_iters=50 --out=";
  REQUIRE(sh(kCheck + " --steps=50" + common + dir.file("one")).rc == 0);
  const auto straight = params(dir.file("one/params_rank0.pt"));
  // 2 processes for 30 steps, then 1 process to 50; and 1 process for 30, then 2 processes to 50.
  auto a1 = sh(kVlm + " launch --nproc=2 -- " + kCheck + " --steps=30" + common + dir.file("two_one"));
  INFO(a1.out);
  REQUIRE(a1.rc == 0);
  auto a2 = sh(kCheck + " --steps=50 --resume" + common + dir.file("two_one"));
  INFO(a2.out);
  REQUIRE(a2.rc == 0);
  REQUIRE(sh(kCheck + " --steps=30" + common + dir.file("one_two")).rc == 0);
  auto b2 = sh(kVlm + " launch --nproc=2 -- " + kCheck + " --steps=50 --resume" + common + dir.file("one_two"));
  INFO(b2.out);
  REQUIRE(b2.rc == 0);
  CHECK(contains(b2.out, "rank 1 of 2: 50 steps"));
  const auto two_one = params(dir.file("two_one/params_rank0.pt"));
  const auto one_two = params(dir.file("one_two/params_rank0.pt"));
  CHECK(identical(one_two, params(dir.file("one_two/params_rank1.pt"))));
  const double d1 = max_relative_difference(two_one, straight), d2 = max_relative_difference(one_two, straight);
  WARN("resumed with another process count vs one process throughout, ||a - b|| / ||b||: 2->1 " << d1 << ", 1->2 "
                                                                                              << d2);
  CHECK(d1 < 1e-4);
  CHECK(d2 < 1e-4);
}

TEST_CASE("mpirun starts the same ranks", "[dist][mpirun]") {
  if (sh("command -v mpirun").rc != 0) {
    WARN("mpirun is not installed (scripts/setup.sh installs openmpi-bin): skipped");
    return;
  }
  vlm::testing::TempDir dir;
  const int64_t port = vlm::free_tcp_port();
  auto r = sh("MASTER_PORT=" + std::to_string(port) + " mpirun --allow-run-as-root --oversubscribe -np 2 " + kCheck +
              " --steps=10 --out=" + dir.file("mpi"));
  INFO(r.out);
  REQUIRE(r.rc == 0);
  CHECK(identical(params(dir.file("mpi/params_rank0.pt")), params(dir.file("mpi/params_rank1.pt"))));
}

TEST_CASE("A rank that dies makes the other stop with an error naming it, not hang", "[dist]") {
  vlm::testing::TempDir dir;
  const std::string port = std::to_string(vlm::free_tcp_port());
  const std::string common = " WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=" + port + " ";
  // By hand, without a launcher that would stop rank 0 itself: rank 1 vanishes before step 5.
  auto r = sh("(" + common + "RANK=0 timeout 120 " + kCheck + " --steps=50 --timeout=10 --out=" + dir.file("a") +
              "; echo rank0_rc=$?) & (" + common + "RANK=1 " + kCheck + " --steps=50 --die_at=5 --timeout=10 --out=" +
              dir.file("a") + "; echo rank1_rc=$?); wait");
  INFO(r.out);
  CHECK(contains(r.out, "rank1_rc=3"));
  CHECK(contains(r.out, "rank0_rc=1"));  // our error, not timeout's 124
  CHECK(contains(r.out, "rank 0 of 2: all-reduce failed: rank 1 stopped"));
  // Through vlm launch: the failure of one rank stops the others and is the launcher's exit status.
  auto l = sh(kVlm + " launch --nproc=2 -- " + kCheck + " --steps=50 --die_at=5 --timeout=30 --out=" + dir.file("b"));
  INFO(l.out);
  CHECK(l.rc == 3);
  CHECK(contains(l.out, "vlm launch: rank 1 exited with status 3; stopping the other ranks"));
  // A rank alone at the rendezvous gives up with an error naming the address.
  auto alone = sh(common + "RANK=0 " + kCheck + " --steps=5 --timeout=3 --out=" + dir.file("c"));
  CHECK(alone.rc == 1);
  CHECK(contains(alone.out, "no rendezvous at 127.0.0.1:" + port));
}

TEST_CASE("vlm run --nproc=2 trains the tokenizer and the GPT data-parallel and ends where one process ends",
          "[dist][pipeline]") {
  vlm::testing::TempDir dir;
  vlm::testing::write_synthetic_mnist(dir.file("data"), 600, 100);
  const std::string args = " run --preset=tiny --data_dir=" + dir.file("data") +
                           " --vq.max_epochs=4 --gpt.max_iters=100 --gpt.lr_decay_iters=100 --run_dir=";
  auto one = sh(kVlm + args + dir.file("one") + " --threads=1");
  INFO(one.out);
  REQUIRE(one.rc == 0);
  auto two = sh(kVlm + args + dir.file("two") + " --nproc=2");
  INFO(two.out);
  REQUIRE(two.rc == 0);
  CHECK(contains(two.out, "[vqvae] running (not run yet, 2 processes)"));
  CHECK(contains(two.out, "[gpt] running (not run yet, 2 processes)"));
  CHECK(contains(two.out, "data-parallel over 2 processes"));
  auto results = [&](const std::string& run, const char* stage) {
    return nlohmann::json::parse(vlm::testing::read_text(dir.file(run + "/" + stage + "/stage.json")))["results"];
  };
  const double mse1 = results("one", "vqvae")["test"]["recon_mse"], mse2 = results("two", "vqvae")["test"]["recon_mse"];
  const double loss1 = results("one", "gpt")["val_loss"], loss2 = results("two", "gpt")["val_loss"];
  WARN("vlm run, 1 vs 2 processes: tokenizer test MSE " << mse1 << " vs " << mse2 << ", GPT val loss " << loss1
                                                        << " vs " << loss2);
  CHECK(std::abs(mse2 - mse1) < 0.05 * mse1);
  CHECK(std::abs(loss2 - loss1) < 0.02 * loss1);
  // Every stage completed once, by rank 0: the run is finished and a second invocation finds it up to date.
  auto again = sh(kVlm + args + dir.file("two") + " --nproc=2");
  INFO(again.out);
  REQUIRE(again.rc == 0);
  CHECK(!contains(again.out, "running ("));
}
