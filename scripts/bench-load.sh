#!/usr/bin/env bash
# The load bench: a generator namespace and a server namespace over one veth pair, and on the
# server end, in turn, each system answering the same zone at 198.18.0.2:
#   xgslb-xdp    xgslbd with its XDP program attached natively (answers by XDP_TX)
#   xgslb-slow   xgslbd with --xdp-mode off (the slow path answers everything)
#   xgslb-xdp-rrl, xgslb-slow-rrl
#                the same with response rate limiting on ([rrl], RRL_RATE per second, slip
#                2), loaded only with the flood: kxdpgun flat out with the hot name, from
#                one address (one prefix)
#   knot-udp     knotd, UDP sockets
#   knot-xdp     knotd in XDP mode (AF_XDP on the server veth)
#   nsd          nsd, UDP sockets, response rate limiting off
#   reflector    xgslb_reflector (XDP_TX of the query with QR set): the ceiling
# loaded from the generator namespace by dnsperf (sockets) and kxdpgun (AF_XDP), each with
# three query files ("mixes"), at fixed rates stepped up until loss passes 1% and flat out:
#   hot      www.example.test A, only
#   gslb     what resolvers send a GSLB zone: 40% A and 30% AAAA of the wide IPs and answer
#            sets, 15% HTTPS (type 65) of the same names, 10% names that do not exist (a
#            random label each), 5% SOA/NS/MX/TXT of the apex; shuffled
#   nxflood  nonexistent names only, a different random label on every query (1,000,000)
#
#   bench-load.sh --bin-dir DIR --out FILE [--smoke] [--systems "xgslb-xdp nsd ..."]
#
# DIR holds xgslbd and xgslbctl. FILE gets one JSON object per line: per system and load the
# queries sent and answered, the duration, and CPU time deltas (clock ticks turned into
# seconds): all CPUs' non-idle time and softirq time from /proc/stat, and the server
# processes' own user+system time from /proc/PID/stat; for xgslb-xdp the XDP program's
# counters (frames received, answered); for a system with an XDP program on the server veth
# (xgslb-xdp, knot-xdp, reflector) the program's own cost, run_time_ns / run_cnt of
# kernel.bpf_stats_enabled, as xdp_prog_ns_per_packet (null for the others); a system that
# could not run gets a line with "skipped"; for the -rrl systems what the rate limit did
# (responses sent whole, slipped and dropped, from the server's counters). cargo xtask bench
# turns it into the tables, results.json and the chart.
#
# kernel.bpf_stats_enabled is 1 for the whole run (every system, so that every system's and
# the generator's XDP programs pay its two clock reads per packet alike) and set back to what
# it was on exit.
#
# Traffic stays inside the two namespaces (198.18.0.0/15 only). Every wait is bounded, and
# everything is removed on exit, failure or Ctrl-C: processes, XDP programs (knotd and
# kxdpgun leave theirs attached), pins, namespaces, the temporary directory, the sysctl.
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
SYSTEMS="xgslb-xdp xgslb-slow xgslb-xdp-rrl xgslb-slow-rrl knot-udp knot-xdp nsd reflector"
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
KIT=$BIN_DIR/xgslb-testkit

# Time budget of a full run: the whole bench must stay under 20 minutes and its in-kernel
# part takes 2-3, so this part gets at most 15. Measured (2 vCPUs): a kxdpgun run takes 2 s
# more than its duration (it waits 1 s before sending and about 1 s for late replies; 3 s
# with the 1M-name nxflood file or flat out), a dnsperf run its duration (1 s more when it
# waits out its timeout for lost queries), a system's start, readiness and stop 1-3 s. A
# system that loses nothing at any step (xgslb-xdp, reflector):
#   dnsperf  hot 5 steps x 3 s + flat 4 s; gslb, nxflood 2 x 3 s + flat 4 s each: 41 s
#   kxdpgun  hot 9 x (3 + 2) s + flat 7 s; gslb, nxflood 4 x (3 + 2.5) s + flat 7 s each:
#            52 + 29 + 29 = 110 s
# 151 s each, measured. kxdpgun's steps stop after the first to lose more than 1% (dnsperf
# holds its own rate down and rarely loses that much): Knot XDP took 132 s, xgslb's slow
# path 104 s, and Knot UDP and NSD, which lose past 100-150k, take about 120 s: about 13
# minutes for the six. The two -rrl systems run one flat-out flood each: about 10 s each. A
# smoke run takes about 17 s per system (5 for an -rrl one), 110 s in all.
if [ "$SMOKE" = 1 ]; then
    # Proves every piece runs: every tool with every mix once (one fixed rate for hot, flat
    # out for the others); the figures mean little.
    STEP_SECS=1 FLAT_SECS=1 PERF_SECS=1
    RATES="20000" PERF_RATES="10000"
    MIX_RATES="" MIX_PERF_RATES=""
    FLAT_HOT=0
