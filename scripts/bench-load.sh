#!/usr/bin/env bash
# The load bench: a generator namespace and a server namespace over one veth pair, and on the
# server end, in turn, each system answering the same zone at 198.18.0.2:
#   xgslb-xdp    xgslbd with its XDP program attached natively (A answers by XDP_TX)
#   xgslb-slow   xgslbd with --xdp-mode off (the slow path answers everything)
#   knot-udp     knotd, UDP sockets
#   knot-xdp     knotd in XDP mode (AF_XDP on the server veth)
#   nsd          nsd, UDP sockets, response rate limiting off
#   reflector    xgslb_reflector (XDP_TX of the query with QR set): the ceiling
# loaded from the generator namespace by dnsperf (sockets; hot name, then a mix) and kxdpgun
# (AF_XDP; fixed rates stepped up until loss passes 1%, a flat-out run, the mix flat out).
#
#   bench-load.sh --bin-dir DIR --out FILE [--smoke] [--systems "xgslb-xdp nsd ..."]
#
# DIR holds xgslbd and xgslbctl. FILE gets one JSON object per line: per system and load the
# queries sent and answered, the duration, and CPU time deltas (clock ticks turned into
# seconds): all CPUs' non-idle time and softirq time from /proc/stat, and the server
# processes' own user+system time from /proc/PID/stat; a system that could not run gets a
# line with "skipped". cargo xtask bench turns it into the table, results.json and the chart.
#
# Traffic stays inside the two namespaces (198.18.0.0/15 only). Every wait is bounded, and
# everything is removed on exit, failure or Ctrl-C: processes, XDP programs (knotd and
# kxdpgun leave theirs attached), pins, namespaces, the temporary directory.
set -euo pipefail

PREFIX=xgslb-bench
VETH=xgb
SRV_NS=$PREFIX-srv
GEN_NS=$PREFIX-cli
SRV_IF=$VETH-s0
GEN_IF=$VETH-c0
SERVER=198.18.0.2
PIN_DIR=/sys/fs/bpf/xgslb-bench
PEER_PIN=/sys/fs/bpf/xgslb-bench-peer
REFL_PIN=/sys/fs/bpf/xgslb-bench-reflector
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")

BIN_DIR="" OUT="" SMOKE=0
SYSTEMS="xgslb-xdp xgslb-slow knot-udp knot-xdp nsd reflector"
while [ $# -gt 0 ]; do
    case "$1" in
    --bin-dir) BIN_DIR=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --smoke) SMOKE=1; shift ;;
    --systems) SYSTEMS=$2; shift 2 ;;
    *) echo "usage: $0 --bin-dir DIR --out FILE [--smoke] [--systems LIST]" >&2; exit 2 ;;
    esac
done
[ -n "$BIN_DIR" ] && [ -n "$OUT" ] || { echo "$0: --bin-dir and --out are required" >&2; exit 2; }
BIN_DIR=$(cd "$BIN_DIR" && pwd)
CTL=$BIN_DIR/xgslbctl

if [ "$SMOKE" = 1 ]; then
    # Proves every piece runs; the figures mean little.
    STEP_SECS=1 FLAT_SECS=1 PERF_SECS=1
    RATES="20000"
    PERF_RATES="10000"
    FLAT=0 MIX=0
else
    STEP_SECS=3 FLAT_SECS=4 PERF_SECS=4
    RATES="10000 25000 50000 100000 150000 200000 250000 300000 350000 400000"
    PERF_RATES="10000 25000 50000 75000 100000 125000"
    FLAT=1 MIX=1
fi
# kxdpgun: one sending thread on CPU 1 (the machine has 2), batches of 32. "Flat out" is a
# rate far above what one thread sends.
KXDPGUN_OPTS=(-F 1 -b 32)
FLAT_RATE=10000000
# The highest offered rate a step may lose before the steps stop (percent).
STEP_STOP_LOSS=1

WORK=$(mktemp -d /tmp/xgslb-bench.XXXXXX)
SERVER_PID=""
: >"$OUT"

log() { echo "bench-load: [${SECONDS}s] $*" >&2; }

