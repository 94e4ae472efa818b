#!/usr/bin/env bash
# bench/run.sh: the side-by-side benchmark of issue #5 (run by `make bench`).
#
# Targets, all on 127.0.0.1, all in front of the same origins:
#   direct          no proxy: the load tools talk to the origins (the physical floor)
#   prism           build/release/prism serve, in its real configuration (event log on)
#   prism-b         a second prism for an A/B in the same rounds: PRISM_B_BIN and/or
#                   PRISM_B_BUSY_POLL_US (only when asked for in TARGETS; never a peer)
#   haproxy-splice  HAProxy, mode tcp, option splice-request + splice-response
#   haproxy         HAProxy, mode tcp, no splice
#   haproxy-busy    haproxy-splice plus HAProxy's "busy-polling" (prism polls adaptively by
#                   default, busy_poll_us; this is the fair peer for latency)
#   nginx           nginx stream module
#   socat           socat, one forked process per connection
# Configurations: "1w" pins the proxy to CPU 0 with one worker (prism workers 1, HAProxy
# nbthread 1, nginx worker_processes 1) and the load tools and origins to CPU 1; "2w" runs
# two workers and pins nothing.
#
# Each round starts every target afresh, in an order rotated by one each round, so that
# machine noise (this machine is shared with compiles) hits every target alike, and runs
# the tests on it: idle (memory per idle connection), pingpong (latency), connrate (new
# connections/s), bulk1 and bulk8 (iperf3, 1 and 8 streams), udp (echo at a rate ladder).
# The proxy's CPU time is read from /proc around every test, and with 1 worker how busy the
# load CPU was (load_ticks: a saturated load side bounds the figure). Then, once,
# instruction counts per connection and per GiB (perf stat if the CPU counts instructions
# here, else callgrind).
#
# Results: build/bench/results-<timestamp>.jsonl (one JSON object per line), then
# bench/report.py writes docs/BENCHMARKS.md from them.
#
# Knobs (environment):
#   QUICK=1              smoke run: 1 round per configuration, short tests
#   ROUNDS=9             rounds of the 1-worker configuration
#   ROUNDS_2W=3          rounds of the 2-worker configuration
#   TESTS=idle,pingpong,bulk1,bulk8,connrate,udp   (run in this order on each target)
#   TARGETS=direct,prism,haproxy-splice,haproxy-busy,haproxy,nginx,socat
#   CONFIGS=1w,2w
#   UDP_GSO=0            1: udpload sends its batches as GSO sends and takes replies
#                        coalesced (-G), as QUIC and WireGuard peers do
#   INSN=auto            auto, perf, callgrind or off
#   SYSCALLS=auto        syscalls per connection and per GiB (perf tracepoints): auto or off
#   REPORT=1             0: do not run bench/report.py at the end
#   PRISM_BIN=build/release/prism
#   PRISM_BUSY_POLL_US=  prism's busy_poll_us (unset: the node default, 500)
#   PRISM_B_BIN=$PRISM_BIN, PRISM_B_BUSY_POLL_US=$PRISM_BUSY_POLL_US, PRISM_B_LABEL=
#                        the prism-b target (A/B): its binary, its busy_poll_us, and what
#                        the report calls it (for example "no brief spin")
#   HAPROXY_BUSY_POLLING=1  adds "busy-polling" to haproxy and haproxy-splice too
# Every loop is bounded, every process started is stopped by its PID (trap on exit), and
# the temporary directory is removed.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
OUT_DIR=$ROOT/build/bench
PY=/usr/bin/python3

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
    ROUNDS=${ROUNDS:-1}
    ROUNDS_2W=${ROUNDS_2W:-1}
    BULK_S=1 CONN_S=1 PING_N=2000 PING_WARM=200 UDP_STEP_MS=300 UDP_GRACE_MS=100
    INSN_CONNS=500 INSN_BYTES=64M SC_CONNS=2000 SC_BYTES=256M SC_UDP_MS=500
else
    ROUNDS=${ROUNDS:-9}
    ROUNDS_2W=${ROUNDS_2W:-3}
    BULK_S=3 CONN_S=3 PING_N=10000 PING_WARM=1000 UDP_STEP_MS=400 UDP_GRACE_MS=150
    INSN_CONNS=5000 INSN_BYTES=512M SC_CONNS=20000 SC_BYTES=2G SC_UDP_MS=3000
fi
IDLE_N=${IDLE_N:-5000,9000}
SC_UDP_RATE=${SC_UDP_RATE:-20000} # datagrams/s of the syscall count's UDP workload
# The ladder reaches past what the load side sends here with no proxy in between (on an
# Intel Xeon of this machine kind, direct sustained 297,000 to 335,000 datagrams/s, above
# the 250,000 the ladder once ended at, which capped direct and flattered every ratio to it).
UDP_RATES=${UDP_RATES:-20000,50000,75000,100000,125000,150000,200000,250000,300000,350000,400000}
UDP_REFINE=${UDP_REFINE:-3} # bisection steps after the ladder (bench/udpload.c -b)
UDP_LATE_MS=${UDP_LATE_MS:-50} # a reply later than this counts as lost (bench/udpload.c -l)
UDP_GSO=${UDP_GSO:-0} # 1: the load tool sends each batch as one GSO send (bench/udpload.c -G)
TESTS=${TESTS:-idle,pingpong,bulk1,bulk8,connrate,udp}
TARGETS=${TARGETS:-direct,prism,haproxy-splice,haproxy-busy,haproxy,nginx,socat}
CONFIGS=${CONFIGS:-1w,2w}
INSN=${INSN:-auto}
SYSCALLS=${SYSCALLS:-auto}
REPORT=${REPORT:-1}
PRISM_BIN=${PRISM_BIN:-$ROOT/build/release/prism}
PRISM_B_BIN=${PRISM_B_BIN:-$PRISM_BIN}
PRISM_BUSY_POLL_US=${PRISM_BUSY_POLL_US:-}
PRISM_B_BUSY_POLL_US=${PRISM_B_BUSY_POLL_US-$PRISM_BUSY_POLL_US}
PRISM_B_LABEL=${PRISM_B_LABEL:-}
NGINX_STREAM_MODULE=/usr/lib/nginx/modules/ngx_stream_module.so

ALL_TESTS=(idle pingpong connrate bulk1 bulk8 udp)
ALL_TARGETS=(direct prism prism-b haproxy-splice haproxy-busy haproxy nginx socat)

die() {
    echo "bench: $*" >&2
    exit 1
}
log() { echo "bench: $*" >&2; }

# Checks that every word of the comma list $2 is one of the words after it.
check_list() {
    local what=$1 list=$2 w ok a
    shift 2
    for w in ${list//,/ }; do
        ok=0
        for a in "$@"; do [ "$w" = "$a" ] && ok=1; done
        [ $ok = 1 ] || die "unknown $what '$w' (known: $*)"
    done
}
check_list test "$TESTS" "${ALL_TESTS[@]}"
check_list target "$TARGETS" "${ALL_TARGETS[@]}"
check_list config "$CONFIGS" 1w 2w
case "$INSN" in auto | perf | callgrind | off) ;; *) die "INSN must be auto, perf, callgrind or off" ;; esac

for tool in haproxy nginx socat iperf3 taskset ss timeout; do
    command -v "$tool" >/dev/null || die "$tool not found: run scripts/install-deps.sh bench"
done
[ -f "$NGINX_STREAM_MODULE" ] || die "$NGINX_STREAM_MODULE missing: install libnginx-mod-stream"
[ -x "$PY" ] || die "$PY missing (Debian's python3)"

# ---------------------------------------------------------------------------------------
# Processes and cleanup. STARTED holds the PID of every background process we started.

STARTED=()
TMP=""

# Prints <root> and all its descendants, one PID per line (root first).
tree_pids() {
    ps -eo pid=,ppid= | awk -v root="$1" '
        { parent[$1] = $2 }
        END {
            inset[root] = 1; print root
            for (pass = 0; pass < 8; pass++) {
                grew = 0
                for (p in parent)
                    if (!(p in inset) && (parent[p] in inset)) { inset[p] = 1; print p; grew = 1 }
                if (!grew) break
            }
        }'
}

