#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Enforces the rule of the rooms (DESIGN.md): common/ is libc only and config/ adds only
# libyaml, so neither may include anything from proxy/, libevent (event2/) or BoringSSL
# (openssl/), and common/ may not include config/. Prints every offending line and fails.
set -euo pipefail
cd "$(dirname "$0")/.."

violations=0

# check ROOM REGEX WHAT: report #include lines under ROOM whose target matches REGEX.
check() {
    local room=$1 regex=$2 what=$3 hits
    [ -d "$room" ] || return 0
    hits=$(grep -rInE "^[[:space:]]*#[[:space:]]*include[[:space:]]*[<\"]($regex)/" "$room" || true)
    if [ -n "$hits" ]; then
        echo "check-rooms: $room/ must not include $what:"
        printf '%s\n' "$hits" | sed 's/^/  /'
        violations=$((violations + $(printf '%s\n' "$hits" | wc -l)))
    fi
}

check common 'proxy|event2|openssl' 'proxy/, <event2/...> or <openssl/...>'
check config 'proxy|event2|openssl' 'proxy/, <event2/...> or <openssl/...>'
check common 'config' 'config/'

if [ "$violations" -ne 0 ]; then
    echo "check-rooms: $violations forbidden include(s)"
    exit 1
fi
echo "check-rooms: ok"
