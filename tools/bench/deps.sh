#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs the Debian 12 packages the benchmarks under tools/bench/ need, and only the missing
# ones: a second run is a quick, silent no-op. apt-get update runs only when something has to
# be installed. Uses sudo only when not root.
#
# The peers (nginx, H2O, HAProxy) are Debian services: their packages would start them on
# ports 80/443 at install time. The benchmark runs its own instances on high ports, so the
# install is done with a policy-rc.d that forbids starting services (the Debian mechanism,
# invoke-rc.d(8)); a policy-rc.d already present is left alone.
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
# linux-perf: optional, its package name differs across releases.
optional=(linux-perf)

is_installed() {
    dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
    echo "bench/deps.sh: this script needs a Debian-like system (dpkg and apt-get); Debian 12 is the reference" >&2
    exit 1
fi

missing=()
for p in "${packages[@]}"; do
    is_installed "$p" || missing+=("$p")
done
missing_optional=()
for p in "${optional[@]}"; do
    is_installed "$p" || missing_optional+=("$p")
done
if [ "${#missing[@]}" -eq 0 ] && [ "${#missing_optional[@]}" -eq 0 ]; then
    exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null; then
        echo "bench/deps.sh: missing packages (${missing[*]} ${missing_optional[*]}) and not root, and sudo is not installed" >&2
        exit 1
    fi
    sudo=(sudo)
fi

policy=/usr/sbin/policy-rc.d
made_policy=false
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# written by lowat tools/bench/deps.sh for the length of an install\nexit 101\n' |
        "${sudo[@]}" tee "$policy" >/dev/null
    "${sudo[@]}" chmod 755 "$policy"
    made_policy=true
fi
cleanup() {
    if $made_policy; then
        "${sudo[@]}" rm -f "$policy"
    fi
}
trap cleanup EXIT

echo "bench/deps.sh: installing ${missing[*]} ${missing_optional[*]}"
"${sudo[@]}" apt-get update -q
if [ "${#missing[@]}" -gt 0 ]; then
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
for p in "${missing_optional[@]}"; do
    if apt-cache show "$p" >/dev/null 2>&1; then
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$p" ||
            echo "bench/deps.sh: optional $p did not install; the benchmark falls back to callgrind" >&2
    fi
done
