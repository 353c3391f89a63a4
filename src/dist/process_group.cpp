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

std::vector<double> ProcessGroup::all_reduce_sum(const std::vector<double>& values) {
  if (!distributed() || values.empty()) return values;
  std::vector<at::Tensor> t{at::tensor(values, at::kDouble)};
  run(impl_->pg->allreduce(t), env_, "all-reduce", timeout_);
  return std::vector<double>(t[0].data_ptr<double>(), t[0].data_ptr<double>() + t[0].numel());
}

at::Tensor ProcessGroup::all_gather_rows(const at::Tensor& x) {
  if (!distributed()) return x;
  const int64_t W = world_size();
  std::vector<double> counts(W, 0.0);
  counts[rank()] = static_cast<double>(x.size(0));
  counts = all_reduce_sum(counts);
  int64_t most = 0;
  for (double c : counts) most = std::max<int64_t>(most, static_cast<int64_t>(c));
  auto shape = x.sizes().vec();
  shape[0] = most;
  shape.insert(shape.begin(), W);
  auto slots = at::zeros(shape, x.options());  // (W, most, ...): this rank's slot filled, the others zero
  slots.select(0, rank()).narrow(0, 0, x.size(0)).copy_(x);
  all_reduce_sum({slots});
  std::vector<at::Tensor> parts;
  for (int64_t r = 0; r < W; ++r) parts.push_back(slots.select(0, r).narrow(0, 0, static_cast<int64_t>(counts[r])));
  return at::cat(parts);
}

void ProcessGroup::barrier() {
  if (!distributed()) return;
  // A tiny all-reduce: Gloo's barrier takes no timeout of its own in 1.13.
  std::vector<at::Tensor> t{at::zeros({1}, at::kDouble)};
  run(impl_->pg->allreduce(t), env_, "barrier", timeout_);
}

void ProcessGroup::wait_for_main(std::chrono::milliseconds timeout) {
  if (!distributed()) return;
  const std::string key = fmt::format("vlm/main_done/{}", main_waits_++);
  try {
    if (is_main()) impl_->store->set(key, std::vector<uint8_t>{1});
    else impl_->store->wait({key}, timeout);
  } catch (const std::exception& ex) {
    VLM_FAIL("rank ", env_.rank, " of ", env_.world_size, ": waiting for rank 0 failed: rank 0 stopped or did not ",
             "finish within ", timeout.count() / 1000.0, " s (", brief(ex), ")");
  }
  barrier();  // then all together, within the group's own timeout
}

struct GradientReducer::Impl {
  ProcessGroup* group = nullptr;
  std::vector<at::Tensor> params;
  std::vector<std::vector<size_t>> buckets;  // parameter indices, in the order their gradients arrive
  std::vector<size_t> bucket_of;
  std::vector<size_t> waiting;               // gradients still missing per bucket
  std::vector<at::Tensor> grads;             // the incoming gradient of each parameter this step
  std::vector<at::Tensor> flat;              // per bucket: the flattened gradients being summed
  std::vector<c10::intrusive_ptr<c10d::Work>> work;
  std::vector<at::Tensor> extras;
  c10::intrusive_ptr<c10d::Work> extras_work;
  size_t next_bucket = 0;  // buckets start in order on every rank (Gloo pairs collectives by order)
  bool active = false;

  void launch_ready() {
    while (next_bucket < buckets.size() && waiting[next_bucket] == 0) {
      std::vector<at::Tensor> pieces;
      for (size_t i : buckets[next_bucket])
        pieces.push_back(grads[i].defined() ? grads[i].reshape({-1}) : at::zeros({params[i].numel()}, params[i].options()));
      flat[next_bucket] = at::cat(pieces);
      std::vector<at::Tensor> one{flat[next_bucket]};
      work[next_bucket] = group->impl_->pg->allreduce(one);
      ++next_bucket;
    }
  }
};

GradientReducer::GradientReducer(ProcessGroup& group, std::vector<at::Tensor> parameters, int64_t bucket_bytes)
    : impl_(std::make_unique<Impl>()) {
  auto& m = *impl_;
  m.group = &group;
  // Only what backward produces: a parameter without gradient (an EMA codebook) is set identically on every rank.
  for (auto& p : parameters)
    if (p.requires_grad()) m.params.push_back(std::move(p));
  if (!group.distributed()) return;
  m.bucket_of.assign(m.params.size(), 0);
  int64_t bytes = bucket_bytes;
  for (size_t k = m.params.size(); k-- > 0;) {  // backward produces the last layers' gradients first
    if (bytes >= bucket_bytes) m.buckets.emplace_back(), bytes = 0;
    m.buckets.back().push_back(k);
    m.bucket_of[k] = m.buckets.size() - 1;
    bytes += m.params[k].numel() * static_cast<int64_t>(m.params[k].element_size());
  }
  m.flat.resize(m.buckets.size());
  m.work.resize(m.buckets.size());
  m.waiting.resize(m.buckets.size());
  m.grads.resize(m.params.size());
  for (size_t k = 0; k < m.params.size(); ++k) {
    m.params[k].register_hook([impl = impl_.get(), k](const at::Tensor& grad) {
      if (impl->active) {
        impl->grads[k] = grad;
        --impl->waiting[impl->bucket_of[k]];
        impl->launch_ready();
      }
      return grad;
    });
  }
}

GradientReducer::~GradientReducer() = default;

void GradientReducer::begin(const std::vector<at::Tensor>& extras) {
  auto& m = *impl_;
  if (!m.group->distributed()) return;
  for (size_t b = 0; b < m.buckets.size(); ++b) {
    m.waiting[b] = m.buckets[b].size();
  }
  for (auto& g : m.grads) g = at::Tensor();
  m.next_bucket = 0;
  m.extras = extras;
  m.extras_work.reset();
  if (!extras.empty()) m.extras_work = m.group->impl_->pg->allreduce(m.extras);
  m.active = true;
}

void GradientReducer::finish() {
  auto& m = *impl_;
  if (!m.group->distributed()) return;
  m.active = false;
  // Parameters that got no gradient this step still sum (as zeros), so every rank issues the same collectives.
  for (size_t b = m.next_bucket; b < m.buckets.size(); ++b) m.waiting[b] = 0;
  m.launch_ready();
  const auto& e = m.group->env();
  if (m.extras_work) run(m.extras_work, e, "all-reduce", m.group->timeout_);
  for (size_t b = 0; b < m.buckets.size(); ++b) {
    run(m.work[b], e, "all-reduce", m.group->timeout_);
    int64_t offset = 0;
    for (size_t k : m.buckets[b]) {
      auto& p = m.params[k];
      const int64_t n = p.numel();
      auto summed = m.flat[b].narrow(0, offset, n).view_as(p);
      if (p.grad().defined()) p.mutable_grad().copy_(summed);
      else p.mutable_grad() = summed.clone();
      offset += n;
    }
  }
}

}  // namespace vlm
