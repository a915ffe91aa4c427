#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs the Debian 12 packages the benchmarks under tools/bench/ need, and only the missing
# ones, through tools/deps.sh (which forbids the peers' packages to start their services on
# ports 80/443 during the install: the benchmarks run their own instances on high ports).
set -euo pipefail

packages=(
    nghttp2-client    # h2load
    nghttp2-proxy     # nghttpx
    h2o
    haproxy
    nginx-light       # the common HTTP/1.1 origin
    valgrind          # callgrind: instructions per request where perf has no counters
    util-linux        # taskset
    openssl           # the CLI, for the ECDSA P-256 test certificate
    python3
)
# linux-perf is optional: the benchmark falls back to callgrind without it.
DEPS_OPTIONAL="linux-perf" exec "$(dirname "$0")/../deps.sh" "${packages[@]}"
