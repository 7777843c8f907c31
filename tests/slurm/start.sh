#!/usr/bin/env bash
# tests/slurm/start.sh [STATE_DIR]
#
# Start a real one-node Slurm cluster (munged + slurmctld + slurmd, all as
# root) on this machine, for tests.  Everything the cluster writes lives under
# one state folder: $1, else $MIM_SLURM_DIR, else /tmp/mim-slurm.
#
# stdout: exactly one line the caller can eval:
#     export SLURM_CONF=/tmp/mim-slurm/slurm.conf
# e.g.  eval "$(tests/slurm/start.sh)" || exit   # 77 means "skip"
# All progress and error messages go to stderr.
#
# Exit codes: 0  cluster up, node idle (or it already was: safe to run twice)
#             77 could not install/start it; the reason and log tails are on
#                stderr, and nothing it started is left running (a test can
#                skip with that reason)
#
# Tunables (environment):
#   MIM_SLURM_TIMEOUT    seconds to wait for the node to become idle (60)
#   MIM_SLURMCTLD_PORT   slurmctld port (6817)
#   MIM_SLURMD_PORT      slurmd port (6818)
#   MIM_SLURM_KILLWAIT   seconds between SIGTERM and SIGKILL on cancel (10)
#   MIM_SLURM_CRED_EXPIRE  credential lifetime = requeue hold-off, s (10)
#
# See tests/slurm/README.md for what was measured with this cluster.

set -u
# The daemons live in /usr/sbin, which a test runner's PATH may lack.
PATH="$PATH:/usr/sbin:/sbin"