is_alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

forget() { # PID: removes it from STARTED
    local i
    for i in "${!STARTED[@]}"; do
        [ "${STARTED[$i]}" = "$1" ] && unset 'STARTED[i]'
    done
    return 0
}

# Stops <pid> and every descendant: SIGTERM, up to <grace> seconds, then SIGKILL.
stop_tree() {
    local pid=$1 grace=${2:-5} pids p i alive
    forget "$pid"
    # Only a child of this shell: once bash has reaped a process that ended on its own, its
    # PID may belong to someone else's process.
    if ! is_alive "$pid" || [ "$(awk '{ sub(/^.*\) /, ""); print $2 }' "/proc/$pid/stat" 2>/dev/null)" != "$$" ]; then
        wait "$pid" 2>/dev/null || true
        return 0
    fi
    pids=$(tree_pids "$pid")
    for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
    for ((i = 0; i < grace * 20; i++)); do
        alive=0
        for p in $pids; do
            # A zombie child of ours still answers kill -0: reap our own first.
            if [ "$p" = "$pid" ]; then
                is_alive "$p" && [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ] && alive=1
            else
                is_alive "$p" && alive=1
            fi
        done
        [ $alive = 0 ] && break
        sleep 0.05
    done
    for p in $pids; do kill -KILL "$p" 2>/dev/null || true; done
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$? p
    trap - EXIT INT TERM
    for p in "${STARTED[@]}"; do stop_tree "$p" 3; done
    [ -n "$TMP" ] && rm -rf "$TMP"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# bg NAME CPUS CMD...: starts CMD in the background (pinned to CPUS unless empty), output
# in $TMP/NAME.out and $TMP/NAME.err; sets BG_PID.
bg() {
    local name=$1 cpus=$2
    shift 2
    if [ -n "$cpus" ]; then
        taskset -c "$cpus" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
    else
        "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
    fi
    BG_PID=$!
    STARTED+=("$BG_PID")
}

# run_load SECONDS CMD...: runs a load tool in the foreground on the load CPUs, bounded.
run_load() {
    local secs=$1
    shift
    if [ -n "$LOAD_CPUS" ]; then
        taskset -c "$LOAD_CPUS" timeout -k 5 "$secs" "$@"
    else
        timeout -k 5 "$secs" "$@"
    fi
}

# wait_listen PROTO PORT PID SECONDS: waits until something listens on 127.0.0.1:PORT
# (tcp or udp) while PID (if given) stays alive. Never connects: a probe would count as a
# client (iperf3 -1 would even exit after it).
wait_listen() {
    local proto=$1 port=$2 pid=$3 secs=$4 i flag=-Hltn
    [ "$proto" = udp ] && flag=-Hlun
    for ((i = 0; i < secs * 20; i++)); do
        [ -n "$(ss $flag "sport = :$port" 2>/dev/null)" ] && return 0
        if [ -n "$pid" ] && ! is_alive "$pid"; then return 1; fi
        sleep 0.05
    done
    return 1
}

# wait_line FILE REGEX PID SECONDS: waits for a line in FILE while PID stays alive.
wait_line() {
    local file=$1 re=$2 pid=$3 secs=$4 i
    for ((i = 0; i < secs * 20; i++)); do
        grep -qE "$re" "$file" 2>/dev/null && return 0
        if [ -n "$pid" ] && ! is_alive "$pid"; then
            grep -qE "$re" "$file" 2>/dev/null && return 0
            return 1
        fi
        sleep 0.05
    done
    return 1
}

# ---------------------------------------------------------------------------------------
# Ports. Chosen outside the ephemeral range, so that no client socket of the load tools
# can take one, and checked free for both TCP and UDP on 127.0.0.1.

free_ports() { # COUNT: prints COUNT free ports
    "$PY" - "$1" <<'EOF'
import random, socket, sys
lo, hi = map(int, open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
pool = list(range(10000, lo)) if lo > 12000 else list(range(hi + 1, 65535))
random.shuffle(pool)
out = []
for port in pool:
    ok = True
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            ok = False
        finally:
            s.close()
    if ok:
        out.append(port)
    if len(out) == int(sys.argv[1]):
        break
print(" ".join(map(str, out)))
EOF
}

# ---------------------------------------------------------------------------------------
# /proc readings of a target: CPU seconds, memory, kernel socket memory.

CLK_TCK=$(getconf CLK_TCK)

# Prints "USER_TICKS SYS_TICKS" used so far by the processes in TARGET_ROOTS and all
# their descendants, including the children they have reaped (socat forks one per
# connection).
cpu_split_ticks() {
    local r p u=0 k=0 a b
    for r in "${TARGET_ROOTS[@]}"; do
        for p in $(tree_pids "$r"); do
            read -r a b < <(awk '{ sub(/^.*\) /, ""); print $12 + $14, $13 + $15 }' "/proc/$p/stat" 2>/dev/null || echo "0 0")
            u=$((u + ${a:-0})) k=$((k + ${b:-0}))
        done
    done
    echo "$u $k"
}

ticks_to_s() { awk -v t="$1" -v hz="$CLK_TCK" 'BEGIN { printf "%.3f", t / hz }'; }

# Prints the CPU seconds (user plus system) used so far by the same processes.
cpu_seconds() {
    local u k
    read -r u k < <(cpu_split_ticks)
    ticks_to_s $((u + k))
}

# Prints "IDLE_TICKS NCPUS SECONDS": the idle and iowait clock ticks so far of the CPUs in
# $1 (a comma list, or "all") from /proc/stat, and the time. Only idle time is counted
# exactly (the kernel measures it at each idle entry and exit); the busy columns are tick
# samples, which a load that wakes in step with the tick can miss nearly whole (a 100 us
# pacing loop showed 0.29 s of ticks over 1.5 s), so busy_since takes the wall time that
# was not idle.
idle_reading() {
    awk -v cpus=",$1," -v t="$(now_s)" '$1 ~ /^cpu[0-9]+$/ &&
        (cpus == ",all," || index(cpus, "," substr($1, 4) ",")) { idle += $5 + $6; n++ }
        END { print idle, n, t }' /proc/stat
}

# Prints the busy share (0 to 1) of the CPUs in $2 since the idle_reading $1 of them.
busy_since() { # READING CPUS
    local i1 n1 t1
    read -r i1 n1 t1 < <(idle_reading "$2")
    awk -v s="$1" -v i="$i1" -v n="$n1" -v t="$t1" -v hz="$CLK_TCK" 'BEGIN {
        split(s, x, " "); w = (t - x[3]) * n
        if (w > 0) { b = 1 - (i - x[1]) / hz / w; printf "%.3f", (b < 0 ? 0 : (b > 1 ? 1 : b)) } }'
}

# An idle_reading of the load CPUs (LOAD_CPUS; nothing when the load is not pinned), to
# tell whether a load tool had CPU left.
load_ticks() {
    [ -n "$LOAD_CPUS" ] || return 0
    idle_reading "$LOAD_CPUS"
}

# Sets LOAD_BUSY (emit records it) to the busy share of the load CPUs since the
# load_ticks reading $1.
load_busy_since() {
    LOAD_BUSY=""
    [ -n "$1" ] || return 0
    LOAD_BUSY=$(busy_since "$1" "$LOAD_CPUS")
}

# Prints "PSS_KB RSS_KB" summed over the target's processes.
mem_kb() {
    local r p pss=0 rss=0 a b
    for r in "${TARGET_ROOTS[@]}"; do
        for p in $(tree_pids "$r"); do
            read -r a b < <(awk '/^Pss:/ { p = $2 } /^Rss:/ { r = $2 } END { print p + 0, r + 0 }' \
                "/proc/$p/smaps_rollup" 2>/dev/null || echo "0 0")
            pss=$((pss + a))
            rss=$((rss + b))
        done
    done
    echo "$pss $rss"
}

# Prints "TCP_MEM_PAGES SUNRECLAIM_KB": kernel socket buffers and unreclaimable slab (which
# holds the socket structures themselves), machine-wide.
kernel_mem() {
    local tcp slab
    tcp=$(awk '$1 == "TCP:" { for (i = 2; i < NF; i++) if ($i == "mem") print $(i + 1) }' /proc/net/sockstat)
    slab=$(awk '$1 == "SUnreclaim:" { print $2 }' /proc/meminfo)
    echo "${tcp:-0} ${slab:-0}"
}

now_s() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
fsub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }

