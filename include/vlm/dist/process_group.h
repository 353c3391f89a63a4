#pragma once
// Data-parallel training on LibTorch's own distributed engine (c10d): a process group set up from the environment
// that the launchers clusters use, so `mpirun`, `srun`, torchrun and `vlm launch` start any vlm tool unchanged.
//
//   torchrun / vlm launch:  RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT
//   OpenMPI's mpirun:       OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE, OMPI_COMM_WORLD_LOCAL_RANK
//   Slurm's srun:           SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID
// (the rendezvous is always MASTER_ADDR:MASTER_PORT, default 127.0.0.1:29500). Without any of them the process is
// alone: world size 1, and every call below is a no-op, so single-process code pays nothing.
//
//   vlm::ProcessGroup pg = vlm::ProcessGroup::from_environment(device);   // Gloo on CPU, NCCL on CUDA
//   pg.broadcast(model->parameters());           // rank 0's weights everywhere
//   GradientReducer reducer(pg, model->parameters());   // gradients summed while backward runs (below)
//   if (pg.is_main()) save_checkpoint(...);
//
// A rank that dies or never arrives turns into a vlm::Error naming it on every surviving rank after `timeout`, not a
// hang (c10d's own timeout on every collective; the store's on the rendezvous).
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

namespace vlm {

/// Who this process is, read from the environment.
struct DistEnv {
  int64_t rank = 0, world_size = 1, local_rank = 0;
  int64_t local_world_size = 1;  ///< ranks on this machine (LOCAL_WORLD_SIZE, OMPI_COMM_WORLD_LOCAL_SIZE, ...)
  std::string master_addr = "127.0.0.1";
  int64_t master_port = 29500;
  std::string launcher = "none";  ///< "torchrun" (RANK/WORLD_SIZE), "mpirun", "slurm" or "none"
  bool distributed() const { return world_size > 1; }
  std::string summary() const;  ///< "rank 1 of 2 (mpirun, local rank 1, rendezvous 127.0.0.1:29500)"
  /// Threads for this rank when the user asked for "all cores" (0): the machine's cores shared by its ranks.
  int threads_per_rank(int requested) const;
};
/// Reads the variables above; inconsistent values (rank >= world size, a bad number) are an error naming the variable.
DistEnv dist_env_from_environment();

class ProcessGroup {
 public:
  /// A group of one: every collective is a no-op.
  ProcessGroup();
  /// Joins the group described by `env` (rendezvous through a TCPStore that rank 0 serves): Gloo for CPU tensors,
  /// NCCL for CUDA ones when LibTorch was built with it (a clear error otherwise).
  ProcessGroup(const DistEnv& env, c10::Device device, std::chrono::milliseconds timeout = std::chrono::seconds(60));
  static ProcessGroup from_environment(c10::Device device,
                                       std::chrono::milliseconds timeout = std::chrono::seconds(60));
  ~ProcessGroup();
  ProcessGroup(ProcessGroup&&) noexcept;
  ProcessGroup& operator=(ProcessGroup&&) noexcept;

  int64_t rank() const { return env_.rank; }
  int64_t world_size() const { return env_.world_size; }
  bool is_main() const { return env_.rank == 0; }
  bool distributed() const { return env_.world_size > 1; }
  const DistEnv& env() const { return env_; }

  /// Rank `root`'s values into every rank's tensors, in place.
  void broadcast(const std::vector<at::Tensor>& tensors, int64_t root = 0);
  /// Sums in place across ranks: one flattened all-reduce per bucket of up to `bucket_bytes` of one dtype.
  void all_reduce_sum(const std::vector<at::Tensor>& tensors, int64_t bucket_bytes = 25 << 20);
  /// Scalars summed across ranks (metrics).
  std::vector<double> all_reduce_sum(const std::vector<double>& values);
  /// This rank's contiguous share [first, last) of n items: [n r / W, n (r+1) / W) ([0, n) in a group of one).
  std::pair<int64_t, int64_t> shard(int64_t n) const {
    return {n * env_.rank / env_.world_size, n * (env_.rank + 1) / env_.world_size};
  }
  /// Every rank's rows of x (n_r, ...) concatenated in rank order (sum_r n_r, ...); the ranks may hold different
  /// numbers of rows but the same trailing shape and dtype. Exact: each value is summed only with zeros.
  at::Tensor all_gather_rows(const at::Tensor& x);
  /// Waits for every rank, within the group's timeout (for a longer wait on rank 0, wait_for_main).
  void barrier();
  /// Rank 0 arrives when it has finished work the others do not share (a stage of minutes); they wait for it up to
  /// `timeout`. A wait on the rendezvous store, not a collective: Gloo's transport gives up on a peer after the
  /// group's timeout, whatever a collective asks. A rank 0 that dies ends the wait with an error (its store closes).
  void wait_for_main(std::chrono::milliseconds timeout);

 private:
  friend class GradientReducer;
  DistEnv env_;
  c10::Device device_ = c10::kCPU;
  std::chrono::milliseconds timeout_{60000};
  int64_t main_waits_ = 0;  // wait_for_main calls so far: the same sequence of keys on every rank
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Gradient summing overlapped with the backward pass, the way PyTorch's DDP does it: the parameters are cut into
/// buckets in reverse order (the order backward produces their gradients), and each bucket's all-reduce starts, on
/// Gloo's own thread, as soon as its last gradient arrives, while backward goes on with earlier layers.
///
///   GradientReducer reducer(group, model->parameters());
///   reducer.begin({loss_sum});      // scalars to sum along (started now)
///   loss.backward();                // buckets start as their gradients arrive
///   reducer.finish();               // waits; every .grad now holds the sum over ranks
class GradientReducer {
 public:
  GradientReducer(ProcessGroup& group, std::vector<at::Tensor> parameters, int64_t bucket_bytes = 1 << 20);
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;
  void begin(const std::vector<at::Tensor>& extras = {});
  void finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vlm