HERE=$(cd "$(dirname "$0")" && pwd)
DIR=${1:-${MIM_SLURM_DIR:-/tmp/mim-slurm}}
# Absolute path: the daemons chdir, and stop.sh matches processes by it.
case "$DIR" in /*) ;; *) DIR="$PWD/$DIR" ;; esac
DIR=${DIR%/}
# slurm.conf has no quoting for paths: refuse blanks rather than misparse.
case "$DIR" in *[[:space:]]*) echo "start.sh: FAILED: state folder '$DIR' has blanks" >&2; exit 77 ;; esac
TIMEOUT=${MIM_SLURM_TIMEOUT:-60}
CTLD_PORT=${MIM_SLURMCTLD_PORT:-6817}
SLURMD_PORT=${MIM_SLURMD_PORT:-6818}
KILLWAIT=${MIM_SLURM_KILLWAIT:-10}
CRED_EXPIRE=${MIM_SLURM_CRED_EXPIRE:-10}
CONF="$DIR/slurm.conf"
MUNGE_SOCK="$DIR/munge/munge.socket.2"
NODE=$(hostname -s)

log() { echo "start.sh: $*" >&2; }

# Print why, the tail of every log we have, stop what we started, exit 77.
fail() {
    log "FAILED: $*"
    for f in "$DIR"/log/*.log "$DIR"/log/*.out "$DIR"/munge/munged.log; do
        [ -s "$f" ] || continue
        echo "----- tail $f -----" >&2
        tail -n 20 "$f" >&2
    done
    bash "$HERE/stop.sh" "$DIR" >&2 2>&1 || true
    exit 77
}

[ "$(id -u)" = 0 ] || { log "FAILED: must run as root (slurmd and SlurmUser=root)"; exit 77; }

# ---------------------------------------------------------------- install --
# Only the packages that are missing; `apt-get update` only if one is.
# slurm-wlm is just a metapackage of these three, so we name them directly.
PKGS="munge slurmctld slurmd slurm-client"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
        || missing="$missing $p"
done
if [ -n "$missing" ]; then
    log "installing:$missing"
    # The packages' maintainer scripts would start the system-wide munge
    # (init script) with /etc/munge; forbid service starts during the install
    # with a policy-rc.d, unless the machine already has one (Docker images do).
    made_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
        # ...and never leave it behind, even if we are interrupted.
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
        trap 'exit 77' INT TERM
    fi
    aptlog=$(mktemp)
    ok=1
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$aptlog" 2>&1 || ok=""
    # shellcheck disable=SC2086  # $missing is a list of package names
    [ -n "$ok" ] && { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends $missing >>"$aptlog" 2>&1 || ok=""; }
    if [ -n "$made_policy" ]; then
        rm -f /usr/sbin/policy-rc.d; trap - EXIT INT TERM
    fi
    if [ -z "$ok" ]; then
        tail -n 20 "$aptlog" >&2; rm -f "$aptlog"
        log "FAILED: apt-get install$missing"; exit 77
    fi
    rm -f "$aptlog"
fi
for b in munged munge unmunge slurmctld slurmd sinfo sbatch scontrol; do
    command -v "$b" >/dev/null 2>&1 || { log "FAILED: $b not found after install"; exit 77; }
done

export SLURM_CONF="$CONF"

# ------------------------------------------------------ already running? --
# Run twice: if our daemons are alive and the node answers, do nothing.
alive() {  # alive PIDFILE NAME: the pid in PIDFILE is a live NAME process
    local pid
    pid=$(cat "$1" 2>/dev/null) || return 1
    [ -n "$pid" ] && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = "$2" ]
}
node_state() { timeout 10 sinfo -h -n "$NODE" -o %T 2>/dev/null | head -n 1; }
if alive "$DIR/munge/munged.pid" munged && alive "$DIR/run/slurmctld.pid" slurmctld \
   && alive "$DIR/run/slurmd.pid" slurmd; then
    case "$(node_state)" in
        idle|mixed|allocated|completing)
            log "already running in $DIR"
            echo "export SLURM_CONF=$CONF"
            exit 0 ;;
    esac
fi
# Anything half-started from an earlier run in this folder goes first.
bash "$HERE/stop.sh" "$DIR" >/dev/null 2>&1 || true

# Another Slurm (another folder, or the system's) on our ports would make
# ours fail to bind, or worse, answer our client commands: say so plainly.
for port in "$CTLD_PORT" "$SLURMD_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        log "FAILED: port $port is already in use (another slurmctld/slurmd?);" \
            "stop it, or set MIM_SLURMCTLD_PORT / MIM_SLURMD_PORT"
        exit 77
    fi
done

# ---------------------------------------------------------------- layout --
t0=$(date +%s)
mkdir -p "$DIR" "$DIR/munge" "$DIR/state" "$DIR/spool" "$DIR/log" "$DIR/run" \
    || { log "FAILED: cannot create $DIR"; exit 77; }
# munged refuses key/socket dirs that others can write to, and wants the
# socket dir searchable by all (0755).
chmod 755 "$DIR" "$DIR/munge"
# Fresh controller state each start: no jobs or node states from a past run.
rm -rf "${DIR:?}/state/"* "${DIR:?}/spool/"*
rm -f "$DIR"/log/*

# munge key: 1024 random bytes, root-only (munged checks the mode).
if [ ! -s "$DIR/munge/munge.key" ]; then
    dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1 count=1024 2>/dev/null \
        || fail "cannot write the munge key"
fi
chmod 400 "$DIR/munge/munge.key"

# Node size: real CPU count; memory from /proc/meminfo less a margin
# (10%, at least 256 MB) so slurmd's own measure is never below it.
CPUS=$(nproc)
mem_mb=$(awk '/^MemTotal:/ {print int($2/1024)}' /proc/meminfo)
margin=$((mem_mb / 10)); [ "$margin" -lt 256 ] && margin=256
REALMEM=$((mem_mb - margin)); [ "$REALMEM" -lt 1 ] && REALMEM=1

# ------------------------------------------------------------ slurm.conf --
cat > "$CONF" <<EOF
# Generated by tests/slurm/start.sh: one-node test cluster, state in $DIR
ClusterName=mim
# The node name is the short hostname; all traffic goes over loopback.
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root

# munge, with the private munged of this folder (not /run/munge).
AuthType=auth/munge
# cred_expire: job credential lifetime, which is also how long a requeued
# job must wait before it may start again (default 120 s; 10 s for tests).
AuthInfo=socket=$MUNGE_SOCK,cred_expire=$CRED_EXPIRE
CredType=cred/munge

# All state, spool, logs and pids under the state folder.
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info

# No cgroups, no accounting daemon (so no slurmdbd: sacct does not work;
# use 'scontrol show job ID', kept MinJobAge s after the end, or the
# jobcomp file below, one line per finished job).
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.txt
MinJobAge=600
MpiDefault=none
# No mail on this machine; silences "Configured MailProg is invalid".
MailProg=/bin/true

# Scheduling: whole CPUs are the consumable; memory is not enforced.
SchedulerType=sched/backfill
# Main scheduling pass and backfill pass every 5 s (defaults 60 and 30): a
# requeued job, once eligible again, starts within seconds, not a minute.
SchedulerParameters=sched_interval=5,bf_interval=5
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
# Trust this file's node size even if slurmd measures a bit differently.
SlurmdParameters=config_overrides
# A node that was down comes back by itself when slurmd registers.
ReturnToService=2

# Requeue (scontrol requeue, sbatch --requeue) and signals before the limit.
JobRequeue=1
KillWait=$KILLWAIT
OverTimeLimit=0
InactiveLimit=0
# Reject at submit time a job whose --time exceeds its partition's MaxTime
# (otherwise it would sit PENDING with reason PartitionTimeLimit).
EnforcePartLimits=ALL

NodeName=$NODE NodeHostname=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$REALMEM State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=short Nodes=$NODE MaxTime=00:05:00 State=UP
EOF

# ---------------------------------------------------------------- daemons --
# All three fork into the background themselves; their stdio goes to files so
# a caller reading our stdout through a pipe is never held open by them.
munged --key-file="$DIR/munge/munge.key" --socket="$MUNGE_SOCK" \
    --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/munge/munged.log" \
    --seed-file="$DIR/munge/munged.seed" \
    </dev/null >"$DIR/log/munged.out" 2>&1 || fail "munged did not start"
ok=""
for _ in $(seq 1 50); do
    if munge -n -S "$MUNGE_SOCK" 2>/dev/null | unmunge -S "$MUNGE_SOCK" >/dev/null 2>&1; then
        ok=1; break
    fi
    sleep 0.2
done
[ -n "$ok" ] || fail "munged does not answer on $MUNGE_SOCK"

# -c: start with clean job state (the folder's state/ was emptied anyway).
slurmctld -c -f "$CONF" </dev/null >"$DIR/log/slurmctld.out" 2>&1 \
    || fail "slurmctld did not start"
slurmd -N "$NODE" -f "$CONF" </dev/null >"$DIR/log/slurmd.out" 2>&1 \
    || fail "slurmd did not start"

# ------------------------------------------------------- wait for idle ----
state=""
deadline=$(( $(date +%s) + TIMEOUT ))
while [ "$(date +%s)" -lt "$deadline" ]; do
    state=$(node_state)
    [ "$state" = idle ] && break
    alive "$DIR/run/slurmctld.pid" slurmctld || { sleep 1; alive "$DIR/run/slurmctld.pid" slurmctld \
        || fail "slurmctld exited"; }
    alive "$DIR/run/slurmd.pid" slurmd || { sleep 1; alive "$DIR/run/slurmd.pid" slurmd \
        || fail "slurmd exited"; }
    sleep 0.5
done
[ "$state" = idle ] || fail "node $NODE not idle after ${TIMEOUT}s (state: '${state:-no answer}')"

log "up in $(( $(date +%s) - t0 ))s: node $NODE ($CPUS CPUs, ${REALMEM} MB), state in $DIR"
echo "export SLURM_CONF=$CONF"
exit 0
