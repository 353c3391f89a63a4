#include "vlm/dist/process_group.h"

#include <algorithm>
#include <cstdlib>
#include <thread>

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "vlm/core/check.h"

namespace vlm {

namespace {

const char* getenv_nonempty(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

int64_t env_int(const char* name, int64_t fallback) {
  const char* v = getenv_nonempty(name);
  if (!v) return fallback;
  char* end = nullptr;
  const long long x = std::strtoll(v, &end, 10);
  VLM_CHECK(end && *end == '\0' && x >= 0, "environment variable ", name, "='", v, "' is not a non-negative integer");
  return x;
}

// c10d's errors carry a C++ backtrace: keep the message.
std::string brief(const std::exception& e) {
  if (const auto* c = dynamic_cast<const c10::Error*>(&e)) return c->what_without_backtrace();
  std::string s = e.what();
  return s.substr(0, s.find('\n'));
}

}  // namespace

std::string DistEnv::summary() const {
  if (!distributed()) return "single process";
  return fmt::format("rank {} of {} ({}, local rank {}, rendezvous {}:{})", rank, world_size, launcher, local_rank,
                     master_addr, master_port);
}

DistEnv dist_env_from_environment() {
  DistEnv e;
  if (getenv_nonempty("WORLD_SIZE")) {
    e.launcher = "torchrun";
    e.world_size = env_int("WORLD_SIZE", 1);
    e.rank = env_int("RANK", 0);
    e.local_rank = env_int("LOCAL_RANK", e.rank);
    e.local_world_size = env_int("LOCAL_WORLD_SIZE", e.world_size);
  } else if (getenv_nonempty("OMPI_COMM_WORLD_SIZE")) {
    e.launcher = "mpirun";
    e.world_size = env_int("OMPI_COMM_WORLD_SIZE", 1);
    e.rank = env_int("OMPI_COMM_WORLD_RANK", 0);
    e.local_rank = env_int("OMPI_COMM_WORLD_LOCAL_RANK", e.rank);
    e.local_world_size = env_int("OMPI_COMM_WORLD_LOCAL_SIZE", e.world_size);
  } else if (getenv_nonempty("SLURM_NTASKS") && getenv_nonempty("SLURM_PROCID")) {
    e.launcher = "slurm";
    e.world_size = env_int("SLURM_NTASKS", 1);
    e.rank = env_int("SLURM_PROCID", 0);
    e.local_rank = env_int("SLURM_LOCALID", e.rank);
    e.local_world_size = env_int("SLURM_NTASKS_PER_NODE", e.world_size);
  }
  VLM_CHECK(e.world_size >= 1, "the world size (", e.launcher, ") must be at least 1, got ", e.world_size);
  VLM_CHECK(e.rank < e.world_size, "rank ", e.rank, " is not below the world size ", e.world_size, " (", e.launcher,
            " environment)");
  if (const char* a = getenv_nonempty("MASTER_ADDR")) e.master_addr = a;
  e.master_port = env_int("MASTER_PORT", 29500);
  VLM_CHECK(e.master_port > 0 && e.master_port < 65536, "MASTER_PORT=", e.master_port, " is not a TCP port");
  return e;
}

int DistEnv::threads_per_rank(int requested) const {
  if (requested > 0 || !distributed()) return requested;
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::max(1, cores / static_cast<int>(std::max<int64_t>(1, local_world_size)));
}

struct ProcessGroup::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroup> pg;
};

ProcessGroup::ProcessGroup() = default;
ProcessGroup::~ProcessGroup() = default;
ProcessGroup::ProcessGroup(ProcessGroup&&) noexcept = default;
ProcessGroup& ProcessGroup::operator=(ProcessGroup&&) noexcept = default;

ProcessGroup::ProcessGroup(const DistEnv& e, c10::Device device, std::chrono::milliseconds timeout)
    : env_(e), device_(device), timeout_(timeout) {
  if (!e.distributed()) return;
  VLM_CHECK(device.is_cpu(), "data-parallel training on ", device.str(),
            " needs NCCL, which this LibTorch (Debian's, CPU only) does not have; use --device=cpu (Gloo)");
  impl_ = std::make_unique<Impl>();
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(e.master_port);
    so.isServer = e.rank == 0;
    so.numWorkers = static_cast<std::size_t>(e.world_size);
    so.waitWorkers = true;
    so.timeout = timeout;
    impl_->store = c10::make_intrusive<c10d::TCPStore>(e.master_addr, so);
  } catch (const std::exception& ex) {
    VLM_FAIL("rank ", e.rank, " of ", e.world_size, ": no rendezvous at ", e.master_addr, ":", e.master_port,
             " within ", timeout.count() / 1000.0, " s (", brief(ex),
             "); is every rank started, and MASTER_ADDR/MASTER_PORT the same for all?");
  }
  auto opts = c10d::ProcessGroupGloo::Options::create();
  opts->timeout = timeout;
  // Gloo binds to the interface of this host name; GLOO_SOCKET_IFNAME picks one (docs/distributed.md).
  if (const char* ifname = getenv_nonempty("GLOO_SOCKET_IFNAME"))
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
  else
    opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(e.master_addr));
  try {
    impl_->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, static_cast<int>(e.rank),
                                                            static_cast<int>(e.world_size), opts);
  } catch (const std::exception& ex) {
    VLM_FAIL("rank ", e.rank, " of ", e.world_size, ": no rendezvous at ", e.master_addr, ":", e.master_port,
             " with all ", e.world_size, " ranks within ", timeout.count() / 1000.0, " s (", brief(ex),
             "); is every rank started, and MASTER_ADDR/MASTER_PORT the same for all?");
  }
}