# Not for `&`: a function in the background is a subshell, and $! its pid, not the server's.
# Servers start as `nsenter ... &`, which execs the server (nsenter --net does not fork).
gen() { nsenter --net="/run/netns/$GEN_NS" "$@"; }
srv() { nsenter --net="/run/netns/$SRV_NS" "$@"; }

stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    local i
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        log "server $SERVER_PID did not stop in 10 s; killing it"
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

# XDP programs on the server veth: detached whatever attached them (knotd leaves its own).
srv_xdp_off() {
    rm -f "$REFL_PIN"
    if [ -e "/run/netns/$SRV_NS" ]; then
        ip -n "$SRV_NS" link set dev "$SRV_IF" xdp off 2>/dev/null || true
    fi
}

remove_pins() {
    rm -f "$PEER_PIN" "$REFL_PIN"
    if [ -d "$PIN_DIR" ]; then
        find "$PIN_DIR" -mindepth 1 -maxdepth 1 -exec rm -f {} +
        rmdir "$PIN_DIR" 2>/dev/null || true
    fi
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_server
    srv_xdp_off
    remove_pins
    bash "$HERE/netns.sh" down "$PREFIX" || true
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT TERM

# The generator end runs an XDP_PASS program (veth hands XDP_TX frames only to a peer running
# NAPI) except while kxdpgun runs, which attaches its own and leaves it behind.
gen_pass_on() {
    ip -n "$GEN_NS" link set dev "$GEN_IF" xdp off 2>/dev/null || true
    rm -f "$PEER_PIN"
    gen "$CTL" veth-peer --iface "$GEN_IF" --pin "$PEER_PIN"
}
gen_xdp_off() {
    rm -f "$PEER_PIN"
    ip -n "$GEN_NS" link set dev "$GEN_IF" xdp off 2>/dev/null || true
}

# --- zone data and configs ---------------------------------------------------------------

setup_data() {
    mkdir -p "$WORK/xgslb" "$WORK/knot" "$WORK/nsd"
    cp "$ROOT/config/example.test.zone" "$WORK/xgslb/example.test.zone"
    cp "$ROOT/config/metrics.example.toml" "$WORK/xgslb/metrics.example.toml"
    cp "$ROOT"/config/agent-*.key "$WORK/xgslb/"
    chmod 0600 "$WORK"/xgslb/agent-*.key
    # xgslb: config/example.toml with the bench's pin directory and only the IPv4 listener
    # (the [server] one: the [agents] listen is a single address and stays).
    sed -e 's|^listen = \[.*|listen = ["198.18.0.2:53"]|' \
        -e "s|^pin_dir = .*|pin_dir = \"$PIN_DIR\"|" \
        "$ROOT/config/example.toml" >"$WORK/xgslb/xgslb.toml"
    grep -q "^listen = \[\"198.18.0.2:53\"\]" "$WORK/xgslb/xgslb.toml"
    # Knot and NSD: the same zone with the answer sets written as static records; www's A
    # answer is the first address of its set (xgslb returns 1 record per answer too).
    {
        cat "$ROOT/config/example.test.zone"
        echo "; answer sets of example.toml, as static records"
        echo "www     IN A    198.18.1.10"
        echo "cdn 60  IN A    198.18.1.20"
        echo "cdn 60  IN A    198.18.2.20"
        echo "cdn 60  IN AAAA 2001:db8:1::20"
    } >"$WORK/static.zone"
    cp "$WORK/static.zone" "$WORK/knot/example.test.zone"
    cp "$WORK/static.zone" "$WORK/nsd/example.test.zone"

    local ncpu
    ncpu=$(nproc)
    write_knot_conf udp "$ncpu" >"$WORK/knot/knot-udp.conf"
    write_knot_conf xdp "$ncpu" >"$WORK/knot/knot-xdp.conf"

    cat >"$WORK/nsd/nsd.conf" <<EOF
server:
    ip-address: $SERVER
    port: 53
    server-count: $ncpu
    username: ""
    chroot: ""
    zonesdir: "$WORK/nsd"
    database: ""
    zonelistfile: "$WORK/nsd/zone.list"
    pidfile: "$WORK/nsd/nsd.pid"
    xfrdfile: "$WORK/nsd/xfrd.state"
    logfile: "$WORK/nsd/nsd.log"
    verbosity: 0
    hide-version: yes
EOF
    # Only builds with RRL know the option; it is off when set to 0.
    if nsd-checkconf -o rrl-ratelimit "$WORK/nsd/nsd.conf" >/dev/null 2>&1; then
        echo "    rrl-ratelimit: 0" >>"$WORK/nsd/nsd.conf"
        echo "    rrl-whitelist-ratelimit: 0" >>"$WORK/nsd/nsd.conf"
    fi
    cat >>"$WORK/nsd/nsd.conf" <<EOF
remote-control:
    control-enable: no
zone:
    name: example.test
    zonefile: example.test.zone
EOF
    nsd-checkconf "$WORK/nsd/nsd.conf"

    # Query files (dnsperf and kxdpgun read the same "name type" lines).
    echo "www.example.test A" >"$WORK/hot.txt"
    cat >"$WORK/mix.txt" <<EOF
www.example.test A
www.example.test A
www.example.test A
www.example.test A
www.example.test A
www.example.test A
www.example.test AAAA
api.example.test A
nothere.example.test A
example.test SOA
example.test MX
www.example.test A
api.example.test AAAA
x.nothere.example.test AAAA
mail.example.test A
cdn.example.test A
EOF
}

write_knot_conf() {
    local mode=$1 ncpu=$2
    cat <<EOF
server:
    rundir: "$WORK/knot"
    user: root:root
    udp-workers: $ncpu
    background-workers: 1
EOF
    if [ "$mode" = udp ]; then
        echo "    listen: $SERVER@53"
    else
        cat <<EOF
xdp:
    listen: $SRV_IF@53
    udp: on
EOF
    fi
    cat <<EOF
database:
    storage: "$WORK/knot"
log:
  - target: stderr
    any: warning
zone:
  - domain: example.test.
    file: "$WORK/knot/example.test.zone"
    journal-content: none
    zonefile-sync: -1
EOF
}

# --- systems -------------------------------------------------------------------------------

# Waits (at most about 15 s) until www.example.test A is answered from the generator.
wait_ready() {
    local i
    for ((i = 0; i < 15; i++)); do
        if [ -n "$SERVER_PID" ] && ! kill -0 "$SERVER_PID" 2>/dev/null; then
            return 1
        fi
        if gen dig +tries=1 +time=1 +short "@$SERVER" www.example.test A 2>/dev/null |
            grep -q '^198\.18\.'; then
            return 0
        fi
        # The reflector's answer has no records; any reply will do.
        if [ "$1" = reflector ] &&
            gen dig +tries=1 +time=1 "@$SERVER" www.example.test A 2>/dev/null | grep -q 'status: NOERROR'; then
            return 0
        fi
        sleep 1
    done
    return 1
}

start_system() {
    local sys=$1
    # The previous system must be gone, or it would answer in this one's place.
    if ip -n "$SRV_NS" link show dev "$SRV_IF" | grep -q 'prog/xdp'; then
        log "an XDP program is still attached to $SRV_IF"
        return 1
    fi
    if [ -n "$(srv ss -Hlun 'sport = :53')" ]; then
        log "something still listens on port 53 in $SRV_NS"
        return 1
    fi
    case "$sys" in
    xgslb-xdp | xgslb-slow)
        local mode=native
        [ "$sys" = xgslb-slow ] && mode=off
        nsenter --net="/run/netns/$SRV_NS" "$BIN_DIR/xgslbd" --config "$WORK/xgslb/xgslb.toml" --iface "$SRV_IF" \
            --xdp-mode "$mode" --pin-dir "$PIN_DIR" >"$WORK/$sys.log" 2>&1 &
        SERVER_PID=$!
        ;;
    knot-udp | knot-xdp)
        nsenter --net="/run/netns/$SRV_NS" knotd -c "$WORK/knot/$sys.conf" >"$WORK/$sys.log" 2>&1 &
        SERVER_PID=$!
        ;;
    nsd)
        nsenter --net="/run/netns/$SRV_NS" nsd -d -c "$WORK/nsd/nsd.conf" >"$WORK/$sys.log" 2>&1 &
        SERVER_PID=$!
        ;;
    reflector)
        srv "$CTL" bench-reflector --iface "$SRV_IF" --pin "$REFL_PIN"
        ;;
    *) log "unknown system $sys"; return 1 ;;
    esac
}

