#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs the demo on this machine: installs what is missing, builds, starts lowat-demo-app on
# 127.0.0.1:8080 and lowat in front of it with its embedded default configuration (TLS on
# 127.0.0.1:8443, a self-signed certificate made at start-up), tells how to try it, and stays
# in the foreground with both logs until Ctrl-C. On the way out it stops exactly the two
# processes it started.
set -euo pipefail
cd "$(dirname "$0")/.."

app_port=8080
proxy_port=8443
# The embedded default also serves per-arm metrics here (config/default.yaml).
admin_port=9901
app=build/tools/lowat-demo-app
lowat=build/proxy/lowat
ready_timeout_s=20

app_pid=
lowat_pid=
tmp=
log_open=false

# Stop what we started (SIGTERM: both drain gracefully), passing on lowat's last log lines,
# then SIGKILL whatever is still there after 15s.
cleanup() {
    local pid line alive end=$((SECONDS + 15))
    for pid in $lowat_pid $app_pid; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    while [ "$SECONDS" -lt "$end" ]; do
        alive=false
        for pid in $lowat_pid $app_pid; do
            if kill -0 "$pid" 2>/dev/null; then
                alive=true
            fi
        done
        $alive || break
        if $log_open && IFS= read -r -t 0.2 line <&3; then
            printf '%s\n' "$line" >&2
        else
            sleep 0.1
        fi
    done
    while $log_open && IFS= read -r -t 0.1 line <&3; do
        printf '%s\n' "$line" >&2
    done
    for pid in $lowat_pid $app_pid; do
        if kill -0 "$pid" 2>/dev/null; then
            echo "demo.sh: process $pid did not stop; killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    if [ -n "$tmp" ]; then
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

die() {
    echo "demo.sh: $*" >&2
    exit 1
}

# Is anything listening on this TCP port, on any address? (It would keep us from binding.)
port_taken() {
    ss -Hltn "sport = :$1" 2>/dev/null | grep -q .
}

tools/deps.sh

if [ ! -f build/meson-private/coredata.dat ]; then
    meson setup build --buildtype=release
fi
ninja -C build

for port in "$app_port" "$proxy_port" "$admin_port"; do
    if port_taken "$port"; then
        echo "demo.sh: port $port is already in use; this is what listens on it:" >&2
        ss -Hltnp "sport = :$port" >&2 || true
        die "stop it (or an earlier demo) and run tools/demo.sh again"
    fi
done

tmp=$(mktemp -d)
mkfifo "$tmp/lowat.err"

"$app" --listen "127.0.0.1:$app_port" &
app_pid=$!

# lowat's error log comes through a FIFO that this script reads: that is how we see its
# "listening on" line, and then we pass its log on to the terminal.
"$lowat" 2>"$tmp/lowat.err" &
lowat_pid=$!
exec 3<"$tmp/lowat.err"
log_open=true

deadline=$((SECONDS + ready_timeout_s))
ready=false
while [ "$SECONDS" -lt "$deadline" ]; do
    if ! IFS= read -r -t 1 line <&3; then
        if ! kill -0 "$lowat_pid" 2>/dev/null; then
            break
        fi
        continue
    fi
    printf '%s\n' "$line" >&2
    if [[ $line == *"listening on"* ]]; then
        ready=true
        break
    fi
done
if ! $ready; then
    kill -0 "$lowat_pid" 2>/dev/null && die "lowat did not say \"listening on\" within ${ready_timeout_s}s"
    die "lowat exited before it was ready (its log is above)"
fi
kill -0 "$app_pid" 2>/dev/null || die "lowat-demo-app exited (its log is above)"

cat <<EOF

lowat is listening on https://127.0.0.1:$proxy_port/ in front of lowat-demo-app on 127.0.0.1:$app_port.
The certificate is self-signed, made at start-up. Try:

  curl -k --http2 -v https://127.0.0.1:$proxy_port/     # the 103 Early Hints, then the page 200 ms later
  nghttp -ans https://127.0.0.1:$proxy_port/            # the page and its assets: pushed ones marked *
  nghttp -nv https://127.0.0.1:$proxy_port/             # the HTTP/2 frames, PUSH_PROMISEs included
  nghttp -ans -H 'cookie: lw_exp_demo=hints' https://127.0.0.1:$proxy_port/   # the other experiment arm: no pushes
  curl -s http://127.0.0.1:$admin_port/metrics          # requests, pushes, hints and timings per arm

The embedded configuration runs an experiment between two push policies ("push": pushes
and hints; "hints": only the 103). This machine lands in "push" by the hash of 127.0.0.1;
the lw_exp_demo cookie keeps or changes the arm. Or open https://127.0.0.1:$proxy_port/ in a
browser and accept the self-signed certificate (browsers take the 103, not the pushes).
Logs follow. Ctrl-C stops both servers.

EOF

while IFS= read -r line <&3; do
    printf '%s\n' "$line" >&2
done
# lowat closed its log: it has exited.
status=0
wait "$lowat_pid" || status=$?
lowat_pid=
echo "demo.sh: lowat exited with status $status" >&2
exit 1