# ---------------------------------------------------------------------------------------
# Results.

TS=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT_DIR"
RESULTS=$OUT_DIR/results-$TS.jsonl
: >"$RESULTS"

# emit TEST STATUS WALL CPU DATA [REASON]: appends one result record.
emit() {
    local test=$1 status=$2 wall=$3 cpu=$4 data=$5 reason=${6:-} load=${LOAD_BUSY:-}
    LOAD_BUSY=""
    "$PY" - "$RESULTS" "$CONFIG" "$ROUND" "$ORDER" "$TARGET" "$test" "$status" "$wall" "$cpu" \
        "$data" "$reason" "$load" <<'EOF'
import json, sys
(path, config, rnd, order, target, test, status, wall, cpu, data, reason, load) = sys.argv[1:]
rec = {"type": "result", "config": config, "round": int(rnd), "order": int(order),
       "target": target, "test": test, "status": status,
       "wall_s": float(wall) if wall else None, "proxy_cpu_s": float(cpu) if cpu else None}
if load:
    rec["load_cpu_busy"] = float(load)  # busy fraction of the pinned load CPUs
try:
    rec["data"] = json.loads(data) if data else None
except ValueError:
    rec["data"] = None
    rec["status"] = "failed"
    reason = (reason + "; " if reason else "") + "unparsable output: " + data[:300]
if reason:
    rec["reason"] = reason
with open(path, "a") as f:
    f.write(json.dumps(rec, sort_keys=True) + "\n")
EOF
    printf '  %-14s %-9s %-7s %s\n' "$TARGET" "$test" "$status" \
        "$(summary_of "$test" "$data" "$reason")" >&2
}

# One line per test for the console: the headline number only.
summary_of() {
    "$PY" - "$1" "$2" "$3" <<'EOF' 2>/dev/null || true
import json, sys
test, data, reason = sys.argv[1:]
if not data:
    print(reason); sys.exit()
d = json.loads(data)
if test.startswith("bulk"):
    print("%.2f Gbit/s" % (d["bps"] / 1e9))
elif test == "connrate":
    print("%.0f conn/s, connect p99 %d us" % (d["conn_per_s"], d["connect_p99_us"]))
elif test == "pingpong":
    print("p50 %.1f us, p99 %.1f us" % (d["rtt_p50_us"], d["rtt_p99_us"]))
elif test == "idle":
    for s in d["stages"]:
        print("N=%d: PSS +%.0f B/conn" % (s["n"], (s["pss_kb"] - d["before"]["pss_kb"]) * 1024 / s["n"]), end="  ")
    print()
elif test == "udp":
    print("sustained %.0f dgram/s" % d["sustained_rate"])
elif test == "syscalls":
    n = (d.get("connrate") or {}).get("conns") or 0
    print("%.1f syscalls per connection (%d connections)" % (d["conns_run"] / n if n else float("nan"), n))
EOF
}

record_config() { # NAME FILE: keeps a copy of a generated configuration (first one only)
    [ -f "$CONF_DIR/$1" ] || cp "$2" "$CONF_DIR/$1"
}

# ---------------------------------------------------------------------------------------
# Build the load tools.

build_tools() {
    local t cflags="-std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Wshadow -Wformat=2 -Wvla"
    for t in echo_origin connrate pingpong idleconns udpload; do
        if [ ! -x "$OUT_DIR/$t" ] || [ "bench/$t.c" -nt "$OUT_DIR/$t" ] ||
            [ bench/bench.h -nt "$OUT_DIR/$t" ]; then
            ${CC:-cc} $cflags -o "$OUT_DIR/$t" "bench/$t.c"
        fi
    done
}

# ---------------------------------------------------------------------------------------
# Origins: one echo server (TCP and UDP) and, per bulk test, a one-off iperf3 server.

ORIGIN_PID=""
start_origins() {
    read -r ECHO_PORT IPERF_PORT < <(free_ports 2)
    bg echo_origin "$LOAD_CPUS" "$OUT_DIR/echo_origin" -t "$ECHO_PORT" -u "$ECHO_PORT" -T 7200
    ORIGIN_PID=$BG_PID
    wait_listen tcp "$ECHO_PORT" "$ORIGIN_PID" 10 || die "echo origin did not start"
}

ensure_origins() {
    if ! is_alive "$ORIGIN_PID"; then
        log "echo origin died; restarting it"
        start_origins
    fi
}

stop_origins() {
    [ -n "$ORIGIN_PID" ] && stop_tree "$ORIGIN_PID" 3
    ORIGIN_PID=""
}

# ---------------------------------------------------------------------------------------
# Targets. start_target sets TARGET_ROOTS (the PIDs whose trees make up the proxy),
# PORT_ECHO, PORT_BULK and PORT_UDP (empty when the target does no UDP), or returns 1
# with START_ERR set.

TARGET_ROOTS=()
write_haproxy_cfg() { # FILE SPLICE(0/1) BUSY_POLLING(0/1)
    local splice=""
    [ "$2" = 1 ] && splice=$'    option splice-request\n    option splice-response'
    cat >"$1" <<EOF
# HAProxy $(haproxy -v | head -1 | awk '{print $3}'), mode tcp$([ "$2" = 1 ] && echo ", forced splice")
global
    nbthread $WORKERS$([ "$3" = 1 ] && printf '\n    busy-polling')
    maxconn 9500
    maxpipes 250
    # HAProxy needs 2 fds per connection and 2 per pipe: 2 x 9500 + 2 x 250 + a few
    # fits the 20,000 open-file limit of this machine (maxpipes defaults to maxconn/4).

defaults
    mode tcp
    timeout connect 5s
    timeout client 10m
    timeout server 10m
$splice

frontend fe_echo
    bind 127.0.0.1:$PORT_ECHO
    default_backend be_echo

backend be_echo
    # Its own source ports: HAProxy binds each origin socket to one, so it takes over its
    # own TIME_WAIT entries as prism does. From the ephemeral range instead, connect()
    # searches a range this workload keeps full of entries it may not take yet: 14,200
    # connections/s, with the search 28% of HAProxy's CPU (2026-12-07). 127.0.0.99 is an
    # address no load tool uses (connrate's clients are 127.0.0.1 to .8), and the ports
    # stay below the ephemeral range: a port bound explicitly is one every connect() from
    # the range passes over while an entry holds it, and with 1025-65535 the idle and
    # connection tests of the targets after HAProxy's crawled.
    server echo 127.0.0.1:$ECHO_PORT source 127.0.0.99:1025-32767

frontend fe_bulk
    bind 127.0.0.1:$PORT_BULK
    default_backend be_bulk

backend be_bulk
    server iperf 127.0.0.1:$IPERF_PORT
EOF
}

write_nginx_cfg() { # FILE
    cat >"$1" <<EOF
# nginx $(nginx -v 2>&1 | sed 's/.*nginx\///'), stream module
load_module $NGINX_STREAM_MODULE;
worker_processes $WORKERS;
worker_rlimit_nofile 20000;
pid $TMP/nginx.pid;
error_log $TMP/nginx-error.log warn;

events {
    worker_connections 19500;
}

stream {
    server {
        listen 127.0.0.1:$PORT_ECHO reuseport backlog=4096;
        proxy_pass 127.0.0.1:$ECHO_PORT;
        proxy_timeout 10m;
    }
    server {
        listen 127.0.0.1:$PORT_BULK reuseport backlog=4096;
        proxy_pass 127.0.0.1:$IPERF_PORT;
        proxy_timeout 10m;
    }
    server {
        listen 127.0.0.1:$PORT_UDP udp reuseport;
        proxy_pass 127.0.0.1:$ECHO_PORT;
        proxy_timeout 10s;
    }
}
EOF
}

