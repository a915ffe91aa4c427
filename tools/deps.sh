#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs the Debian 12 packages lowat needs to build, test and demo, and only the missing
# ones: a second run is a quick, silent no-op, so every other script can start by calling it.
# apt-get update runs only when something has to be installed. Uses sudo only when not root.
#
# Other scripts install their own lists through it: `tools/deps.sh PKG...` installs those
# instead of the default list, and DEPS_OPTIONAL="PKG..." adds packages whose failure to
# install is only reported (tools/bench/deps.sh uses both).
set -euo pipefail

packages=(
    meson ninja-build pkg-config gcc clang libclang-rt-14-dev
    libevent-dev android-libboringssl-dev libnghttp2-dev libc-ares-dev libyaml-dev
    nghttp2-client nghttp2-proxy curl
    python3 python3-h2 python3-pytest
    iproute2 iputils-ping ca-certificates
    chromium
    nginx-light openssl   # the origin of the benchmark smoke test
)
if [ "$#" -gt 0 ]; then
    packages=("$@")
fi
read -r -a optional <<<"${DEPS_OPTIONAL:-}"

is_installed() {
    dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
    echo "deps.sh: this script needs a Debian-like system (dpkg and apt-get); Debian 12 is the reference" >&2
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
        echo "deps.sh: missing packages (${missing[*]} ${missing_optional[*]}) and not root, and sudo is not installed" >&2
        exit 1
    fi
    sudo=(sudo)
fi

echo "deps.sh: installing ${missing[*]} ${missing_optional[*]}"
# Packages such as nginx would start a system service on port 80 at install time; the tests
# run their own instances on free ports, so services are forbidden for the install (the
# Debian mechanism, invoke-rc.d(8)); a policy-rc.d already present is left alone.
policy=/usr/sbin/policy-rc.d
made_policy=false
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# written by lowat tools/deps.sh for the length of an install\nexit 101\n' |
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

"${sudo[@]}" apt-get update -q
if [ "${#missing[@]}" -gt 0 ]; then
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
for p in "${missing_optional[@]}"; do
    if apt-cache show "$p" >/dev/null 2>&1; then
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$p" ||
            echo "deps.sh: optional $p did not install" >&2
    fi
done