else
    STEP_SECS=3 FLAT_SECS=4 PERF_SECS=3 PERF_FLAT_SECS=4
    RATES="25000 50000 100000 150000 200000 250000 300000 350000 400000"
    PERF_RATES="25000 50000 75000 100000 125000"
    MIX_RATES="50000 100000 200000 300000"
    MIX_PERF_RATES="50000 100000"
    FLAT_HOT=1
fi
PERF_FLAT_SECS=${PERF_FLAT_SECS:-$PERF_SECS}
MIXES="gslb nxflood"
# Lines of the query files: the gslb mix's 10% nonexistent names are distinct within the
# file; nxflood's names are all distinct.
GSLB_LINES=100000
NXFLOOD_LINES=1000000
# kxdpgun: one sending thread on CPU 1 (the machine has 2), batches of 32. "Flat out" is a
# rate far above what one thread sends.
KXDPGUN_OPTS=(-F 1 -b 32)
FLAT_RATE=10000000
# The highest offered rate a step may lose before the steps stop (percent).
STEP_STOP_LOSS=1
# Responses per second per client prefix of the -rrl systems.
RRL_RATE=1000

WORK=$(mktemp -d /tmp/xgslb-bench.XXXXXX)
SERVER_PID=""
XDP_PROG_ID=""
# kernel.bpf_stats_enabled before this run, set back on exit (empty: not changed yet).
BPF_STATS_WAS=""
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
    bpf_stats_restore
    stop_server
    srv_xdp_off
    remove_pins
    bash "$HERE/netns.sh" down "$PREFIX" || true
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'log interrupted; exit 130' INT TERM

# The XDP programs' run time: on (1) while the loads run, set back to the previous value on
# exit. The sysctl counts per program run_time_ns and run_cnt (bpftool prog show).
bpf_stats_on() {
    BPF_STATS_WAS=$(sysctl -n kernel.bpf_stats_enabled)
    sysctl -q -w kernel.bpf_stats_enabled=1
}
bpf_stats_restore() {
    [ -n "$BPF_STATS_WAS" ] || return 0
    sysctl -q -w kernel.bpf_stats_enabled="$BPF_STATS_WAS" ||
        log "could not set kernel.bpf_stats_enabled back to $BPF_STATS_WAS"
    BPF_STATS_WAS=""
}