write_prism_cfg() { # FILE WITH_UDP(0/1) BUSY_POLL_US(empty: the node default)
    local udp_app="" api dns busy=$3
    read -r api dns < <(free_ports 2)
    if [ "$2" = 1 ]; then
        udp_app=",
    {\"id\": \"bench-udp\", \"protocol\": \"udp/$PORT_UDP\",
     \"dns\": {\"type\": \"CNAME\", \"name\": \"udp.example.com\"},
     \"origin_direct\": [\"udp://127.0.0.1:$ECHO_PORT\"]}"
    fi
    mkdir -p "$TMP/prism-data"
    cat >"$1" <<EOF
{
  "workers": $WORKERS,${busy:+
  \"busy_poll_us\": $busy,}
  "data_dir": "$TMP/prism-data",
  "api": {"listen": "127.0.0.1:$api"},
  "dns": {"listen": "127.0.0.1:$dns"},
  "edge": {"addresses": ["127.0.0.1"]},
  "apps": [
    {"id": "bench-tcp", "protocol": "tcp/$PORT_ECHO",
     "dns": {"type": "CNAME", "name": "bench.example.com"},
     "origin_direct": ["tcp://127.0.0.1:$ECHO_PORT"]},
    {"id": "bench-bulk", "protocol": "tcp/$PORT_BULK",
     "dns": {"type": "CNAME", "name": "bulk.example.com"},
     "origin_direct": ["tcp://127.0.0.1:$IPERF_PORT"]}$udp_app
  ]
}
EOF
}

# The command that runs a target in the foreground: TARGET_CMD (+ TARGET_CMD2, TARGET_CMD3
# for socat, which needs one process per port). $1 = wrapper words (valgrind) or empty.
START_ERR=""
start_target() {
    local t=$1 wrap=${2:-} cfg pid ok with_udp
    TARGET_ROOTS=()
    START_ERR=""
    TARGET_SPINS=0 # 1: it polls by configuration, so its CPU never settles (quiesce)
    if [ "$t" = direct ]; then
        PORT_ECHO=$ECHO_PORT PORT_BULK=$IPERF_PORT PORT_UDP=$ECHO_PORT
        return 0
    fi
    read -r PORT_ECHO PORT_BULK PORT_UDP < <(free_ports 3)
    CONN_PORTS+=" $PORT_ECHO"
    case "$t" in
    prism | prism-b)
        local bin=$PRISM_BIN busy=$PRISM_BUSY_POLL_US
        [ "$t" = prism-b ] && bin=$PRISM_B_BIN busy=$PRISM_B_BUSY_POLL_US
        if [ ! -x "$bin" ]; then
            START_ERR="$bin not built"
            return 1
        fi
        # UDP comes later in prism: if the file with the UDP app is refused, retry without
        # it, and the UDP test reports prism as missing.
        for with_udp in 1 0; do
            cfg=$TMP/$t-$CONFIG.json
            write_prism_cfg "$cfg" $with_udp "$busy"
            rm -rf "$TMP/prism-data" && mkdir -p "$TMP/prism-data"
            bg "$t" "$PROXY_CPUS" $wrap "$bin" serve --config "$cfg"
            pid=$BG_PID
            ok=0
            if wait_line "$TMP/$t.err" 'ready' "$pid" "$START_WAIT" &&
                wait_listen tcp "$PORT_ECHO" "$pid" 5 && wait_listen tcp "$PORT_BULK" "$pid" 5; then
                ok=1
                [ $with_udp = 1 ] && ! wait_listen udp "$PORT_UDP" "$pid" 2 && ok=0
            fi
            if [ $ok = 1 ]; then
                TARGET_ROOTS=("$pid")
                [ $with_udp = 0 ] && PORT_UDP=""
                record_config "$t-$CONFIG.json" "$cfg"
                return 0
            fi
            START_ERR="$t did not become ready: $(tail -c 300 "$TMP/$t.err" | tr '\n' ' ')"
            stop_tree "$pid" 3
        done
        return 1
        ;;
    haproxy | haproxy-splice | haproxy-busy)
        cfg=$TMP/$t-$CONFIG.cfg
        TARGET_SPINS=$([ "$t" = haproxy-busy ] && echo 1 || echo "${HAPROXY_BUSY_POLLING:-0}")
        write_haproxy_cfg "$cfg" "$([ "$t" = haproxy ] && echo 0 || echo 1)" "$TARGET_SPINS"
        PORT_UDP="" # HAProxy 2.6 proxies no UDP
        haproxy -c -q -f "$cfg" >"$TMP/$t.check" 2>&1 || {
            START_ERR="config refused: $(head -c 300 "$TMP/$t.check")"
            return 1
        }
        bg "$t" "$PROXY_CPUS" $wrap haproxy -db -f "$cfg"
        pid=$BG_PID
        ;;
    nginx)
        cfg=$TMP/nginx-$CONFIG.conf
        write_nginx_cfg "$cfg"
        if [ -n "$wrap" ]; then # one process under valgrind: no master
            sed -i "s/^worker_processes .*/worker_processes 1;\nmaster_process off;/" "$cfg"
        fi
        rm -f "$TMP/nginx.pid"
        bg nginx "$PROXY_CPUS" $wrap nginx -c "$cfg" -p "$TMP" -g 'daemon off;'
        pid=$BG_PID
        ;;
    socat)
        bg socat-echo "$PROXY_CPUS" $wrap socat \
            "TCP4-LISTEN:$PORT_ECHO,bind=127.0.0.1,reuseaddr,fork,backlog=4096,nodelay" \
            "TCP4:127.0.0.1:$ECHO_PORT,nodelay"
        TARGET_ROOTS+=("$BG_PID")
        bg socat-bulk "$PROXY_CPUS" $wrap socat \
            "TCP4-LISTEN:$PORT_BULK,bind=127.0.0.1,reuseaddr,fork,backlog=4096,nodelay" \
            "TCP4:127.0.0.1:$IPERF_PORT,nodelay"
        TARGET_ROOTS+=("$BG_PID")
        bg socat-udp "$PROXY_CPUS" $wrap socat -T 10 \
            "UDP4-LISTEN:$PORT_UDP,bind=127.0.0.1,reuseaddr,fork" "UDP4:127.0.0.1:$ECHO_PORT"
        TARGET_ROOTS+=("$BG_PID")
        cat >"$TMP/socat-$CONFIG.sh" <<EOF
# socat $(socat -V 2>/dev/null | awk '/socat version/ {print $3}'): one process per port, fork per connection (per client address for UDP)
socat TCP4-LISTEN:$PORT_ECHO,bind=127.0.0.1,reuseaddr,fork,backlog=4096,nodelay TCP4:127.0.0.1:$ECHO_PORT,nodelay
socat TCP4-LISTEN:$PORT_BULK,bind=127.0.0.1,reuseaddr,fork,backlog=4096,nodelay TCP4:127.0.0.1:$IPERF_PORT,nodelay
socat -T 10 UDP4-LISTEN:$PORT_UDP,bind=127.0.0.1,reuseaddr,fork UDP4:127.0.0.1:$ECHO_PORT
EOF
        record_config "socat-$CONFIG.sh" "$TMP/socat-$CONFIG.sh"
        if wait_listen tcp "$PORT_ECHO" "${TARGET_ROOTS[0]}" "$START_WAIT" &&
            wait_listen tcp "$PORT_BULK" "${TARGET_ROOTS[1]}" "$START_WAIT" &&
            wait_listen udp "$PORT_UDP" "${TARGET_ROOTS[2]}" "$START_WAIT"; then
            return 0
        fi
        START_ERR="socat did not listen: $(cat "$TMP"/socat-*.err | head -c 300)"
        stop_target
        return 1
        ;;
    esac
    # haproxy and nginx: ready once every port listens.
    record_config "$(basename "$cfg")" "$cfg"
    if wait_listen tcp "$PORT_ECHO" "$pid" "$START_WAIT" && wait_listen tcp "$PORT_BULK" "$pid" 5 &&
        { [ -z "$PORT_UDP" ] || wait_listen udp "$PORT_UDP" "$pid" 5; }; then
        TARGET_ROOTS=("$pid")
        return 0
    fi
    START_ERR="$t did not listen: $(tail -c 300 "$TMP/$t.err" 2>/dev/null | tr '\n' ' ')"
    stop_tree "$pid" 3
    return 1
}

