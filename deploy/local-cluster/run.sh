#!/usr/bin/env bash
# A multi-host MPI run on one machine: N Linux network namespaces ("hosts") with their own addresses
# and hostnames, joined by veth pairs to a bridge, with `mpirun` started in the first one and OpenMPI's
# remote daemons started in the others through an rsh agent that uses `ip netns exec` instead of ssh.
# Ranks on different hosts talk over real TCP (btl tcp), exactly as on a cluster; only the cables are
# virtual. Everything is torn down on exit, failure, Ctrl-C or SIGTERM.
#
#   deploy/local-cluster/run.sh [--hosts N] [--slots S] [--rate RATE] [-x VAR]... [--mpirun-arg ARG]... -- COMMAND ARGS...
#
#   --hosts N         number of hosts (default 2; addresses are the first N lines of hostfiles/local-cluster)
#   --slots S         ranks per host (default: the slots in hostfiles/local-cluster); -np = N x S
#   --rate RATE       limit every host's link to RATE each way (tc tbf), e.g. 10gbit, 25gbit, 500mbit
#   -x VAR            pass VAR (or VAR=VALUE) to every rank, as mpirun -x does (repeatable);
#                     OPENBLAS_NUM_THREADS is always passed (default 1)
#   --mpirun-arg ARG  one extra argument for mpirun (repeatable), e.g. --mpirun-arg --timeout --mpirun-arg 60
#
# Needs root (or CAP_NET_ADMIN + CAP_SYS_ADMIN), iproute2 (`ip`, and `tc` for --rate), util-linux
# (`unshare`) and OpenMPI. Exits with the command's status (mpirun's), 2 for bad usage, and 77 when
# namespaces cannot be created or (--rate) links cannot be shaped (the tests turn 77 into a skip). Names
# carry this script's PID, so parallel runs do not collide; the addresses exist only inside this run's
# namespaces (no route out, nothing in the root namespace).
set -euo pipefail

usage() { sed -n '8,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
say() { echo "local-cluster: $*" >&2; }
cannot() { say "cannot create network namespaces: $*"; exit 77; }

hosts=2
slots=""
rate=""
exports=()
mpirun_extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --hosts) [ $# -ge 2 ] || usage; hosts=$2; shift 2 ;;
    --slots) [ $# -ge 2 ] || usage; slots=$2; shift 2 ;;
    --rate) [ $# -ge 2 ] || usage; rate=$2; shift 2 ;;
    -x) [ $# -ge 2 ] || usage; exports+=(-x "$2"); shift 2 ;;
    --mpirun-arg) [ $# -ge 2 ] || usage; mpirun_extra+=("$2"); shift 2 ;;
    --) shift; break ;;
    -h|--help) usage ;;
    *) say "unknown option '$1' (the command goes after --)"; usage ;;
  esac