# The generator end runs an XDP_PASS program (veth hands XDP_TX frames only to a peer running
# NAPI) except while kxdpgun runs, which attaches its own and leaves it behind.
gen_pass_on() {
    ip -n "$GEN_NS" link set dev "$GEN_IF" xdp off 2>/dev/null || true
    rm -f "$PEER_PIN"
    gen "$KIT" veth-peer --iface "$GEN_IF" --pin "$PEER_PIN"
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
    # (the [server] one: the [agents] listen is a single address and stays), without its
    # peering (the last sections: the demo's second EDNS is not there).
    sed -e 's|^listen = \[.*|listen = ["198.18.0.2:53"]|' \
        -e "s|^pin_dir = .*|pin_dir = \"$PIN_DIR\"|" \
        -e '/^# --- Several EDNSs/,$d' \
        "$ROOT/config/example.toml" >"$WORK/xgslb/xgslb.toml"
    grep -q "^listen = \[\"198.18.0.2:53\"\]" "$WORK/xgslb/xgslb.toml"
    if grep -q "^\[rrl\]" "$WORK/xgslb/xgslb.toml"; then
        echo "bench-load: example.toml limits response rates already" >&2
        exit 1
    fi
    { cat "$WORK/xgslb/xgslb.toml"; printf '\n[rrl]\nresponses_per_second = %s\nslip = 2\n' "$RRL_RATE"; } \
        >"$WORK/xgslb/xgslb-rrl.toml"
    if grep -q "^\[peering\]" "$WORK/xgslb/xgslb.toml"; then
        echo "bench-load: [peering] left in the bench's config" >&2
        exit 1
    fi
    # Knot and NSD: the same zone with the answer sets and wide IPs written as static
    # records, as many per answer as xgslb gives this generator (www: 1 of its set; cdn: 2;
    # the wide IPs: their pools' records per answer, and NODATA for AAAA where no pool has
    # an IPv6 member). app and failover already have static records in the zone.
    {
        cat "$ROOT/config/example.test.zone"
        echo "; answer sets and wide IPs of example.toml, as static records"
        echo "www      30 IN A    198.18.1.10"
        echo "cdn      60 IN A    198.18.1.20"
        echo "cdn      60 IN A    198.18.2.20"
        echo "cdn      60 IN AAAA 2001:db8:1::20"
        echo "gslb     30 IN A    198.18.1.10"
        echo "gslb     30 IN AAAA 2001:db8:1::10"
        echo "geo      30 IN A    198.18.2.10"
        echo "geo      30 IN AAAA 2001:db8:2::10"
        echo "dyn      10 IN A    198.18.2.40"
        echo "fast     10 IN A    198.18.1.10"
        echo "fast     10 IN AAAA 2001:db8:1::10"
        echo "near     30 IN A    198.18.1.10"
        echo "near     30 IN AAAA 2001:db8:1::10"
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

    write_queries
}

# Query files: dnsperf and kxdpgun read the same "name type" lines, in a loop.
write_queries() {
    echo "www.example.test A" >"$WORK/hot.txt"
    cp "$WORK/hot.txt" "$WORK/flood.txt"
    # gslb: per 20 lines 8 A, 6 AAAA, 3 HTTPS of a name drawn from the wide IPs and answer
    # sets, 2 of a nonexistent name (A or AAAA; a label of 64 random bits and the line
    # number, so distinct), 1 of SOA/NS/MX/TXT of the apex; then shuffled. Random bits come
    # from /dev/urandom (mawk's rand() would do for the draws but not for the labels).
    od -An -v -w8 -tx8 -N $((GSLB_LINES * 8)) /dev/urandom |
        awk -v names="www cdn gslb geo dyn fast app failover near" '
            BEGIN { n = split(names, name, " "); split("SOA NS MX TXT", apex, " ") }
            {
                # Two draws from the 64 random bits: 4 hex digits each (mawk has no strtonum).
                d1 = 0; d2 = 0
                for (i = 1; i <= 4; i++) {
                    d1 = d1 * 16 + index("0123456789abcdef", substr($1, i, 1)) - 1
                    d2 = d2 * 16 + index("0123456789abcdef", substr($1, i + 4, 1)) - 1
                }
                k = NR % 20
                if (k < 8) print name[d1 % n + 1] ".example.test A"
                else if (k < 14) print name[d1 % n + 1] ".example.test AAAA"
                else if (k < 17) print name[d1 % n + 1] ".example.test HTTPS"
                else if (k < 19) printf "x%s%x.example.test %s\n", $1, NR, (d2 % 2 ? "AAAA" : "A")
                else print "example.test " apex[d1 % 4 + 1]
            }' | shuf >"$WORK/gslb.txt"
    # nxflood: every name a different random label directly under the apex (not under the
    # wildcard *.shop nor the delegation lab), A.
    od -An -v -w8 -tx8 -N $((NXFLOOD_LINES * 8)) /dev/urandom |
        awk '{ printf "r%s%x.example.test A\n", $1, NR }' >"$WORK/nxflood.txt"
    local f
    for f in gslb nxflood; do
        [ -s "$WORK/$f.txt" ] || { log "could not write the $f query file"; return 1; }
    done
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
    xgslb-xdp | xgslb-slow | xgslb-xdp-rrl | xgslb-slow-rrl)
        local mode=native config=xgslb.toml
        [ "${sys#xgslb-slow}" = "$sys" ] || mode=off
        [ "${sys%-rrl}" = "$sys" ] || config=xgslb-rrl.toml
        nsenter --net="/run/netns/$SRV_NS" "$BIN_DIR/xgslbd" --config "$WORK/xgslb/$config" --iface "$SRV_IF" \
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
        srv "$KIT" bench-reflector --iface "$SRV_IF" --pin "$REFL_PIN"
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

# xgslb's XDP counters, "answered received" (from xgslbctl stats), or "null null".
xdp_counters() {
    local j a r
    if [ "${CUR_SYS%-rrl}" = xgslb-xdp ] && j=$("$CTL" stats --pin-dir "$PIN_DIR" --json 2>/dev/null); then
        a=$(sed -n 's/.*"answered":\([0-9]*\).*/\1/p' <<<"$j")
        r=$(sed -n 's/.*"received":\([0-9]*\).*/\1/p' <<<"$j")
        echo "${a:-null} ${r:-null}"
    else
        echo "null null"
    fi
}

# What the rate limit of an -rrl system did, "whole slipped dropped" (its path's counters,
# from xgslbctl stats), or "null null null".
rrl_counters() {
    local j w p h l d
    if [ "${CUR_SYS%-rrl}" != "$CUR_SYS" ] && j=$("$CTL" stats --pin-dir "$PIN_DIR" --json 2>/dev/null); then
        field() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" <<<"$j"; }
        if [ "$CUR_SYS" = xgslb-xdp-rrl ]; then
            w=$(field answered) l=$(field rrl_slipped) d=$(field rrl_dropped)
        else
            p=$(field udp_answered_from_plan) h=$(field udp_answered_by_handler)
            l=$(field udp_rrl_slipped) d=$(field udp_rrl_dropped)
            w=""
            [ -n "$p" ] && [ -n "$h" ] && w=$((p + h))
        fi
        echo "${w:-null} ${l:-null} ${d:-null}"
    else
        echo "null null null"
    fi
}

# The id of the XDP program attached to the server veth (xgslb, knotd's, the reflector), or
# nothing.
srv_xdp_prog_id() {
    ip -n "$SRV_NS" -j link show dev "$SRV_IF" 2>/dev/null |
        sed -n 's/.*"xdp":{[^}]*"prog":{"id":\([0-9]*\).*/\1/p'
}

# "run_time_ns run_cnt" of program $1 (kernel.bpf_stats_enabled counts them), or "null null".
# bpftool leaves both out while they are 0.
prog_stats() {
    local j t c
    if [ -n "$1" ] && j=$(bpftool -j prog show id "$1" 2>/dev/null); then
        t=$(sed -n 's/.*"run_time_ns":\([0-9]*\).*/\1/p' <<<"$j")
        c=$(sed -n 's/.*"run_cnt":\([0-9]*\).*/\1/p' <<<"$j")
        echo "${t:-0} ${c:-0}"
    else
        echo "null null"
    fi
}

# delta A0 A1: A1 - A0, or null if either is unknown.
delta() {
    if [ "$1" = null ] || [ "$2" = null ]; then echo null; else echo $(($2 - $1)); fi
}

# measure TOOL MIX RATE SECS: one load, one JSON line.
measure() {
    local tool=$1 mix=$2 rate=$3 secs=$4 out="$WORK/run.out"
    local s0 s1 p0 p1 x0 x1 b0 b1 r0 r1 sent answered dur
    read -r -a s0 <<<"$(stat_ticks)"
    p0=$(server_ticks)
    read -r -a x0 <<<"$(xdp_counters)"
    read -r -a r0 <<<"$(rrl_counters)"
    read -r -a b0 <<<"$(prog_stats "$XDP_PROG_ID")"
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
    read -r -a b1 <<<"$(prog_stats "$XDP_PROG_ID")"
    read -r -a s1 <<<"$(stat_ticks)"
    p1=$(server_ticks)
    read -r -a x1 <<<"$(xdp_counters)"
    read -r -a r1 <<<"$(rrl_counters)"
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
    local xa xr bt bc ns=null
    xa=$(delta "${x0[0]}" "${x1[0]}")
    xr=$(delta "${x0[1]}" "${x1[1]}")
    bt=$(delta "${b0[0]}" "${b1[0]}")
    bc=$(delta "${b0[1]}" "${b1[1]}")
    if [ "$bt" != null ] && [ "$bc" != null ] && [ "$bc" -gt 0 ]; then
        ns=$(awk -v t="$bt" -v c="$bc" 'BEGIN { printf "%.1f", t / c }')
    fi
    local rate_json=$rate
    [ "$rate" = flat ] && rate_json=null
    printf '{"system":"%s","tool":"%s","mix":"%s","rate":%s,"duration_s":%s,"sent":%s,"answered":%s,"cpu_busy_ticks":%s,"cpu_softirq_ticks":%s,"server_proc_ticks":%s,"xdp_answered":%s,"xdp_received":%s,"xdp_prog_runs":%s,"xdp_prog_ns_per_packet":%s,"rrl_whole":%s,"rrl_slipped":%s,"rrl_dropped":%s}\n' \
        "$CUR_SYS" "$tool" "$mix" "$rate_json" "$dur" "$sent" "$answered" \
        $((s1[0] - s0[0])) $((s1[1] - s0[1])) $((p1 - p0)) "$xa" "$xr" "$bc" "$ns" \
        "$(delta "${r0[0]}" "${r1[0]}")" "$(delta "${r0[1]}" "${r1[1]}")" "$(delta "${r0[2]}" "${r1[2]}")" >>"$OUT"
    LAST_LOSS=$(awk -v s="$sent" -v a="$answered" 'BEGIN { print (s > 0 ? (s - a) * 100 / s : 100) }')
    local prog=""
    [ "$ns" = null ] || prog=", XDP program $ns ns/packet"
    log "$CUR_SYS $tool $mix rate=$rate: sent $sent answered $answered in ${dur}s (loss ${LAST_LOSS}%$prog)"
}

# step_rates TOOL MIX SECS RATE...: fixed rates stepped up until a step loses more than
# STEP_STOP_LOSS percent.
step_rates() {
    local tool=$1 mix=$2 secs=$3 r
    shift 3
    for r in "$@"; do
        measure "$tool" "$mix" "$r" "$secs"
        if awk -v l="$LAST_LOSS" -v m="$STEP_STOP_LOSS" 'BEGIN { exit !(l > m) }'; then
            break
        fi
    done
}

run_loads() {
    local mix
    XDP_PROG_ID=$(srv_xdp_prog_id)
    if [ -n "$XDP_PROG_ID" ]; then
        log "$CUR_SYS: XDP program $XDP_PROG_ID ($(bpftool -j prog show id "$XDP_PROG_ID" 2>/dev/null |
            sed -n 's/.*"name":"\([^"]*\)".*/\1/p')) on $SRV_IF"
    fi
    # Sockets first, while the generator end runs the pass program.
    # shellcheck disable=SC2086 # the rate lists split on purpose
    step_rates dnsperf hot "$PERF_SECS" $PERF_RATES
    measure dnsperf hot flat "$PERF_FLAT_SECS"
    for mix in $MIXES; do
        # shellcheck disable=SC2086
        step_rates dnsperf "$mix" "$PERF_SECS" $MIX_PERF_RATES
        measure dnsperf "$mix" flat "$PERF_FLAT_SECS"
    done
    gen_xdp_off
    # shellcheck disable=SC2086
    step_rates kxdpgun hot "$STEP_SECS" $RATES
    [ "$FLAT_HOT" = 1 ] && measure kxdpgun hot flat "$FLAT_SECS"
    for mix in $MIXES; do
        # shellcheck disable=SC2086
        step_rates kxdpgun "$mix" "$STEP_SECS" $MIX_RATES
        measure kxdpgun "$mix" flat "$FLAT_SECS"
    done
    gen_xdp_off
    gen_pass_on
    XDP_PROG_ID=""
}