stop_target() {
    local r
    for r in "${TARGET_ROOTS[@]}"; do stop_tree "$r" "$STOP_GRACE"; done
    TARGET_ROOTS=()
}

# ---------------------------------------------------------------------------------------
# Tests. Each emits one record. CPU is read around the load tool only.

proxy_cpu() { [ ${#TARGET_ROOTS[@]} -gt 0 ] && cpu_seconds || echo ""; }

# Open sockets of the target's processes (pipes left out: HAProxy keeps a pool of them).
socket_count() {
    local r p n=0
    for r in "${TARGET_ROOTS[@]}"; do
        for p in $(tree_pids "$r"); do
            n=$((n + $(find "/proc/$p/fd" -mindepth 1 -maxdepth 1 -lname 'socket:*' 2>/dev/null | wc -l)))
        done
    done
    echo "$n"
}

# Waits (at most 5 s) until the proxy is idle: no CPU tick over 100 ms, and no more
# children than it had at start (socat keeps a process per closing connection for 0.5 s).
# Without this, the tail of one test (closing thousands of connections) runs into the next.
# A target that spins by configuration (TARGET_SPINS: haproxy-busy, or any HAProxy with
# HAPROXY_BUSY_POLLING=1) never settles its CPU: it is idle once it holds no more sockets
# than just after it started (SOCKETS_BASE), its connections closed.
quiesce() {
    local i a b kids r
    [ ${#TARGET_ROOTS[@]} -gt 0 ] || return 0
    a=$(cpu_seconds)
    for ((i = 0; i < 50; i++)); do
        sleep 0.1
        if [ "$TARGET_SPINS" = 1 ]; then
            [ "$(socket_count)" -le "$SOCKETS_BASE" ] && return 0
            continue
        fi
        b=$(cpu_seconds)
        kids=0
        for r in "${TARGET_ROOTS[@]}"; do kids=$((kids + $(tree_pids "$r" | wc -l) - 1)); done
        [ "$TARGET" = nginx ] && kids=$((kids - WORKERS))
        if awk -v a="$a" -v b="$b" 'BEGIN { exit !(b - a < 0.015) }' && [ "$kids" -le 0 ]; then
            return 0
        fi
        a=$b
    done
    log "  $TARGET still busy after 5 s; going on"
}

test_pingpong() {
    local c0 c1 t0 t1 l0 out
    c0=$(proxy_cpu) t0=$(now_s) l0=$(load_ticks)
    if out=$(run_load 60 "$OUT_DIR/pingpong" -c "127.0.0.1:$PORT_ECHO" -n "$PING_N" -w "$PING_WARM" 2>"$TMP/load.err"); then
        t1=$(now_s) c1=$(proxy_cpu)
        load_busy_since "$l0"
        emit pingpong ok "$(elapsed "$t0" "$t1")" "$([ -n "$c0" ] && fsub "$c1" "$c0")" "$out"
    else
        emit pingpong failed "" "" "" "$(head -c 300 "$TMP/load.err")"
    fi
}

# Removes the TIME_WAIT entries of this harness's connection tests (to or from the echo
# origin's port or a port a target listened on for them in this run; nothing else on
# the machine) and prints how many entries the machine has left, so that every
# connection test starts alike. A proxy that connects to its origin from the ephemeral
# range may take a port whose entry is still there only once the entry is a second old
# (net.ipv4.tcp_tw_reuse_delay), and once the kernel's table of entries
# (net.ipv4.tcp_max_tw_buckets, 131,072 here) is full a closed connection leaves none:
# in runs without this, HAProxy made 14,200 connections/s in some rounds and 22,200 in
# others, and nginx 14,200 or 20,200, depending on which tests had run in the minute
# before. `ss -K` needs a kernel with INET_DIAG_DESTROY. The count recorded
# (time_wait_start) is of every entry on the machine, since the table is shared: other
# programs' entries take room in it too.
CONN_PORTS=""
flush_time_wait() {
    local f="" p
    for p in $ECHO_PORT $CONN_PORTS; do
        f+="${f:+ or }sport = :$p or dport = :$p"
    done
    ss -K -t state time-wait "( $f )" >/dev/null 2>&1 || true
    ss -tnH state time-wait 2>/dev/null | wc -l
}

test_connrate() {
    local c0 c1 t0 t1 l0 out tw
    tw=$(flush_time_wait)
    c0=$(proxy_cpu) t0=$(now_s) l0=$(load_ticks)
    if out=$(run_load $((CONN_S + 30)) "$OUT_DIR/connrate" -c "127.0.0.1:$PORT_ECHO" -d "$CONN_S" -k 64 -s 64 2>"$TMP/load.err"); then
        t1=$(now_s) c1=$(proxy_cpu)
        load_busy_since "$l0"
        emit connrate ok "$(elapsed "$t0" "$t1")" "$([ -n "$c0" ] && fsub "$c1" "$c0")" \
            "${out%\}},\"time_wait_start\":$tw}"
    else
        emit connrate failed "" "" "" "$(head -c 300 "$TMP/load.err")"
    fi
}

# Prints the compact JSON of an iperf3 -J client report on stdin.
iperf_summary() {
    "$PY" -c '
import json, sys
d = json.load(sys.stdin)
if d.get("error"):
    sys.exit("iperf3: " + d["error"])
r, s = d["end"]["sum_received"], d["end"]["sum_sent"]
print(json.dumps({"bps": r["bits_per_second"], "bytes": r["bytes"], "seconds": r["seconds"],
                  "retransmits": s.get("retransmits"), "streams": d["start"]["test_start"]["num_streams"]}))'
}

test_bulk() { # TEST STREAMS
    local test=$1 streams=$2 srv c0 c1 t0 t1 l0 out
    bg iperf3-server "$LOAD_CPUS" timeout -k 2 $((BULK_S + 40)) iperf3 -s -1 -p "$IPERF_PORT"
    srv=$BG_PID
    if ! wait_listen tcp "$IPERF_PORT" "$srv" 10; then
        emit "$test" failed "" "" "" "iperf3 server did not start: $(head -c 200 "$TMP/iperf3-server.err")"
        stop_tree "$srv" 2
        return
    fi
    c0=$(proxy_cpu) t0=$(now_s) l0=$(load_ticks)
    if run_load $((BULK_S + 30)) iperf3 -c 127.0.0.1 -p "$PORT_BULK" -t "$BULK_S" -P "$streams" -J \
        >"$TMP/iperf.json" 2>"$TMP/load.err" && out=$(iperf_summary <"$TMP/iperf.json" 2>"$TMP/load.err"); then
        t1=$(now_s) c1=$(proxy_cpu)
        load_busy_since "$l0"
        emit "$test" ok "$(elapsed "$t0" "$t1")" "$([ -n "$c0" ] && fsub "$c1" "$c0")" "$out"
    else
        emit "$test" failed "" "" "" "$(head -c 300 "$TMP/load.err") $(head -c 200 "$TMP/iperf.json")"
    fi
    stop_tree "$srv" 3
}

test_udp() {
    local c0 c1 t0 t1 out
    if [ -z "$PORT_UDP" ]; then
        if [ "$TARGET" = prism ] || [ "$TARGET" = prism-b ]; then
            emit udp missing "" "" "" "prism refused the UDP app (UDP not built yet)"
        else
            emit udp n/a "" "" "" "HAProxy 2.6 does not proxy UDP"
        fi
        return
    fi
    c0=$(proxy_cpu) t0=$(now_s)
    if out=$(run_load 120 "$OUT_DIR/udpload" -c "127.0.0.1:$PORT_UDP" -r "$UDP_RATES" \
        -d "$UDP_STEP_MS" -g "$UDP_GRACE_MS" -p 64 -s 64 -b "$UDP_REFINE" -l "$UDP_LATE_MS" \
        $([ "$UDP_GSO" = 1 ] && echo -G) 2>"$TMP/load.err"); then
        t1=$(now_s) c1=$(proxy_cpu)
        emit udp ok "$(elapsed "$t0" "$t1")" "$([ -n "$c0" ] && fsub "$c1" "$c0")" "$out"
    else
        emit udp failed "" "" "" "$(head -c 300 "$TMP/load.err")"
    fi
}

# Memory per idle connection: opens IDLE_N connections in stages, samples the proxy's PSS
# and RSS and the kernel's socket memory at each stage.
test_idle() {
    local pid before stages="" n pss rss tcp slab out i ok=1 last
    if [ "$TARGET" = socat ]; then
        emit idle n/a "" "" "" "socat forks a process per connection"
        return
    fi
    read -r pss rss < <(mem_kb)
    read -r tcp slab < <(kernel_mem)
    before="{\"pss_kb\":$pss,\"rss_kb\":$rss,\"tcp_mem_pages\":$tcp,\"sunreclaim_kb\":$slab}"
    bg idleconns "$LOAD_CPUS" "$OUT_DIR/idleconns" -c "127.0.0.1:$PORT_ECHO" -n "$IDLE_N" -k 256 -T 60
    pid=$BG_PID
    for n in ${IDLE_N//,/ }; do
        if ! wait_line "$TMP/idleconns.out" "^established $n\$" "$pid" 90; then
            ok=0
            break
        fi
        sleep 0.5 # let the proxy finish its side of the last handshakes
        read -r pss rss < <(mem_kb)
        read -r tcp slab < <(kernel_mem)
        stages="$stages${stages:+,}{\"n\":$n,\"pss_kb\":$pss,\"rss_kb\":$rss,\"tcp_mem_pages\":$tcp,\"sunreclaim_kb\":$slab}"
        kill -USR1 "$pid" 2>/dev/null || true
    done
    # After the last stage idleconns prints its summary and exits; bounded wait.
    for ((i = 0; i < 100; i++)); do is_alive "$pid" || break; sleep 0.05; done
    stop_tree "$pid" 3
    last=$(grep '^{' "$TMP/idleconns.out" | tail -1)
    if [ $ok = 1 ]; then
        emit idle ok "" "" "{\"before\":$before,\"stages\":[$stages],\"tool\":${last:-null}}"
    else
        emit idle failed "" "" "" "idleconns: $(head -c 300 "$TMP/idleconns.err") $(tail -3 "$TMP/idleconns.out" | tr '\n' ' ')"
    fi
}

run_target() {
    local t0 test
    TARGET=$1
    ensure_origins
    t0=$(now_s)
    if ! start_target "$TARGET"; then
        emit start missing "" "" "" "$START_ERR"
        return
    fi
    SOCKETS_BASE=$(socket_count)
    for test in ${TESTS//,/ }; do
        quiesce
        case "$test" in
        idle) test_idle ;;
        pingpong) test_pingpong ;;
        connrate) test_connrate ;;
        bulk1) test_bulk bulk1 1 ;;
        bulk8) test_bulk bulk8 8 ;;
        udp) test_udp ;;
        esac
        if [ ${#TARGET_ROOTS[@]} -gt 0 ] && ! is_alive "${TARGET_ROOTS[0]}"; then
            log "$TARGET died during $test; the rest of its tests are skipped this round"
            emit died failed "" "" "" "exited during $test: $(tail -c 300 "$TMP"/*.err 2>/dev/null | tr '\n' ' ' | tail -c 300)"
            break
        fi
    done
    stop_target
    log "  ($TARGET took $(elapsed "$t0" "$(now_s)") s)"
}

# ---------------------------------------------------------------------------------------
# Instruction counts: per proxied connection and per GiB, once per target (1 worker).

insn_method() {
    local out
    case "$INSN" in
    off) echo off ;;
    perf | callgrind) echo "$INSN" ;;
    auto)
        out=$(perf stat -x, -e instructions true 2>&1 >/dev/null || true)
        if command -v perf >/dev/null && [[ "$out" =~ ^[0-9]+,,instructions ]]; then
            echo perf
        elif command -v valgrind >/dev/null; then
            echo callgrind
        else
            echo off
        fi
        ;;
    esac
}

