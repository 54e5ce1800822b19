#!/usr/bin/env bash
# Two hosts on one machine: makes two network namespaces joined by a veth pair, and runs one
# MPI rank in each over Open MPI's TCP transport (no shared memory: `--mca btl tcp,self`).
# Traffic stays inside the two namespaces: the veth pair is created inside them and its
# addresses (10.213.0.1 and .2, or $DP_NET.1 and .2) exist only there. Each side also gets its
# own UTS namespace and host name (node-a, node-b), so Open MPI sees two nodes. mpirun runs in
# the first namespace and starts the second rank's daemon through `ip netns exec` (the
# launcher, plm_rsh_agent, that would otherwise be ssh). Everything is removed on exit.
# Needs root (ip netns, unshare) and Scripts/setup.sh's Open MPI; exits 77 (and says why) where
# network namespaces cannot be made, e.g. in a container without CAP_SYS_ADMIN.
#   Scripts/two_namespaces.sh                        .build/debug/mpi-selftest collectives
#   Scripts/two_namespaces.sh PROGRAM [ARGUMENTS]    any program, e.g. densenet train ...
set -euo pipefail

case "${1:-}" in -h|--help) sed -n '2,12p' "$0"; exit 0 ;; esac
if [ "$(id -u)" -ne 0 ]; then echo "two_namespaces.sh: needs root (ip netns, unshare); try sudo" >&2; exit 77; fi
for tool in ip unshare mpirun; do
    command -v "$tool" >/dev/null 2>&1 || { echo "two_namespaces.sh: $tool not found; run Scripts/setup.sh" >&2; exit 1; }
done
if [ $# -eq 0 ]; then
    root="$(cd "$(dirname "$0")/.." && pwd)"
    set -- "$root/.build/debug/mpi-selftest" collectives
    [ -x "$1" ] || { echo "two_namespaces.sh: $1 missing; run swift build first" >&2; exit 1; }
fi
program="$(command -v "$1" || true)"
[ -n "$program" ] || { echo "two_namespaces.sh: $1: no such program" >&2; exit 1; }
program="$(realpath "$program")"
shift

net="${DP_NET:-10.213.0}"
tag="dp$$"
ns_a="$tag-a" ns_b="$tag-b"
work="$(mktemp -d)"
cleanup() {
    ip netns del "$ns_a" 2>/dev/null || true
    ip netns del "$ns_b" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# The veth pair is created inside the first namespace with its peer in the second.
if ! ip netns add "$ns_a" 2>"$work/error"; then
    echo "two_namespaces.sh: cannot make a network namespace ($(cat "$work/error"));" \
         "this needs CAP_SYS_ADMIN (a privileged container or a real machine)" >&2
    exit 77
fi
ip netns add "$ns_b"
ip -n "$ns_a" link add veth-a type veth peer name veth-b netns "$ns_b"
ip -n "$ns_a" addr add "$net.1/24" dev veth-a
ip -n "$ns_b" addr add "$net.2/24" dev veth-b
for ns in "$ns_a" "$ns_b"; do ip -n "$ns" link set lo up; done
ip -n "$ns_a" link set veth-a up
ip -n "$ns_b" link set veth-b up

# The launcher mpirun calls as `agent HOST COMMAND...` for the remote node: the command runs in
# that node's namespaces under its host name.
cat > "$work/agent" <<AGENT
#!/bin/sh
host="\$1"; shift
case "\$host" in
    $net.2) ns="$ns_b"; name=node-b ;;
    *) echo "two_namespaces.sh agent: unknown host \$host" >&2; exit 1 ;;
esac
exec ip netns exec "\$ns" unshare --uts /bin/sh -c 'hostname "\$0"; exec /bin/sh -c "\$*"' "\$name" "\$@"
AGENT
chmod +x "$work/agent"

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
echo "two_namespaces.sh: rank 0 on node-a ($ns_a, $net.1), rank 1 on node-b ($ns_b, $net.2), TCP only" >&2
status=0
ip netns exec "$ns_a" unshare --uts /bin/sh -c 'hostname node-a; exec "$@"' sh \
    mpirun -np 2 --host "$net.1:1,$net.2:1" --map-by node \
        --mca plm_rsh_agent "$work/agent" \
        --mca btl tcp,self --mca btl_tcp_if_include "$net.0/24" --mca oob_tcp_if_include "$net.0/24" \
        "$program" "$@" || status=$?

# What crossed the veth pair (the only link between the two ranks).
ip -n "$ns_a" -s link show veth-a | sed -n '3,6p' | sed 's/^/two_namespaces.sh: veth-a /' >&2
exit $status
