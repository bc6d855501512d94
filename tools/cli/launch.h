// `nlpkit launch --nproc N train cfg.yaml`: N ranks of one nlpkit command on this machine, with
// the environment torchrun would give them, so that trainers/distributed.h connects them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace nlpkit {

/// Runs `nproc` copies of this executable with `arguments` (e.g. {"train", "cfg.yaml"}), rank i
/// with RANK=i, LOCAL_RANK=i, WORLD_SIZE=LOCAL_WORLD_SIZE=nproc, MASTER_ADDR=127.0.0.1 and
/// MASTER_PORT=`master_port` (0 = a free one). SIGINT and SIGTERM are passed on to every rank.
/// When a rank fails, the others get SIGTERM, then SIGKILL after `grace_seconds`. Returns 0 when
/// every rank succeeded, else the exit code of the first rank that failed (128 + signal for a
/// rank killed by a signal).
int launch_local_ranks(int64_t nproc, const std::vector<std::string>& arguments,
                       int master_port = 0, double grace_seconds = 10);

}  // namespace nlpkit
