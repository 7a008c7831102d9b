# Sourced by scripts that need a network namespace of their own (bench/scan.sh,
# bench/resolver.sh, scripts/postfix-test.sh): loopback up, and `nameserver 127.0.0.1` as the
# /etc/resolv.conf of what runs inside (where a lab's DNS listens on 127.0.0.1:53). At exit its
# processes are killed, it is removed, and so are the paths given.
#
#   source scripts/netns.sh
#   netns_start mtasts-x-$$ "$work"     # then: ip netns exec mtasts-x-$$ CMD &

netns_start() {
    NETNS=$1
    shift
    NETNS_REMOVE=("$@")
    trap netns_stop EXIT
    ip netns add "$NETNS"
    ip netns exec "$NETNS" ip link set lo up
    mkdir -p "/etc/netns/$NETNS"
    echo "nameserver 127.0.0.1" > "/etc/netns/$NETNS/resolv.conf"
}

netns_stop() {
    local pids
    pids=$(ip netns pids "$NETNS" 2>/dev/null || true)
    [ -n "$pids" ] && kill $pids 2>/dev/null || true
    sleep 0.2
    ip netns del "$NETNS" 2>/dev/null || true
    rm -rf "/etc/netns/$NETNS" "${NETNS_REMOVE[@]}"
}