ProcessGroup ProcessGroup::from_environment(c10::Device device, std::chrono::milliseconds timeout) {
  return ProcessGroup(dist_env_from_environment(), device, timeout);
}

namespace {
// Runs a collective and waits for it; c10d's timeout or a lost peer becomes a vlm::Error naming the ranks.
void run(const c10::intrusive_ptr<c10d::Work>& work, const DistEnv& e, const char* what,
         std::chrono::milliseconds timeout) {
  try {
    work->wait(timeout);
  } catch (const std::exception& ex) {
    const std::string lost = e.world_size == 2 ? fmt::format("rank {}", 1 - e.rank) : std::string("another rank");
    VLM_FAIL("rank ", e.rank, " of ", e.world_size, ": ", what, " failed: ", lost,
             " stopped or did not answer within ", timeout.count() / 1000.0, " s (", brief(ex), ")");
  }
}
}  // namespace

void ProcessGroup::broadcast(const std::vector<at::Tensor>& tensors, int64_t root) {
  if (!distributed() || tensors.empty()) return;
  for (const auto& t : tensors) {
    std::vector<at::Tensor> one{t.is_contiguous() ? t : t.contiguous()};
    c10d::BroadcastOptions o;
    o.rootRank = static_cast<int>(root);
    run(impl_->pg->broadcast(one, o), env_, "broadcast", timeout_);
    if (!t.is_contiguous()) t.copy_(one[0]);
  }
}

void ProcessGroup::all_reduce_mean(const std::vector<at::Tensor>& tensors, int64_t bucket_bytes) {
  all_reduce_sum(tensors, bucket_bytes);
  if (distributed())
    for (const auto& t : tensors) t.div_(static_cast<double>(env_.world_size));
}

void ProcessGroup::all_reduce_sum(const std::vector<at::Tensor>& tensors, int64_t bucket_bytes) {
  if (!distributed() || tensors.empty()) return;
  // Flattened buckets: one collective per ~bucket_bytes instead of one per tensor.
  size_t i = 0;
  while (i < tensors.size()) {
    std::vector<at::Tensor> bucket;
    int64_t bytes = 0;
    const auto dtype = tensors[i].scalar_type();
    while (i < tensors.size() && tensors[i].scalar_type() == dtype && (bucket.empty() || bytes < bucket_bytes)) {
      bytes += tensors[i].numel() * static_cast<int64_t>(tensors[i].element_size());
      bucket.push_back(tensors[i++]);
    }
    std::vector<at::Tensor> pieces;
    for (const auto& t : bucket) pieces.push_back(t.reshape({-1}));
    std::vector<at::Tensor> flat{at::cat(pieces)};
    run(impl_->pg->allreduce(flat), env_, "all-reduce", timeout_);
    int64_t offset = 0;
    for (auto& t : bucket) {
      t.copy_(flat[0].narrow(0, offset, t.numel()).view_as(t));
      offset += t.numel();
    }
  }
}

void ProcessGroup::average_gradients(const std::vector<at::Tensor>& parameters) {
  if (!distributed()) return;
  std::vector<at::Tensor> grads;
  for (const auto& p : parameters)
    if (p.grad().defined()) grads.push_back(p.mutable_grad());
  all_reduce_mean(grads);
}

std::vector<double> ProcessGroup::all_reduce_sum(const std::vector<double>& values) {
  if (!distributed() || values.empty()) return values;
  std::vector<at::Tensor> t{at::tensor(values, at::kDouble)};
  run(impl_->pg->allreduce(t), env_, "all-reduce", timeout_);
  return std::vector<double>(t[0].data_ptr<double>(), t[0].data_ptr<double>() + t[0].numel());
}

void ProcessGroup::barrier() {
  if (!distributed()) return;
  // A tiny all-reduce: Gloo's barrier takes no timeout of its own in 1.13.
  all_reduce_sum(std::vector<double>{0.0});
}

}  // namespace vlm