stop_system() {
    stop_server
    srv_xdp_off
    remove_pins
    gen_pass_on
}

# The server's processes: the one started and its descendants (nsd: xfrd, then main, then
# the servers), at most 4 levels down.
server_pids() {
    local level=$SERVER_PID all=$SERVER_PID depth next p
    for ((depth = 0; depth < 4; depth++)); do
        next=""
        for p in $level; do
            next="$next $(pgrep -P "$p" 2>/dev/null | tr '\n' ' ' || true)"
        done
        [ -n "${next// /}" ] || break
        all="$all $next"
        level=$next
    done
    echo $all
}

server_ticks() {
    local total=0 pid f
    [ -n "$SERVER_PID" ] || { echo 0; return; }
    for pid in $(server_pids); do
        [ -r "/proc/$pid/stat" ] || continue
        # Fields after the parenthesised name: utime is the 12th, stime the 13th.
        f=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null) || continue
        set -- $f
        total=$((total + ${12} + ${13}))
    done
    echo "$total"
}

# "busy softirq" ticks of all CPUs from /proc/stat: non-idle (all but idle and iowait), softirq.
stat_ticks() {
    awk '$1 == "cpu" { print $2 + $3 + $4 + $6 + $7 + $8 + $9, $8 }' /proc/stat
}

