#!/usr/bin/env bash
# Start a single-node SLURM cluster on this machine (Debian's slurm-wlm + munge), for tests and laptops.
#   sudo bash slurm/local_cluster.sh [--install]     # --install: apt-get the packages first
# Idempotent: if this host's node already answers as idle/mixed/allocated, it only reports and exits 0.
# Needs root (it writes /etc/munge, /etc/slurm and starts the daemons). Takes a few seconds.
set -euo pipefail

if [[ "${1:-}" == "--install" ]]; then
  if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
  fi
fi
for cmd in slurmctld slurmd munged sinfo; do
  command -v "$cmd" >/dev/null || { echo "local_cluster: '$cmd' not found: apt-get install slurm-wlm munge (or run with --install)" >&2; exit 1; }
done
[[ $(id -u) -eq 0 ]] || { echo "local_cluster: must run as root (it writes /etc/slurm and starts daemons)" >&2; exit 1; }

host=$(hostname -s)
state=$(timeout 5 sinfo -h -N -n "$host" -o %T 2>/dev/null || true)
if [[ "$state" =~ ^(idle|mixed|allocated) ]]; then
  echo "local_cluster: $host already up ($state)"; exit 0
fi

# --- munge: a key owned by the munge user, daemon started as that user
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [[ ! -s /etc/munge/munge.key ]]; then
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  runuser -u munge -- /usr/sbin/munged --force
  for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
fi

# --- slurm.conf for this host's name, CPUs and memory
cpus=$(nproc)
mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512 ))
install -d /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cat > /etc/slurm/slurm.conf <<CONF
# written by neuroadda slurm/local_cluster.sh
ClusterName=neuroadda-local
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
ReturnToService=2
JobRequeue=1
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=5
Waittime=0
NodeName=$host CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
cat > /etc/slurm/cgroup.conf <<CONF
CgroupAutomount=no
CONF

pkill -x slurmctld 2>/dev/null || true
pkill -x slurmd 2>/dev/null || true
sleep 0.5
slurmctld -c     # -c: start clean (no saved state from an earlier configuration)
slurmd
for _ in $(seq 100); do
  state=$(timeout 5 sinfo -h -N -n "$host" -o %T 2>/dev/null || true)
  [[ "$state" =~ ^(idle|mixed|allocated) ]] && { echo "local_cluster: $host up ($state, $cpus CPUs, $mem_mb MB)"; exit 0; }
  [[ "$state" =~ ^(down|drain) ]] && scontrol update nodename="$host" state=resume 2>/dev/null || true
  sleep 0.2
done
echo "local_cluster: $host did not come up; see /var/log/slurm/slurmctld.log and slurmd.log" >&2
tail -5 /var/log/slurm/slurmd.log >&2 || true
exit 1
