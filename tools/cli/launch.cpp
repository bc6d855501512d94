#include "tools/cli/launch.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <iostream>
#include <stdexcept>
#include <thread>

#include "datasets/input_error.h"
#include "trainers/distributed.h"

namespace nlpkit {
namespace {

volatile std::sig_atomic_t g_forward_signal = 0;
extern "C" void on_launch_signal(int sig) { g_forward_signal = sig; }

/// The exit code a shell would show for a child's wait status.
int exit_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

std::string describe(int status) {
  if (WIFSIGNALED(status)) {
    return "was killed by signal " + std::to_string(WTERMSIG(status)) + " (" +
           strsignal(WTERMSIG(status)) + ")";
  }
  return "exited with code " + std::to_string(exit_code(status));
}

}  // namespace

int launch_local_ranks(int64_t nproc, const std::vector<std::string>& arguments, int master_port,
                       double grace_seconds) {
  if (nproc < 1) throw InputError("launch: --nproc must be >= 1, found " + std::to_string(nproc));
  if (arguments.empty()) throw InputError("launch: no command given (e.g. train cfg.yaml)");
  if (arguments[0] == "launch") throw InputError("launch: cannot launch 'launch'");
  if (master_port == 0) master_port = free_tcp_port();

  // Not SA_RESTART: a signal must interrupt waitpid so that it is passed on at once.
  struct sigaction action {};
  action.sa_handler = on_launch_signal;
  sigemptyset(&action.sa_mask);
  struct sigaction old_int = {};
  struct sigaction old_term = {};
  sigaction(SIGINT, &action, &old_int);
  sigaction(SIGTERM, &action, &old_term);

  std::vector<pid_t> pids;
  for (int64_t rank = 0; rank < nproc; ++rank) {
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error(std::string("launch: fork: ") + std::strerror(errno));
    if (pid == 0) {
      sigaction(SIGINT, &old_int, nullptr);
      sigaction(SIGTERM, &old_term, nullptr);
      setenv("RANK", std::to_string(rank).c_str(), 1);
      setenv("LOCAL_RANK", std::to_string(rank).c_str(), 1);
      setenv("WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      setenv("LOCAL_WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      setenv("MASTER_ADDR", "127.0.0.1", 1);
      setenv("MASTER_PORT", std::to_string(master_port).c_str(), 1);
      std::vector<std::string> args = {"nlpkit"};
      args.insert(args.end(), arguments.begin(), arguments.end());
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv("/proc/self/exe", argv.data());
      std::fprintf(stderr, "launch: cannot start rank %lld: %s\n", static_cast<long long>(rank),
                   std::strerror(errno));
      ::_exit(127);
    }
    pids.push_back(pid);
  }

  int result = 0;
  int64_t running = nproc;
  bool stopping = false;
  auto deadline = std::chrono::steady_clock::time_point::max();
  auto signal_all = [&](int sig) {
    for (pid_t pid : pids) {
      if (pid > 0) ::kill(pid, sig);
    }
  };
  while (running > 0) {
    if (g_forward_signal != 0) {
      signal_all(g_forward_signal);
      g_forward_signal = 0;
    }
    int status = 0;
    // While stopping, poll so that the SIGKILL deadline is kept.
    const pid_t pid = ::waitpid(-1, &status, stopping ? WNOHANG : 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (pid == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        std::cerr << "launch: ranks still running " << grace_seconds
                  << " s after SIGTERM; killing them\n";
        signal_all(SIGKILL);
        deadline = std::chrono::steady_clock::time_point::max();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    int64_t rank = -1;
    for (size_t i = 0; i < pids.size(); ++i) {
      if (pids[i] == pid) {
        rank = static_cast<int64_t>(i);
        pids[i] = -1;
      }
    }
    if (rank < 0) continue;
    --running;
    const int code = exit_code(status);
    if (code != 0 && result == 0) {
      result = code;
      if (running > 0 && !stopping) {
        std::cerr << "launch: rank " << rank << " " << describe(status) << "; stopping the other "
                  << running << " rank(s)\n";
        signal_all(SIGTERM);
        stopping = true;
        deadline = std::chrono::steady_clock::now() +
                   std::chrono::milliseconds(static_cast<int64_t>(grace_seconds * 1000));
      } else {
        std::cerr << "launch: rank " << rank << " " << describe(status) << "\n";
      }
    }
  }
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  return result;
}

}  // namespace nlpkit
