#!/usr/bin/env bash
# A one-node SLURM cluster from Debian's slurm-wlm, for testing the workflow's SLURM profile on this machine.
# Usage: tests/cluster/slurm_up.sh [STATE_DIR]   (default /tmp/fastexit-slurm); prints `export SLURM_CONF=...`.
# Installs slurm-wlm if missing (root), writes a minimal slurm.conf (one node with this machine's CPUs and
# memory and one declared GPU, one partition, no accounting: the Snakemake plugin reads job states with
# squeue, so finished jobs are kept for MinJobAge seconds), starts slurmctld (with no state from an earlier
# start) and slurmd as processes it owns, and waits until the node is idle. tests/cluster/slurm_down.sh STATE_DIR stops exactly those processes.
set -euo pipefail
STATE=${1:-/tmp/fastexit-slurm}
command -v slurmctld > /dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm > /dev/null
mkdir -p "$STATE"/{ctld,spool,log}
HOST=$(hostname -s)
CPUS=$(nproc)
MEMORY=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))  # MiB, 1 GiB left to the system
cat > "$STATE/slurm.conf" <<CONF
ClusterName=fastexit
SlurmctldHost=$HOST
SlurmUser=root
AuthType=auth/none
CredType=cred/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
MinJobAge=3600
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
GresTypes=gpu
NodeName=$HOST CPUs=$CPUS RealMemory=$MEMORY Gres=gpu:1 State=UNKNOWN
PartitionName=main Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
# One declared GPU without a device file, so that GPU requests (--gpus=1) are scheduled and can be checked on a
# machine without one; jobs see no CUDA device and run on the CPU.
echo "NodeName=$HOST Name=gpu File=/dev/null" > "$STATE/gres.conf"
export SLURM_CONF=$STATE/slurm.conf
# Snakemake's slurm-jobstep plugin (0.6.1) runs each job's srun with every SLURM_* variable but a few removed,
# SLURM_CONF included, so srun inside a job finds the configuration only at the default path.
DEFAULT=/etc/slurm/slurm.conf
if [ ! -e "$DEFAULT" ]; then
    mkdir -p "$(dirname "$DEFAULT")"
    ln -s "$SLURM_CONF" "$DEFAULT"
    echo "$DEFAULT" > "$STATE/created_default_conf"
elif [ "$(readlink -f "$DEFAULT")" != "$(readlink -f "$SLURM_CONF")" ]; then
    echo "slurm_up: $DEFAULT exists and is another cluster's configuration; jobs' srun would read it" >&2
    exit 1
fi
slurmctld -c -f "$SLURM_CONF"  # -c: no jobs or node states from an earlier start
slurmd -f "$SLURM_CONF"
for _ in $(seq 60); do
    if sinfo -h -o %t 2> /dev/null | grep -qx idle; then
        echo "export SLURM_CONF=$SLURM_CONF"
        exit 0
    fi
    sleep 1
done
echo "slurm_up: the node did not become idle within 60 s; see $STATE/log/" >&2
exit 1
