#!/usr/bin/env bash
# A real SLURM on this machine for the fleet tests: munge, one slurmctld and several slurmd
# (`slurmd -N nX`, one per fake node on its own port), all on localhost, sharing this machine's
# filesystem as cluster nodes share storage.
#
#   .ci/slurm-up.sh            start (idempotent); the last line printed is `SLURM_CONF=<file>`
#   .ci/slurm-up.sh --down     stop the daemons it started (by their pid files, never by name)
#   .ci/slurm-up.sh --status   exit 0 when the cluster answers, 1 when not
#
# Environment: CRYOBENCH_SLURM_DIR (default /tmp/cryobench-slurm: config, state, logs, pid files),
# CRYOBENCH_SLURM_NODES (default 4: nodes n1..nN), CRYOBENCH_SLURM_PORT (default 16817: the
# controller's port; node i listens on PORT+100+i). Needs root and Debian's slurm-wlm and munge
# packages (`apt-get install -y slurm-wlm munge`); says why and exits 2 when it cannot start.
set -euo pipefail

dir="${CRYOBENCH_SLURM_DIR:-/tmp/cryobench-slurm}"
nodes="${CRYOBENCH_SLURM_NODES:-4}"
port="${CRYOBENCH_SLURM_PORT:-16817}"
conf="$dir/slurm.conf"
export SLURM_CONF="$conf"

say() { echo "slurm-up: $*" >&2; }

alive() {  # alive PIDFILE: the process in the pid file runs
    [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

answers() {  # the controller answers and every node is up (idle, allocated or mixed)
    alive "$dir/slurmctld.pid" || return 1
    local states
    states="$(timeout 3 sinfo -h -N -o '%N %t' 2>/dev/null)" || return 1
    [ "$(echo "$states" | grep -cE ' (idle|alloc|mix)$')" -ge "$nodes" ]
}

stop_slurm() {
    local pidfile pid
    for pidfile in "$dir"/slurmd.*.pid "$dir/slurmctld.pid"; do
        [ -e "$pidfile" ] || continue
        if alive "$pidfile"; then
            pid="$(cat "$pidfile")"
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true  # a slurmd still busy after 10 s
        fi
        rm -f "$pidfile"
    done
}

stop() {
    stop_slurm
    if [ -s "$dir/munged.pid" ] && alive "$dir/munged.pid"; then
        kill "$(cat "$dir/munged.pid")" 2>/dev/null || true
    fi
    rm -f "$dir/munged.pid"
    say "stopped"
}

case "${1:-}" in
    --down) stop; exit 0 ;;
    --status) answers && exit 0 || exit 1 ;;
    "") ;;
    *) say "unknown argument $1"; exit 2 ;;
esac

if answers; then
    say "already up: $nodes node(s)"
    echo "SLURM_CONF=$conf"
    exit 0
fi
[ "$(id -u)" = 0 ] || { say "needs root (slurmd runs jobs as their users)"; exit 2; }
for cmd in munged munge slurmctld slurmd sinfo scontrol sbatch squeue; do
    command -v "$cmd" >/dev/null 2>&1 || { say "$cmd not found: apt-get install -y slurm-wlm munge"; exit 2; }
done
[ -s /etc/munge/munge.key ] || { say "/etc/munge/munge.key missing (reinstall munge)"; exit 2; }

mkdir -p "$dir/state"
# munge refuses to run as root; it runs as its own user, with its socket in /run/munge.
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    su -s /bin/sh munge -c "/usr/sbin/munged --pid-file=/run/munge/cryobench-munged.pid"
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
    cp /run/munge/cryobench-munged.pid "$dir/munged.pid" 2>/dev/null || true
fi
munge -n | unmunge >/dev/null || { say "munged does not answer"; exit 2; }

# slurmd reads cgroup.conf even with proctrack/linuxproc; 22.05 refuses cgroup/v2 on a hybrid
# (v1 controllers + unified) mount, so the plugin follows what /sys/fs/cgroup is.
if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then cgroup=cgroup/v2; else cgroup=cgroup/v1; fi
cpus="$(nproc)"
cat > "$conf.new" <<EOF
ClusterName=cryobenchci
SlurmctldHost=localhost
SlurmctldPort=$port
AuthType=auth/munge
SlurmUser=root
SlurmdUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool.%n
SlurmdPidFile=$dir/slurmd.%n.pid
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdLogFile=$dir/slurmd.%n.log
SlurmctldLogFile=$dir/slurmctld.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=3600
NodeName=n[1-$nodes] NodeHostname=localhost NodeAddr=127.0.0.1 Port=[$((port + 101))-$((port + 100 + nodes))] CPUs=$cpus RealMemory=1000 State=UNKNOWN
PartitionName=ci Nodes=n[1-$nodes] Default=YES MaxTime=INFINITE State=UP
EOF
mv "$conf.new" "$conf"
echo "CgroupPlugin=$cgroup" > "$dir/cgroup.conf"

stop_slurm  # half-started leftovers of an earlier try
alive "$dir/slurmctld.pid" || slurmctld -c -f "$conf"
for i in $(seq "$nodes"); do
    mkdir -p "$dir/spool.n$i"
    alive "$dir/slurmd.n$i.pid" || slurmd -f "$conf" -N "n$i"
done
deadline=$((SECONDS + 30))
while [ "$SECONDS" -lt "$deadline" ]; do
    if answers; then
        say "up: $nodes node(s), partition ci ($dir)"
        echo "SLURM_CONF=$conf"
        exit 0
    fi
    sleep 0.2
done
# Nodes left DOWN by an earlier session's `scontrol update state=down` come back on request.
scontrol update nodename="n[1-$nodes]" state=resume >/dev/null 2>&1 || true
deadline=$((SECONDS + 15))
while [ "$SECONDS" -lt "$deadline" ]; do
    if answers; then echo "SLURM_CONF=$conf"; exit 0; fi
    sleep 0.2
done
say "the cluster did not come up within 45 s; see $dir/slurmctld.log and $dir/slurmd.n*.log"
sinfo >&2 || true
exit 2
