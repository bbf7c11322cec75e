#!/usr/bin/env bash
# Stop the daemons tests/cluster/slurm_up.sh started in STATE_DIR (default /tmp/fastexit-slurm), and only those.
set -uo pipefail
STATE=${1:-/tmp/fastexit-slurm}
for daemon in slurmd slurmctld; do
    if [ -f "$STATE/$daemon.pid" ]; then
        kill "$(cat "$STATE/$daemon.pid")" 2> /dev/null || true
    fi
done
if [ -f "$STATE/created_default_conf" ]; then
    rm -f "$(cat "$STATE/created_default_conf")" "$STATE/created_default_conf"
fi
