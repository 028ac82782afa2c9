#pragma once
// `--nproc N`: advft as its own launcher on one machine, for hosts without torchrun (a LibTorch
// download and no Python): the same command, run as N processes of one data-parallel run.
#include <string>
#include <vector>

namespace advft::dist {

/// `args` without the launcher's own flag `flag` ("--nproc N" or "--nproc=N"): what each
/// process runs.
std::vector<std::string> without_flag(const std::vector<std::string>& args,
                                      const std::string& flag);

/// A TCP port on 127.0.0.1 that nobody listens on now: the kernel's pick, released at once for
/// rank 0 to take. Throws DistError when there is none.
int free_loopback_port();

/// How a run of local processes ended.
struct LocalRunResult {
  int exit_code = 0;     ///< of the first process that failed (128 + N for signal N); 0: none did
  int failed_rank = -1;  ///< which one that was
};

/// Runs this program again as `count` local processes (its command line from /proc/self/cmdline
/// without `flag`), each with torchrun's variables: WORLD_SIZE, RANK, LOCAL_RANK,
/// LOCAL_WORLD_SIZE, MASTER_ADDR 127.0.0.1 and MASTER_PORT (a free port, or the one set). A
/// SIGINT or SIGTERM here is passed on to them once; they end when this process dies. When one
/// fails, the others get 30 s to stop on their own, then SIGTERM, then SIGKILL. Throws DistError
/// when the processes cannot be started.
LocalRunResult run_local_processes(int count, const std::string& flag);

}  // namespace advft::dist
