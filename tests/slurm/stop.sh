#!/usr/bin/env bash
# tests/slurm/stop.sh [--rm] [STATE_DIR]
#
# Stop the one-node test cluster that tests/slurm/start.sh started from
# STATE_DIR ($1, else $MIM_SLURM_DIR, else /tmp/mim-slurm), and leave no
# process of it behind: its jobs, slurmstepd, slurmd, slurmctld and munged.
# Other Slurm or munge instances on the machine (other folders, the system's
# /etc/munge one) are not touched: only processes tied to STATE_DIR are.
#
#   --rm   also remove STATE_DIR afterwards (kept by default: logs, jobcomp)
#
# Exit 0 when nothing of the cluster is left running (also when nothing was
# running: safe to run twice), 1 if some process would not die.

# Lists of pids/job ids are meant to be split into words here:
# shellcheck disable=SC2086,SC2116
set -u
PATH="$PATH:/usr/sbin:/sbin"

RM=""
if [ "${1:-}" = --rm ]; then RM=1; shift; fi
DIR=${1:-${MIM_SLURM_DIR:-/tmp/mim-slurm}}
if [ "${2:-}" = --rm ]; then RM=1; fi
case "$DIR" in /*) ;; *) DIR="$PWD/$DIR" ;; esac
DIR=${DIR%/}
CONF="$DIR/slurm.conf"

log() { echo "stop.sh: $*" >&2; }

# pids of processes that belong to this folder:
#  - munged / slurmctld / slurmd whose command line names a path in DIR
#    (start.sh starts them with --key-file=DIR/... and -f DIR/slurm.conf);
#  - slurmstepd (one per job step, detached from slurmd) and slurmscriptd
#    (slurmctld's helper) that has a file in DIR open (their logs are
#    DIR/log/slurm*.log) or whose cwd is in DIR.
ours() {
    local p pid comm cmd f
    for p in /proc/[0-9]*; do
        pid=${p#/proc/}
        # 'read' is a builtin: no fork per process, so a scan takes ~10 ms.
        { read -r comm < "$p/comm"; } 2>/dev/null || continue
        case "$comm" in
            munged|slurmctld|slurmd)
                cmd=$(tr '\0' ' ' < "$p/cmdline" 2>/dev/null) || continue
                case "$cmd" in *"$DIR/"*) echo "$pid" ;; esac ;;
            slurmstepd|slurmscriptd)
                for f in "$p"/fd/* "$p/cwd"; do
                    case "$(readlink "$f" 2>/dev/null)" in
                        "$DIR"/*) echo "$pid"; break ;;
                    esac
                done ;;
        esac
    done
}

# pid and all its descendants, children first (job processes of a slurmstepd).
tree() {
    local kid
    for kid in $(ps -e -o pid=,ppid= | awk -v p="$1" '$2 == p {print $1}'); do
        tree "$kid"
    done
    echo "$1"
}

# signal a list of pids, then wait (bounded) until they are gone.
kill_wait() {  # kill_wait SECONDS SIGNAL PID...
    local secs=$1 sig=$2 pid left
    shift 2
    [ $# -gt 0 ] || return 0
    kill -"$sig" "$@" 2>/dev/null
    for _ in $(seq 1 $((secs * 5))); do
        left=""
        for pid in "$@"; do kill -0 "$pid" 2>/dev/null && left="$left $pid"; done
        [ -z "$left" ] && return 0
        sleep 0.2
    done
    return 1
}

# 1. Cancel all jobs while the controller still answers, then kill what is
#    left of them.  (scancel alone is not enough: Slurm sends SIGTERM and
#    waits KillWait seconds before SIGKILL, and 'scancel --signal=KILL' is
#    treated as a plain cancel, so a job that traps TERM would hold us up.)
pidfile_pid() { cat "$1" 2>/dev/null; }
steps() {  # our slurmstepd pids
    local p c
    for p in $(ours); do
        { read -r c < /proc/"$p"/comm; } 2>/dev/null && [ "$c" = slurmstepd ] && echo "$p"
    done
}
ctld=$(pidfile_pid "$DIR/run/slurmctld.pid")
if [ -r "$CONF" ] && [ -n "$ctld" ] && kill -0 "$ctld" 2>/dev/null; then
    export SLURM_CONF="$CONF"
    jobs=$(timeout 10 squeue -h -o %A 2>/dev/null | sort -u)
    if [ -n "$jobs" ]; then
        log "cancelling jobs: $(echo $jobs)"
        timeout 10 scancel $jobs 2>/dev/null
        # Give well-behaved jobs a moment to end on SIGTERM.
        for _ in 1 2 3 4 5; do [ -z "$(steps)" ] && break; sleep 0.2; done
    fi
fi
# The job processes (descendants of each slurmstepd) get SIGKILL now; the
# slurmstepd processes themselves then exit, or step 3 ends them.  SIGSTOP
# first, so that a job shell cannot fork a new child between our listing and
# the kill; a few rounds catch any that it forked just before.
for _ in 1 2 3 4 5; do
    kids=$(for s in $(steps); do tree "$s" | grep -vx "$s"; done)
    [ -z "$kids" ] && break
    kill -STOP $kids 2>/dev/null
    kill_wait 5 KILL $kids
done

# 2. The daemons by their pid files (slurmd, slurmctld, munged), all at once:
#    each takes a second or two to shut down, no need to queue them.
pids=""
for pf in "$DIR/run/slurmd.pid" "$DIR/run/slurmctld.pid" "$DIR/munge/munged.pid"; do
    pid=$(pidfile_pid "$pf")
    case "$(cat /proc/"$pid"/comm 2>/dev/null)" in
        slurmd|slurmctld|munged) pids="$pids $pid" ;;
    esac
    rm -f "$pf"
done
[ -n "$pids" ] && { kill_wait 10 TERM $pids || kill_wait 5 KILL $pids; }

# 3. Whatever of this folder is still there (a daemon whose pid file was
#    lost, a slurmstepd and its job processes): TERM, then KILL.
left=$(for p in $(ours); do tree "$p"; done)
if [ -n "$left" ]; then
    log "killing leftovers: $(echo $left)"
    kill_wait 5 TERM $left || kill_wait 5 KILL $left
fi

left=$(ours)
if [ -n "$left" ]; then
    log "still running: $(echo $left)"
    exit 1
fi

# 4. Optionally the folder itself (never '/' or an empty name).
if [ -n "$RM" ] && [ -d "$DIR" ] && [ "$DIR" != / ] && [ -n "$DIR" ]; then
    rm -rf -- "$DIR"
    log "removed $DIR"
fi
log "stopped (state folder $DIR)"
exit 0