xdp_answered() {
    if [ "$CUR_SYS" = xgslb-xdp ]; then
        "$CTL" stats --pin-dir "$PIN_DIR" --json 2>/dev/null |
            sed -n 's/.*"answered":\([0-9]*\).*/\1/p'
    else
        echo null
    fi
}

# measure TOOL MIX RATE SECS: one load, one JSON line.
measure() {
    local tool=$1 mix=$2 rate=$3 secs=$4 out="$WORK/run.out"
    local s0 s1 p0 p1 x0 x1 sent answered dur
    read -r -a s0 <<<"$(stat_ticks)"
    p0=$(server_ticks)
    x0=$(xdp_answered)
    if [ "$tool" = kxdpgun ]; then
        local q=$rate
        [ "$rate" = flat ] && q=$FLAT_RATE
        gen timeout $((secs + 20)) kxdpgun "${KXDPGUN_OPTS[@]}" -t "$secs" -Q "$q" \
            -i "$WORK/$mix.txt" -I "$GEN_IF" "$SERVER" >"$out" 2>&1 || true
    else
        local qps=()
        [ "$rate" = flat ] || qps=(-Q "$rate")
        gen timeout $((secs + 20)) dnsperf -s "$SERVER" -d "$WORK/$mix.txt" -l "$secs" \
            -c 4 -q 500 -t 1 "${qps[@]}" >"$out" 2>&1 || true
    fi
    read -r -a s1 <<<"$(stat_ticks)"
    p1=$(server_ticks)
    x1=$(xdp_answered)
    if [ "$tool" = kxdpgun ]; then
        sent=$(sed -n 's/^total queries: *\([0-9]*\).*/\1/p' "$out")
        answered=$(sed -n 's/^total replies: *\([0-9]*\).*/\1/p' "$out")
        dur=$(sed -n 's/^duration: *\([0-9.]*\).*/\1/p' "$out")
    else
        sent=$(sed -n 's/^ *Queries sent: *\([0-9]*\).*/\1/p' "$out")
        answered=$(sed -n 's/^ *Queries completed: *\([0-9]*\).*/\1/p' "$out")
        dur=$(sed -n 's/^ *Run time (s): *\([0-9.]*\).*/\1/p' "$out")
    fi
    if [ -z "$sent" ] || [ -z "$answered" ] || [ -z "$dur" ]; then
        log "$CUR_SYS $tool $mix $rate: no figures in the output:"
        sed 's/^/    /' "$out" >&2
        printf '{"system":"%s","tool":"%s","mix":"%s","rate":"%s","error":"no figures in the %s output"}\n' \
            "$CUR_SYS" "$tool" "$mix" "$rate" "$tool" >>"$OUT"
        LAST_LOSS=100
        return 0
    fi
    local xd=null
    [ "$x0" = null ] || [ -z "$x0" ] || [ -z "$x1" ] || xd=$((x1 - x0))
    local rate_json=$rate
    [ "$rate" = flat ] && rate_json=null
    printf '{"system":"%s","tool":"%s","mix":"%s","rate":%s,"duration_s":%s,"sent":%s,"answered":%s,"cpu_busy_ticks":%s,"cpu_softirq_ticks":%s,"server_proc_ticks":%s,"xdp_answered":%s}\n' \
        "$CUR_SYS" "$tool" "$mix" "$rate_json" "$dur" "$sent" "$answered" \
        $((s1[0] - s0[0])) $((s1[1] - s0[1])) $((p1 - p0)) "$xd" >>"$OUT"
    LAST_LOSS=$(awk -v s="$sent" -v a="$answered" 'BEGIN { print (s > 0 ? (s - a) * 100 / s : 100) }')
    log "$CUR_SYS $tool $mix rate=$rate: sent $sent answered $answered in ${dur}s (loss ${LAST_LOSS}%)"
}

