#!/usr/bin/env bash
# Installs every Debian package that building, testing or benchmarking prism needs.
# Idempotent: it asks dpkg first and touches apt only when something is missing.
# Usage: scripts/install-deps.sh [build|test|bench|all]   (default: all)
set -euo pipefail

BUILD_PKGS=(build-essential pkg-config libjansson-dev libssl-dev libmicrohttpd-dev
    libc-ares-dev libsqlite3-dev libcmocka-dev)
TEST_PKGS=(python3 python3-pytest clang-14 libclang-rt-14-dev nginx-light
    libnginx-mod-stream haproxy openssh-server openssh-client iproute2 iptables
    dnsmasq-base bind9-dnsutils iperf3 socat procps psmisc strace)
BENCH_PKGS=(haproxy nginx-light libnginx-mod-stream socat iperf3 valgrind util-linux)

want=()
case "${1:-all}" in
build) want=("${BUILD_PKGS[@]}") ;;
test) want=("${BUILD_PKGS[@]}" "${TEST_PKGS[@]}") ;;
bench) want=("${BUILD_PKGS[@]}" "${BENCH_PKGS[@]}") ;;
all) want=("${BUILD_PKGS[@]}" "${TEST_PKGS[@]}" "${BENCH_PKGS[@]}") ;;
*) echo "usage: $0 [build|test|bench|all]" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "install-deps: installing ${missing[*]}" >&2

# Debian starts nginx, haproxy and sshd when they are installed; we only want the
# binaries (tests start their own instances on loopback), so forbid service starts
# for the duration of the install, unless the machine already has a policy.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod 755 "$policy"
    made_policy=1
fi
cleanup() { if [ "$made_policy" = 1 ]; then $SUDO rm -f "$policy"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
