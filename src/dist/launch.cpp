#include "advft/dist/launch.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <thread>

#include <spdlog/spdlog.h>

#include "advft/error.h"
#include "advft/runtime/signals.h"

namespace advft::dist {
namespace {

using Clock = std::chrono::steady_clock;

std::vector<std::string> own_command_line() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> args;
  std::string arg;
  for (const char c : bytes) {
    if (c == '\0') {
      args.push_back(arg);
      arg.clear();
    } else {
      arg += c;
    }
  }
  if (args.empty()) throw DistError("--nproc: cannot read this process's command line");
  return args;
}

// The child's side of fork(): only async-signal-safe calls until exec.
[[noreturn]] void exec_rank(const std::vector<char*>& argv, const std::vector<char*>& envp) {
  ::setpgid(0, 0);  // a terminal's Ctrl-C reaches the launcher alone, which passes it on once
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  ::execve("/proc/self/exe", argv.data(), envp.data());
  ::_exit(127);
}

int status_code(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

int free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  const bool ok = fd >= 0 &&
                  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0;
  if (fd >= 0) ::close(fd);
  if (!ok) throw DistError("--nproc: found no free port on 127.0.0.1; set MASTER_PORT");
  return ntohs(address.sin_port);
}

std::vector<std::string> without_flag(const std::vector<std::string>& args,
                                      const std::string& flag) {
  std::vector<std::string> out;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == flag) {
      ++i;  // and its value
    } else if (args[i].rfind(flag + "=", 0) != 0) {
      out.push_back(args[i]);
    }
  }
  return out;
}

LocalRunResult run_local_processes(int count, const std::string& flag) {
  const std::vector<std::string> args = without_flag(own_command_line(), flag);
  const char* set_port = std::getenv("MASTER_PORT");
  const std::string port = set_port != nullptr && *set_port ? std::string(set_port)
                                                            : std::to_string(free_loopback_port());
  // Each child's environment: this one's, with torchrun's variables in place of any it had.
  std::vector<std::string> common;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    const std::string name = entry.substr(0, entry.find('='));
    if (name != "WORLD_SIZE" && name != "RANK" && name != "LOCAL_RANK" &&
        name != "LOCAL_WORLD_SIZE" && name != "MASTER_ADDR" && name != "MASTER_PORT" &&
        name != "TORCHELASTIC_USE_AGENT_STORE")
      common.push_back(entry);
  }
  for (const std::string& entry :
       {"WORLD_SIZE=" + std::to_string(count), "LOCAL_WORLD_SIZE=" + std::to_string(count),
        std::string("MASTER_ADDR=127.0.0.1"), "MASTER_PORT=" + port}) {
    common.push_back(entry);
  }
  spdlog::info("--nproc {}: starting {} processes on this machine (MASTER_PORT {})", count, count,
               port);

  std::vector<pid_t> children;
  for (int rank = 0; rank < count; ++rank) {
    std::vector<std::string> env = common;
    env.push_back("RANK=" + std::to_string(rank));
    env.push_back("LOCAL_RANK=" + std::to_string(rank));
    // Built before fork: the child may not allocate.
    std::vector<char*> argv;
    for (const std::string& a : args)
      argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    std::vector<char*> envp;
    for (const std::string& e : env)
      envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) exec_rank(argv, envp);
    if (pid < 0) {
      for (const pid_t child : children)
        ::kill(child, SIGKILL);
      throw DistError("--nproc: could not start process " + std::to_string(rank) + " of " +
                      std::to_string(count));
    }
    children.push_back(pid);
  }

  LocalRunResult result;
  int running = count;
  bool forwarded = false;
  Clock::time_point failed_at{};
  int escalation = 0;  // 0: wait, 1: SIGTERM sent, 2: SIGKILL sent
  while (running > 0) {
    for (size_t rank = 0; rank < children.size(); ++rank) {
      int status = 0;
      pid_t& child = children[rank];
      if (child > 0 && ::waitpid(child, &status, WNOHANG) == child) {
        child = -1;
        --running;
        const int code = status_code(status);
        if (code != 0 && result.exit_code == 0) {
          result = {code, static_cast<int>(rank)};
          failed_at = Clock::now();
        }
      }
    }
    if (const int signal = runtime::stop_signal(); signal != 0 && !forwarded) {
      for (const pid_t child : children)
        if (child > 0) ::kill(child, signal);
      forwarded = true;
    }
    // A process that failed before meeting the others would leave them waiting for it.
    if (result.exit_code != 0 && running > 0) {
      const auto waited = Clock::now() - failed_at;
      const int due = waited > std::chrono::seconds(40)   ? 2
                      : waited > std::chrono::seconds(30) ? 1
                                                          : 0;
      for (; escalation < due; ++escalation) {
        for (const pid_t child : children)
          if (child > 0) ::kill(child, escalation == 0 ? SIGTERM : SIGKILL);
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return result;
}

}  // namespace advft::dist