# Runs one workload (base, conns or bulk) against the started target; prints nothing.
insn_workload() {
    case "$1" in
    base) sleep 0.5 ;;
    conns)
        flush_time_wait >/dev/null # as test_connrate does
        run_load 300 "$OUT_DIR/connrate" -c "127.0.0.1:$PORT_ECHO" -n "${WL_CONNS:-$INSN_CONNS}" -k 64 -s 64 >"$TMP/insn-load.out" 2>&1 || true
        ;;
    bulk)
        local srv
        bg iperf3-server "$LOAD_CPUS" timeout -k 2 300 iperf3 -s -1 -p "$IPERF_PORT"
        srv=$BG_PID
        wait_listen tcp "$IPERF_PORT" "$srv" 10 || true
        run_load 300 iperf3 -c 127.0.0.1 -p "$PORT_BULK" -n "${WL_BYTES:-$INSN_BYTES}" -J >"$TMP/insn-iperf.json" 2>&1 || true
        stop_tree "$srv" 3
        ;;
    udp) # a rate every UDP target sustains, so the count is per echoed datagram, not per loss
        [ -n "$PORT_UDP" ] && run_load 60 "$OUT_DIR/udpload" -c "127.0.0.1:$PORT_UDP" \
            -r "$SC_UDP_RATE" -d "$SC_UDP_MS" -g "$UDP_GRACE_MS" -p 64 -s 64 >"$TMP/insn-udp.out" 2>&1 || true
        ;;
    esac
}

# callgrind: each workload in its own run of the target under valgrind; the base run
# (start, ready, stop) is subtracted. Counts user-space instructions only. Sets INSN_COUNT
# (empty if the target did not run). Not run in a $(...) subshell: the trap must see every
# process started.
insn_callgrind_one() { # WORKLOAD
    INSN_COUNT=""
    rm -f "$TMP"/cg.out.*
    START_WAIT=120 STOP_GRACE=60
    if start_target "$TARGET" "valgrind --tool=callgrind --callgrind-out-file=$TMP/cg.out.%p --dump-instr=no --trace-children=no"; then
        insn_workload "$1"
        stop_target
        INSN_COUNT=$(cat "$TMP"/cg.out.* 2>/dev/null |
            awk '/^(summary|totals):/ && !seen[FILENAME]++ { s += $2; n++ } END { if (n) print s }')
    else
        log "  $TARGET under callgrind: $START_ERR"
    fi
    START_WAIT=$START_WAIT_NORMAL STOP_GRACE=10
}

# TCP segments sent on this machine so far (Tcp OutSegs in /proc/net/snmp): every
# endpoint's, which during a workload are the load tool's, the proxy's and the origin's.
tcp_out_segs() {
    awk '$1 == "Tcp:" { if (!n) { for (i = 2; i <= NF; i++) if ($i == "OutSegs") n = i } else { print $n; exit } }' /proc/net/snmp
}

