#pragma once
// One machine's launcher (`vlm launch --nproc=N -- COMMAND ...`): starts N copies of a command with torchrun's
// environment (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), forwards SIGINT/SIGTERM to
// them, and stops the others when one fails, so a crashed rank never leaves its peers waiting; the ranks die with the
// launcher when it is killed (PR_SET_PDEATHSIG). mpirun, srun and torchrun start vlm the same way
// (vlm/dist/process_group.h reads all three).
#include <cstdint>
#include <string>
#include <vector>

namespace vlm {

struct LaunchOptions {
  int64_t nproc = 2;
  std::string master_addr = "127.0.0.1";
  int64_t master_port = 0;         ///< 0 = a free port chosen here
  double grace_seconds = 10;       ///< after one rank fails, the others get SIGTERM, then SIGKILL after this
  bool quiet = false;
};

/// A TCP port nothing listens on now (bound and released), for a rendezvous on `addr`.
int64_t free_tcp_port(const std::string& addr = "127.0.0.1");

/// Runs `command` (argv, searched in PATH) `nproc` times and waits. Returns 0 when every rank exits 0, otherwise the
/// first failing rank's exit status (128 + signal when it was killed), after printing which rank failed and how.
int launch_local(const LaunchOptions& options, const std::vector<std::string>& command);

}  // namespace vlm