done
[ $# -gt 0 ] || { say "no command given"; usage; }
[[ "$hosts" =~ ^[1-9][0-9]*$ ]] || { say "--hosts needs a positive number, got '$hosts'"; exit 2; }
[ -z "$slots" ] || [[ "$slots" =~ ^[1-9][0-9]*$ ]] || { say "--slots needs a positive number, got '$slots'"; exit 2; }
if [ -n "$rate" ]; then
  [[ "$rate" =~ ^([0-9]+(\.[0-9]+)?)([kmgt]?)bit$ ]] ||
    { say "--rate needs a number of bits per second like 10gbit, 25gbit or 500mbit, got '$rate'"; exit 2; }
  rate_bps=$(awk -v n="${BASH_REMATCH[1]}" -v u="${BASH_REMATCH[3]}" \
    'BEGIN { printf "%.0f", n * (u == "k" ? 1e3 : u == "m" ? 1e6 : u == "g" ? 1e9 : u == "t" ? 1e12 : 1) }')
  [ "$rate_bps" -ge 1000000 ] || { say "--rate must be at least 1mbit, got '$rate'"; exit 2; }
fi

[ "$(id -u)" -eq 0 ] || cannot "not root (needs CAP_NET_ADMIN and CAP_SYS_ADMIN)"
command -v ip >/dev/null || cannot "no 'ip' command (install iproute2)"
command -v unshare >/dev/null || cannot "no 'unshare' command (install util-linux)"
[ -z "$rate" ] || command -v tc >/dev/null || cannot "no 'tc' command for --rate (install iproute2)"
command -v mpirun >/dev/null || { say "no 'mpirun' on PATH (install openmpi-bin)"; exit 2; }

# Addresses and slots of the hosts: the first N entries of the repository's hostfile.
repo=$(cd "$(dirname "$0")/../.." && pwd)
source_hostfile=$repo/hostfiles/local-cluster
mapfile -t entries < <(grep -v '^\s*#' "$source_hostfile" | sed '/^\s*$/d' | head -n "$hosts")
[ "${#entries[@]}" -eq "$hosts" ] || { say "$source_hostfile lists only ${#entries[@]} hosts, asked for $hosts"; exit 2; }
addresses=(); host_slots=()
for entry in "${entries[@]}"; do
  addresses+=("${entry%% *}")
  default_slots=$(sed -n 's/.*slots=\([0-9]*\).*/\1/p' <<<"$entry")
  host_slots+=("${slots:-${default_slots:-1}}")
done
subnet="${addresses[0]%.*}.0/24"

tag="fkp$$"
bridge_ns="$tag-br"
created=()   # namespaces to delete on exit, in creation order
rundir=$(mktemp -d "${TMPDIR:-/tmp}/fkp-local-cluster.$$.XXXXXX")

# True while any of the PIDs is alive (zombies, already dead, do not count).
running() {
  local pid state
  for pid in "$@"; do
    state=$(sed 's/.*) \(.\).*/\1/' "/proc/$pid/stat" 2>/dev/null) || continue
    [ "$state" != Z ] && return 0
  done
  return 1
}

launch_pid=""
cleanup() {
  local status=$?
  set +e
  trap - EXIT INT TERM
  # Ask every process still inside our namespaces (mpirun, orted, ranks) to stop, drop the namespace
  # names at once (the namespaces, their veth ends and the bridge vanish with their last process, so
  # nothing is left behind even if this script is killed next), then give the processes 2 s before
  # SIGKILL. Callers with a timeout (the tests) may SIGKILL this script soon after SIGTERM.
  local ns pids all=""
  for ns in "${created[@]}"; do
    pids=$(ip netns pids "$ns" 2>/dev/null)
    [ -n "$pids" ] && { kill -TERM $pids 2>/dev/null; all="$all $pids"; }
    ip netns del "$ns" 2>/dev/null
  done
  rm -rf "$rundir"
  [ "${#created[@]}" -gt 0 ] && say "removed namespaces ${created[*]}"
  if [ -n "$all" ]; then
    for _ in $(seq 20); do
      running $all || break
      sleep 0.1
    done
    running $all && kill -KILL $all 2>/dev/null
  fi
  # Reap mpirun (our child), so it does not linger as a zombie where PID 1 does not reap.
  [ -n "$launch_pid" ] && wait "$launch_pid" 2>/dev/null
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Every step of the network setup needs CAP_NET_ADMIN (and veth/bridge support): a failure here means
# this machine cannot host the test, not that the command failed.
net() { ip "$@" 2>"$rundir/err" || cannot "ip $*: $(cat "$rundir/err")"; }
[ ! -e "/var/run/netns/$bridge_ns" ] || {
  say "namespace $bridge_ns exists (left by a killed run with this PID?): ip netns del it and retry"; exit 1; }
# The bridge lives in its own namespace, so no link or address ever appears in the root namespace.
net netns add "$bridge_ns"
created+=("$bridge_ns")
net -n "$bridge_ns" link add br0 type bridge
net -n "$bridge_ns" link set br0 up

# --rate: a token bucket (tbf) on both ends of every host's veth pair: eth0's egress is the host's
# sending side, vI's (on the bridge) is what the "switch" sends to the host, so each host gets a
# full-duplex link of RATE each way, as a NIC on a non-blocking switch does. Why these numbers:
# - burst = 200 us at RATE (at least 128 KiB): a bucket smaller than one GSO packet (up to 64 KiB on
#   veth) would make tbf split or drop it, and the bucket must cover the timer's wake-up delay on a busy
#   VM (tens to hundreds of us) or the link runs below RATE; much more would let whole small messages
#   pass at memory speed, so small allreduces would not see the link's serialisation time.
# - limit = 1 ms at RATE, at least 128 KiB of queue: far above the veth's bandwidth-delay product, so
#   TCP keeps the link busy through its loss recovery, and short like a switch port's buffer. Both
#   directions of a TCP connection share each FIFO (this kernel has no fq_codel to give ACKs their own
#   queue), so ACKs wait behind the data going the other way: with an 8 MiB queue a 2-host allreduce
#   at 1gbit ran at half the link (16 MiB in 269 ms, not 134), its RTT inflated to the queue's length.
# The qdiscs belong to the veth devices and vanish with the namespaces in cleanup().
shape() {
  local ns=$1 dev=$2 burst limit
  burst=$(awk -v r="$rate_bps" 'BEGIN { b = r / 8 * 200e-6; printf "%.0f", b < 131072 ? 131072 : b }')
  limit=$(awk -v r="$rate_bps" 'BEGIN { l = r / 8 * 1e-3; printf "%.0f", l < 131072 ? 131072 : l }')
  tc -n "$ns" qdisc replace dev "$dev" root tbf rate "$rate" burst "$burst" limit "$limit" 2>"$rundir/err" || {
    say "cannot shape links: tc qdisc replace dev $dev root tbf rate $rate burst $burst limit $limit: $(cat "$rundir/err")"
    exit 77; }
}

names=()
for i in $(seq 1 "$hosts"); do
  ns="$tag-h$i"; name="node$i"; address=${addresses[$((i - 1))]}
  net netns add "$ns"
  created+=("$ns")
  # One veth pair per host: "eth0" inside the host, "vI" on the bridge.
  net -n "$bridge_ns" link add "v$i" type veth peer name eth0 netns "$ns"
  net -n "$bridge_ns" link set "v$i" master br0 up
  net -n "$ns" link set lo up
  net -n "$ns" addr add "$address/24" dev eth0
  net -n "$ns" link set eth0 up
  if [ -n "$rate" ]; then shape "$ns" eth0; shape "$bridge_ns" "v$i"; fi
  names+=("$name")
  say "host $name address $address slots ${host_slots[$((i - 1))]}${rate:+ link $rate} (netns $ns)"
done

# The hostfile mpirun reads, and the rsh agent it calls as `agent HOST COMMAND...` (as it would call
# ssh) for every host but its own: the agent starts the daemon inside that host's namespace, with the
# host's name set in a private UTS namespace so gethostname() (MPI_Get_processor_name) differs per host.
hostfile=$rundir/hostfile
agent=$rundir/agent.sh
{
  echo '#!/bin/sh'
  echo '# OpenMPI rsh agent for deploy/local-cluster/run.sh: runs a command "on" a namespace host.'
  echo 'while [ $# -gt 0 ] && [ "${1#-}" != "$1" ]; do shift; done  # ssh-style options: none apply'
  echo 'case "$1" in'
  for i in $(seq 1 "$hosts"); do
    echo "  ${addresses[$((i - 1))]}|node$i) ns=$tag-h$i; name=node$i ;;"
  done
  echo '  *) echo "local-cluster agent: unknown host $1" >&2; exit 255 ;;'
  echo 'esac'
  echo 'shift'
  echo 'exec ip netns exec "$ns" unshare --uts -- sh -c '\''hostname "$0" && exec sh -c "$1"'\'' "$name" "$*"'
} >"$agent"
chmod +x "$agent"
ranks=0
for i in $(seq 0 $((hosts - 1))); do
  echo "${addresses[$i]} slots=${host_slots[$i]}" >>"$hostfile"
  ranks=$((ranks + host_slots[i]))
done

root_flag=()
[ "$(id -u)" -eq 0 ] && root_flag=(--allow-run-as-root)
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
say "mpirun -np $ranks on ${names[*]} (subnet $subnet): $*"

ip netns exec "$tag-h1" unshare --uts -- sh -c 'hostname "$0" && exec "$@"' node1 \
  mpirun "${root_flag[@]}" --hostfile "$hostfile" -np "$ranks" \
    --mca plm_rsh_agent "$agent" --mca plm_rsh_no_tree_spawn 1 \
    --mca pml ob1 --mca btl tcp,self \
    --mca btl_tcp_if_include "$subnet" --mca oob_tcp_if_include "$subnet" \
    --bind-to none -x OPENBLAS_NUM_THREADS "${exports[@]}" "${mpirun_extra[@]}" \
    "$@" &
# Waiting on a background job (rather than running mpirun in the foreground) lets the INT/TERM traps
# run at once, so a Ctrl-C or a test timeout still tears everything down.
launch_pid=$!
status=0
wait "$launch_pid" || status=$?
exit "$status"