# An -rrl system's load: the flood, kxdpgun flat out with the hot name from its one address.
run_flood() {
    XDP_PROG_ID=$(srv_xdp_prog_id)
    gen_xdp_off
    measure kxdpgun flood flat "$FLAT_SECS"
    gen_xdp_off
    gen_pass_on
    XDP_PROG_ID=""
}

skip() {
    log "$1: not run: $2"
    printf '{"system":"%s","skipped":"%s"}\n' "$1" "$2" >>"$OUT"
}

# --- main ----------------------------------------------------------------------------------

for tool in kxdpgun dnsperf knotd nsd dig bpftool sysctl od shuf; do
    command -v "$tool" >/dev/null || { log "$tool is missing (cargo xtask setup installs it)"; exit 1; }
done
[ -x "$CTL" ] && [ -x "$KIT" ] && [ -x "$BIN_DIR/xgslbd" ] || { log "no xgslbd/xgslbctl/xgslb-testkit in $BIN_DIR"; exit 1; }

setup_data
bash "$HERE/netns.sh" up "$PREFIX" "$VETH"
bpf_stats_on
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
    if [ "${CUR_SYS%-rrl}" != "$CUR_SYS" ]; then
        run_flood
    else
        run_loads
    fi
    if [ -n "$SERVER_PID" ] && ! kill -0 "$SERVER_PID" 2>/dev/null; then
        log "$CUR_SYS exited during the loads"
    fi
    stop_system
    log "$CUR_SYS stopped"
done
log "done"