# Runs WORKLOAD on a fresh start of the target (pinned) while perf stat counts EVENTS on
# its processes, from just before the workload to just after; the counts are left in
# $TMP/perf.out. Sets PERF_RAN=1 if the target ran, and PERF_USER and PERF_SYS, the
# proxy's user and kernel CPU seconds during the workload, and PERF_SEGS, the TCP
# segments every endpoint sent meanwhile.
perf_during() { # WORKLOAD EVENTS
    local pids perf_pid i u0 k0 u1 k1 s0 s1
    PERF_RAN=0 PERF_USER="" PERF_SYS="" PERF_SEGS=""
    rm -f "$TMP/perf.out"
    start_target "$TARGET" || return 0
    pids=$(for r in "${TARGET_ROOTS[@]}"; do tree_pids "$r"; done | paste -sd,)
    bg perf "" perf stat -x, -e "$2" -p "$pids" -o "$TMP/perf.out"
    perf_pid=$BG_PID
    sleep 0.3
    read -r u0 k0 < <(cpu_split_ticks)
    s0=$(tcp_out_segs)
    insn_workload "$1"
    s1=$(tcp_out_segs)
    read -r u1 k1 < <(cpu_split_ticks)
    PERF_USER=$(ticks_to_s $((u1 - u0)))
    PERF_SYS=$(ticks_to_s $((k1 - k0)))
    [ -n "$s0" ] && [ -n "$s1" ] && PERF_SEGS=$((s1 - s0))
    kill -INT "$perf_pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        is_alive "$perf_pid" || break
        sleep 0.05
    done
    stop_tree "$perf_pid" 2
    stop_target
    PERF_RAN=1
}

# Prints the sum of the counts in $TMP/perf.out whose event name matches REGEX (nothing
# if none was counted).
perf_count() { # REGEX
    awk -F, -v re="$1" '$3 ~ re && $1 ~ /^[0-9]+$/ { s += $1; n++ } END { if (n) print s }' \
        "$TMP/perf.out" 2>/dev/null
}

# perf: user and kernel instructions of the target during the workload. Sets INSN_COUNT.
insn_perf_one() { # WORKLOAD
    INSN_COUNT=""
    perf_during "$1" instructions
    [ "$PERF_RAN" = 1 ] && INSN_COUNT=$(perf_count '^instructions')
    return 0
}

run_insn() {
    local method base conns bulk bytes conns_out
    method=$(insn_method)
    log "instruction counts: $method"
    [ "$method" = off ] && return 0
    CONFIG=1w WORKERS=1 PROXY_CPUS=0 LOAD_CPUS=1 ROUND=0 ORDER=0
    start_origins
    for TARGET in ${TARGETS//,/ }; do
        case "$TARGET" in direct | socat) continue ;; esac
        base=0 conns="" bulk="" bytes=null
        rm -f "$TMP/insn-load.out" "$TMP/insn-iperf.json"
        if [ "$method" = callgrind ]; then
            insn_callgrind_one base
            base=$INSN_COUNT
            [ -n "$base" ] && insn_callgrind_one conns
        else
            insn_perf_one conns
        fi
        conns=$INSN_COUNT
        conns_out=$(grep '^{' "$TMP/insn-load.out" 2>/dev/null | tail -1 || true)
        if [ -n "$conns" ]; then
            if [ "$method" = callgrind ]; then insn_callgrind_one bulk; else insn_perf_one bulk; fi
            bulk=$INSN_COUNT
        fi
        if [ -f "$TMP/insn-iperf.json" ]; then
            bytes=$(iperf_summary <"$TMP/insn-iperf.json" 2>/dev/null || echo null)
        fi
        if [ -z "$base" ] || [ -z "$conns" ] || [ -z "$bulk" ]; then
            emit insn missing "" "" "" "$TARGET did not run under $method: $START_ERR"
            continue
        fi
        emit insn ok "" "" "{\"method\":\"$method\",\"base\":$base,\"conns_run\":$conns,\"bulk_run\":$bulk,\"connrate\":${conns_out:-null},\"iperf\":$bytes,\"conns_asked\":$INSN_CONNS}"
    done
    stop_origins
}

# ---------------------------------------------------------------------------------------
# Syscalls: per proxied connection, per GiB and per echoed UDP datagram (at SC_UDP_RATE, a
# rate every UDP target sustains), once per target (1 worker), counted by the kernel's
# syscall tracepoints on the proxy's processes (perf stat), so the count is exact and the
# target runs at full speed. epoll_wait calls are counted apart: a busy-polling target
# makes many of them while it waits.

SYSCALL_EVENTS=raw_syscalls:sys_enter,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_epoll_pwait

# Whether perf can count the syscall tracepoints. Tried three times a second apart: in
# one full run (2026-12-08) the probe failed once at the end and the report lost its
# syscall section, while the same probe by hand minutes later passed 20 times in 20.
# What perf said is logged, so that a failure says why.
syscalls_usable() {
    local out
    [ "$SYSCALLS" != off ] && command -v perf >/dev/null || return 1
    for _ in 1 2 3; do
        out=$(perf stat -x, -e "$SYSCALL_EVENTS" true 2>&1 >/dev/null) || true
        grep -q '^[0-9]*,,raw_syscalls:sys_enter' <<<"$out" && return 0
        log "syscall counts: perf stat -e $SYSCALL_EVENTS said: $(head -c 300 <<<"$out" | tr '\n' ' ')"
        sleep 1
    done
    return 1
}

# Sets SC_TOTAL and SC_EPOLL (empty if the target did not run), SC_USER, SC_SYS and
# SC_SEGS.
syscalls_one() { # WORKLOAD
    SC_TOTAL="" SC_EPOLL="" SC_USER="" SC_SYS="" SC_SEGS=""
    perf_during "$1" "$SYSCALL_EVENTS"
    [ "$PERF_RAN" = 1 ] || return 0
    SC_TOTAL=$(perf_count '^raw_syscalls:sys_enter$')
    SC_EPOLL=$(perf_count '^syscalls:sys_enter_epoll_p?wait$')
    SC_EPOLL=${SC_EPOLL:-0} SC_USER=$PERF_USER SC_SYS=$PERF_SYS SC_SEGS=$PERF_SEGS
}

run_syscalls() {
    local conns_t conns_e conns_u conns_k conns_s conns_out bytes bulk_json udp_json udp_out
    if ! syscalls_usable; then
        log "syscall counts: off (SYSCALLS=$SYSCALLS, or perf cannot count syscall tracepoints here)"
        return 0
    fi
    log "syscall counts: perf stat -e $SYSCALL_EVENTS ($SC_CONNS connections, $SC_BYTES, UDP $SC_UDP_RATE/s for $SC_UDP_MS ms)"
    local WL_CONNS=$SC_CONNS WL_BYTES=$SC_BYTES
    CONFIG=1w WORKERS=1 PROXY_CPUS=0 LOAD_CPUS=1 ROUND=0 ORDER=0
    start_origins
    for TARGET in ${TARGETS//,/ }; do
        case "$TARGET" in direct | socat) continue ;; esac
        rm -f "$TMP/insn-load.out" "$TMP/insn-iperf.json"
        syscalls_one conns
        conns_t=$SC_TOTAL conns_e=$SC_EPOLL conns_u=$SC_USER conns_k=$SC_SYS conns_s=${SC_SEGS:-null}
        conns_out=$(grep '^{' "$TMP/insn-load.out" 2>/dev/null | tail -1 || true)
        [ -n "$conns_t" ] && syscalls_one bulk
        bytes=null
        if [ -f "$TMP/insn-iperf.json" ]; then
            bytes=$(iperf_summary <"$TMP/insn-iperf.json" 2>/dev/null || echo null)
        fi
        if [ -z "$conns_t" ] || [ -z "$SC_TOTAL" ]; then
            emit syscalls missing "" "" "" "$TARGET did not run under perf stat: $START_ERR"
            continue
        fi
        bulk_json="\"bulk_run\":$SC_TOTAL,\"bulk_epoll\":$SC_EPOLL,\"bulk_user_s\":$SC_USER,\"bulk_sys_s\":$SC_SYS"
        udp_json=""
        rm -f "$TMP/insn-udp.out"
        # PORT_UDP is what the last start of this target set: empty where it proxies no
        # UDP (HAProxy 2.6), which is then not started again for nothing
        [ -n "$PORT_UDP" ] && syscalls_one udp
        udp_out=$(grep '^{' "$TMP/insn-udp.out" 2>/dev/null | tail -1 || true)
        if [ -n "$PORT_UDP" ] && [ -n "$SC_TOTAL" ] && [ -n "$udp_out" ]; then
            udp_json=",\"udp_run\":$SC_TOTAL,\"udp_epoll\":$SC_EPOLL,\"udp_user_s\":$SC_USER,\"udp_sys_s\":$SC_SYS,\"udpload\":$udp_out"
        fi
        emit syscalls ok "" "" "{\"conns_run\":$conns_t,\"conns_epoll\":$conns_e,\"conns_user_s\":$conns_u,\"conns_sys_s\":$conns_k,\"conns_segs\":$conns_s,$bulk_json,\"connrate\":${conns_out:-null},\"iperf\":$bytes$udp_json}"
    done
    stop_origins
}

