#!/usr/bin/env bash
# Two network namespaces joined by a veth pair, for the demo and end-to-end runs.
#
#   netns.sh up   PREFIX VETH   creates PREFIX-srv (VETH-s0: 198.18.0.2/24, 2001:db8::2/64)
#                               and PREFIX-cli (VETH-c0: 198.18.0.1/24, 2001:db8::1/64, and
#                               a second LDNS address in another demo region: 198.18.0.130/24,
#                               2001:db8::8000:0:0:1/64, for `dig -b`)
#   netns.sh down PREFIX        removes both namespaces (their veth ends go with them)
#
# Idempotent: `up` first removes what an earlier run left. Bounded: no waiting loops (IPv6
# addresses skip duplicate address detection). Only benchmarking (198.18.0.0/15) and
# documentation (2001:db8::/32) addresses are used. VETH must be at most 12 characters
# (interface names are limited to 15).
#
# XDP_TX on VETH-s0 reaches the client only if VETH-c0 runs NAPI, which an XDP program on it
# turns on: `xgslb-testkit veth-peer` attaches one (cargo xtask run does).
set -euo pipefail

usage() {
    echo "usage: $0 up PREFIX VETH | down PREFIX" >&2
    exit 2
}

down() {
    local ns
    for ns in "$1-srv" "$1-cli"; do
        if [ -e "/run/netns/$ns" ]; then
            ip netns del "$ns"
        fi
    done
}

up() {
    local srv="$1-srv" cli="$1-cli" s0="$2-s0" c0="$2-c0"
    [ "${#s0}" -le 15 ] || { echo "veth name $s0 is too long" >&2; exit 2; }
    down "$1"
    ip netns add "$srv"
    ip netns add "$cli"
    ip link add "$s0" netns "$srv" type veth peer name "$c0" netns "$cli"
    ip -n "$srv" link set lo up
    ip -n "$cli" link set lo up
    ip -n "$srv" addr add 198.18.0.2/24 dev "$s0"
    ip -n "$cli" addr add 198.18.0.1/24 dev "$c0"
    ip -n "$srv" addr add 2001:db8::2/64 dev "$s0" nodad
    ip -n "$cli" addr add 2001:db8::1/64 dev "$c0" nodad
    ip -n "$cli" addr add 198.18.0.130/24 dev "$c0"
    ip -n "$cli" addr add 2001:db8::8000:0:0:1/64 dev "$c0" nodad
    # Partial checksums from tx offload would reach the XDP program unfinished, and its
    # replies would carry them wrong: have the client's kernel compute full checksums.
    ip netns exec "$cli" ethtool -K "$c0" tx off >/dev/null
    ip -n "$srv" link set "$s0" up
    ip -n "$cli" link set "$c0" up
}

case "${1:-}" in
up) [ $# -eq 3 ] || usage; up "$2" "$3" ;;
down) [ $# -eq 2 ] || usage; down "$2" ;;
*) usage ;;
esac