# Fixed rates stepped up until a step loses more than STEP_STOP_LOSS percent.
step_rates() {
    local tool=$1 secs=$2 r
    shift 2
    for r in "$@"; do
        measure "$tool" hot "$r" "$secs"
        if awk -v l="$LAST_LOSS" -v m="$STEP_STOP_LOSS" 'BEGIN { exit !(l > m) }'; then
            break
        fi
    done
}

run_loads() {
    # Sockets first, while the generator end runs the pass program.
    # shellcheck disable=SC2086 # the rate lists split on purpose
    step_rates dnsperf "$PERF_SECS" $PERF_RATES
    measure dnsperf hot flat "$PERF_SECS"
    [ "$MIX" = 1 ] && measure dnsperf mix flat "$PERF_SECS"
    gen_xdp_off
    # shellcheck disable=SC2086
    step_rates kxdpgun "$STEP_SECS" $RATES
    if [ "$FLAT" = 1 ]; then
        measure kxdpgun hot flat "$FLAT_SECS"
        measure kxdpgun mix flat "$FLAT_SECS"
    fi
    gen_xdp_off
    gen_pass_on
}

skip() {
    log "$1: not run: $2"
    printf '{"system":"%s","skipped":"%s"}\n' "$1" "$2" >>"$OUT"
}

# --- main ----------------------------------------------------------------------------------

for tool in kxdpgun dnsperf knotd nsd dig; do
    command -v "$tool" >/dev/null || { log "$tool is missing (cargo xtask setup installs it)"; exit 1; }
done
[ -x "$CTL" ] && [ -x "$BIN_DIR/xgslbd" ] || { log "no xgslbd/xgslbctl in $BIN_DIR"; exit 1; }

setup_data
bash "$HERE/netns.sh" up "$PREFIX" "$VETH"
remove_pins
gen_pass_on

for CUR_SYS in $SYSTEMS; do
    log "== $CUR_SYS"
    if ! start_system "$CUR_SYS"; then
        skip "$CUR_SYS" "did not start"
        stop_system
        continue
    fi
    if ! wait_ready "$CUR_SYS"; then
        reason="did not answer www.example.test A within 15 s"
        if [ -s "$WORK/$CUR_SYS.log" ]; then
            reason="$reason; log: $(tail -n 3 "$WORK/$CUR_SYS.log" | tr -d '"\\' | tr '\n' ' ')"
        fi
        skip "$CUR_SYS" "$reason"
        stop_system
        continue
    fi
    log "$CUR_SYS answers"
    run_loads
    if [ -n "$SERVER_PID" ] && ! kill -0 "$SERVER_PID" 2>/dev/null; then
        log "$CUR_SYS exited during the loads"
    fi
    stop_system
    log "$CUR_SYS stopped"
done
log "done"