# ---------------------------------------------------------------------------------------
# Machine, versions and the run itself.

write_meta() {
    local r busy_start
    # Whether other work is running: the busy share of every CPU over one second.
    r=$(idle_reading all)
    sleep 1
    busy_start=$(busy_since "$r" all)
    "$PY" - "$RESULTS" "$TS" "$QUICK" "$ROUNDS" "$ROUNDS_2W" "$TESTS" "$TARGETS" "$CONFIGS" \
        "$PRISM_BIN" "$BULK_S" "$CONN_S" "$PING_N" "$UDP_STEP_MS" "$UDP_RATES" "$IDLE_N" \
        "$INSN_CONNS" "$INSN_BYTES" "$UDP_REFINE" "$UDP_LATE_MS" "$PRISM_BUSY_POLL_US" \
        "$PRISM_B_BIN" "$PRISM_B_BUSY_POLL_US" "$PRISM_B_LABEL" "$UDP_GSO" "$busy_start" <<'EOF'
import json, os, platform, subprocess, sys
(path, ts, quick, rounds, rounds2, tests, targets, configs, prism, bulk_s, conn_s, ping_n,
 udp_step, udp_rates, idle_n, insn_conns, insn_bytes, udp_refine, udp_late, busy,
 b_bin, b_busy, b_label, udp_gso, busy_start) = sys.argv[1:]
def run(cmd):
    try:
        p = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=20)
        return (p.stdout + p.stderr).strip().splitlines()[0] if (p.stdout + p.stderr).strip() else ""
    except Exception as e:
        return "unavailable (%s)" % e
model = ""
for line in open("/proc/cpuinfo"):
    if line.startswith("model name"):
        model = line.split(":", 1)[1].strip(); break
meta = {
    "type": "meta", "timestamp": ts, "quick": quick == "1",
    "rounds": {"1w": int(rounds), "2w": int(rounds2)}, "tests": tests.split(","),
    "targets": targets.split(","), "configs": configs.split(","),
    "params": {"bulk_seconds": float(bulk_s), "connrate_seconds": float(conn_s),
               "connrate_in_flight": 64, "message_bytes": 64, "pingpong_round_trips": int(ping_n),
               "udp_step_ms": int(udp_step), "udp_rates": [int(r) for r in udp_rates.split(",")],
               "udp_ports": 64, "udp_refine_steps": int(udp_refine), "udp_late_ms": int(udp_late),
               "udp_gso": udp_gso == "1",
               "idle_n": [int(n) for n in idle_n.split(",")],
               "insn_conns": int(insn_conns), "insn_bytes": insn_bytes},
    "machine": {"nproc": os.cpu_count(), "cpu_model": model, "kernel": platform.release(),
                "mem_total": run("awk '/MemTotal/ {print $2 \" kB\"}' /proc/meminfo"),
                "nofile_limit": run("sh -c 'ulimit -n'"),
                "ip_local_port_range": run("cat /proc/sys/net/ipv4/ip_local_port_range"),
                "tcp_tw_reuse": run("cat /proc/sys/net/ipv4/tcp_tw_reuse"),
                "tcp_congestion_control": run("cat /proc/sys/net/ipv4/tcp_congestion_control"),
                "loadavg_start": open("/proc/loadavg").read().strip(),
                "cpu_busy_start": float(busy_start) if busy_start else None},
    "versions": {"prism": run("git rev-parse --short HEAD 2>/dev/null") + " (git HEAD; " +
                          run("git status --porcelain 2>/dev/null | wc -l") + " paths modified)",
                 "haproxy": run("haproxy -v"), "nginx": run("nginx -v"),
                 "socat": run("socat -V | grep 'socat version'"), "iperf3": run("iperf3 --version"),
                 "valgrind": run("valgrind --version"), "perf": run("perf --version"),
                 "cc": run("${CC:-cc} --version"), "os": run(". /etc/os-release && echo $PRETTY_NAME")},
}
def variant(binary, busy_poll_us):
    return {"bin": binary, "busy_poll_us": int(busy_poll_us) if busy_poll_us else None}
meta["prism"] = variant(prism, busy)
if "prism-b" in meta["targets"]:
    meta["prism_b"] = dict(variant(b_bin, b_busy), label=b_label)
with open(path, "a") as f:
    f.write(json.dumps(meta, sort_keys=True) + "\n")
EOF
}

# Appends the generated configurations to the results, and the load average at the end.
write_tail() {
    "$PY" - "$RESULTS" "$CONF_DIR" <<'EOF'
import json, os, sys
path, conf_dir = sys.argv[1:]
with open(path, "a") as f:
    for name in sorted(os.listdir(conf_dir)):
        f.write(json.dumps({"type": "config", "name": name,
                            "text": open(os.path.join(conf_dir, name)).read()}) + "\n")
    f.write(json.dumps({"type": "end", "loadavg_end": open("/proc/loadavg").read().strip()}) + "\n")
EOF
}

run_config() { # CONFIG ROUNDS
    local r i n targets=()
    CONFIG=$1
    if [ "$CONFIG" = 1w ]; then
        WORKERS=1 PROXY_CPUS=0 LOAD_CPUS=1
    else
        WORKERS=2 PROXY_CPUS="" LOAD_CPUS=""
    fi
    read -r -a targets <<<"${TARGETS//,/ }"
    n=${#targets[@]}
    start_origins
    for ((r = 1; r <= $2; r++)); do
        ROUND=$r
        log "== $CONFIG round $r/$2 ($(cut -d' ' -f1-3 /proc/loadavg) load)"
        printf '{"type":"round","config":"%s","round":%d,"loadavg":"%s"}\n' "$CONFIG" "$r" \
            "$(cat /proc/loadavg)" >>"$RESULTS"
        for ((i = 0; i < n; i++)); do
            ORDER=$i
            run_target "${targets[$(((i + r - 1) % n))]}"
        done
    done
    stop_origins
}

main() {
    local cfg t0
    TMP=$(mktemp -d /tmp/prism-bench.XXXXXX)
    CONF_DIR=$TMP/configs # copies of the generated configurations, for the results
    mkdir -p "$CONF_DIR"
    t0=$(now_s)
    START_WAIT_NORMAL=15
    START_WAIT=$START_WAIT_NORMAL
    STOP_GRACE=10
    build_tools
    write_meta
    log "results: $RESULTS"
    for cfg in ${CONFIGS//,/ }; do
        if [ "$cfg" = 1w ]; then run_config 1w "$ROUNDS"; else run_config 2w "$ROUNDS_2W"; fi
    done
    run_insn
    run_syscalls
    write_tail
    log "done in $(elapsed "$t0" "$(now_s)") s: $RESULTS"
    if [ "$REPORT" = 1 ]; then
        "$PY" bench/report.py "$RESULTS" docs/BENCHMARKS.md
        log "wrote docs/BENCHMARKS.md"
    fi
}

main "$@"
