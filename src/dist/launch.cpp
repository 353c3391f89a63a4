#include "vlm/dist/launch.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include <fmt/format.h>

#include "vlm/core/check.h"

namespace vlm {

namespace {
volatile sig_atomic_t g_forward_signal = 0;
void remember_signal(int sig) { g_forward_signal = sig; }
}  // namespace

int64_t free_tcp_port(const std::string& addr) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  VLM_CHECK(fd >= 0, "free_tcp_port: socket(): ", std::strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = 0;
  VLM_CHECK(::inet_pton(AF_INET, addr.c_str(), &a.sin_addr) == 1, "free_tcp_port: '", addr, "' is not an IPv4 address");
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    VLM_FAIL("free_tcp_port: cannot bind to ", addr, ": ", why);
  }
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

int launch_local(const LaunchOptions& o, const std::vector<std::string>& command) {
  VLM_CHECK(o.nproc >= 1, "--nproc must be at least 1, got ", o.nproc);
  VLM_CHECK(!command.empty(), "vlm launch: give the command after --, e.g. vlm launch --nproc=2 -- train_gpt ...");
  const int64_t port = o.master_port > 0 ? o.master_port : free_tcp_port(o.master_addr);
  if (!o.quiet)
    fmt::print(stderr, "vlm launch: {} processes of {}, rendezvous {}:{}\n", o.nproc, command[0], o.master_addr, port);

  struct sigaction sa{}, old_int{}, old_term{};
  sa.sa_handler = remember_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);

  std::vector<pid_t> pids;
  const pid_t launcher = ::getpid();
  for (int64_t r = 0; r < o.nproc; ++r) {
    const pid_t pid = ::fork();
    VLM_CHECK(pid >= 0, "vlm launch: fork(): ", std::strerror(errno));
    if (pid == 0) {
      // A launcher killed with SIGKILL cannot forward it: the kernel kills the ranks with it instead, so no rank
      // outlives it holding the run directory's lock or waiting for peers. (If the launcher died before the prctl,
      // getppid() has changed already.)
      if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != launcher) std::_Exit(128 + SIGKILL);
      ::setenv("RANK", std::to_string(r).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(o.nproc).c_str(), 1);
      ::setenv("LOCAL_WORLD_SIZE", std::to_string(o.nproc).c_str(), 1);
      ::setenv("MASTER_ADDR", o.master_addr.c_str(), 1);
      ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      std::vector<char*> argv;
      for (const auto& a : command) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execvp(argv[0], argv.data());
      std::fprintf(stderr, "vlm launch: cannot run '%s': %s\n", argv[0], std::strerror(errno));
      std::_Exit(127);
    }
    pids.push_back(pid);
  }

  int first_failure = 0;
  size_t running = pids.size();
  auto stop_deadline = std::chrono::steady_clock::time_point::max();
  bool killed = false;
  auto signal_all = [&](int sig) {
    for (pid_t p : pids)
      if (p > 0) ::kill(p, sig);
  };
  while (running > 0) {
    if (g_forward_signal) {
      signal_all(g_forward_signal);
      g_forward_signal = 0;
    }
    int status = 0;
    const pid_t done = ::waitpid(-1, &status, WNOHANG);
    if (done > 0) {
      for (size_t r = 0; r < pids.size(); ++r) {
        if (pids[r] != done) continue;
        pids[r] = -1;
        --running;
        const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (code != 0 && first_failure == 0) {
          first_failure = code;
          fmt::print(stderr, "vlm launch: rank {} {} {}; stopping the other ranks\n", r,
                     WIFEXITED(status) ? "exited with status" : "was killed by signal",
                     WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
          signal_all(SIGTERM);
          stop_deadline = std::chrono::steady_clock::now() +
                          std::chrono::milliseconds(static_cast<int64_t>(o.grace_seconds * 1000));
        }
      }
      continue;
    }
    if (!killed && std::chrono::steady_clock::now() > stop_deadline) {
      signal_all(SIGKILL);
      killed = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  return first_failure;
}

}  // namespace vlm
