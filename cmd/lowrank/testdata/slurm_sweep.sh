#!/bin/bash
# slurm_sweep.sh LOWRANK [LOWRANK_MPI]: a 4-task sweep on stories260K through a real Slurm
# on this machine (make test-slurm). Starts munged, slurmctld and slurmd with
# a generated configuration in a temporary folder, submits the script
# `lowrank sweep --emit slurm` writes, requeues task 1 mid-run with
# `scontrol requeue`, waits (bounded), and checks that every task finished
# with an adapter, that the summary lists them all done, and that the
# requeued task's adapter is byte for byte the one an uninterrupted run of
# the same task writes; given the MPI build too, one run over 2 ranks started
# by `srun --mpi=pmix`, byte for byte one process's. Needs root (the daemons run as root here) and
# Debian's slurm-wlm and munge; without them it says so and exits 0.
set -euo pipefail
L=$(realpath "${1:-bin/lowrank}")
LM=""
if [ -n "${2:-}" ] && [ -x "$2" ]; then LM=$(realpath "$2"); fi
ASSETS=$(realpath -m "${LOWRANK_ASSETS:-$(dirname "$0")/../../../../shared/assets}")
for c in slurmctld slurmd munged sbatch scontrol squeue; do
	if ! command -v $c >/dev/null 2>&1; then
		echo "SKIP slurm sweep: $c not installed (apt-get install slurm-wlm munge)"
		exit 0
	fi
done
if [ "$(id -u)" != 0 ]; then
	echo "SKIP slurm sweep: the daemons need root here"
	exit 0
fi
if [ ! -d "$ASSETS/models/stories260K" ]; then
	echo "SKIP slurm sweep: no assets at $ASSETS (set LOWRANK_ASSETS)"
	exit 0
fi
T=$(mktemp -d /tmp/lowrank-slurm.XXXXXX)
export SLURM_CONF=$T/slurm.conf
pids=()
cleanup() {
	scancel --quiet --full "${job:-0}" 2>/dev/null || true
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	sleep 1
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	if [ "${keep:-}" = "" ]; then rm -rf "$T"; fi
}
trap cleanup EXIT
fail() {
	echo "FAIL slurm sweep: $*"
	for f in "$T"/slurmctld.log "$T"/slurmd.log "$T"/work/slurm-*.out; do
		[ -f "$f" ] && { echo "== $f"; tail -30 "$f"; }
	done
	keep=1
	echo "(left in $T)"
	exit 1
}

# munge: its own key and socket in $T.
mkdir -p "$T/munge" "$T/state" "$T/spool" "$T/work"
chmod 700 "$T/munge"
dd if=/dev/urandom of="$T/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$T/munge/munge.key"
munged --force -S "$T/munge/socket" --key-file="$T/munge/munge.key" --pid-file="$T/munge/pid" \
	--log-file="$T/munge/log" --seed-file="$T/munge/seed"
pids+=("$(cat "$T/munge/pid")")

host=$(hostname -s)
cpus=$(nproc)
mem=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2))
cat >"$SLURM_CONF" <<CONF
ClusterName=lowrank-ci
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$T/munge/socket
CredType=cred/munge
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/slurmctld.pid
SlurmdPidFile=$T/slurmd.pid
SlurmctldLogFile=$T/slurmctld.log
SlurmdLogFile=$T/slurmd.log
SlurmctldPort=16817
SlurmdPort=16818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
MpiDefault=none
ReturnToService=2
JobRequeue=1
KillWait=30
InactiveLimit=0
MinJobAge=300
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=ci Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
slurmctld -i
slurmd
sleep 1
pids+=("$(cat "$T/slurmd.pid" 2>/dev/null || true)" "$(cat "$T/slurmctld.pid" 2>/dev/null || true)")
for i in $(seq 60); do
	if sinfo -h -o %T 2>/dev/null | grep -qx idle; then break; fi
	[ "$i" = 60 ] && fail "the node did not come up: $(sinfo 2>&1 | tail -2)"
	sleep 1
done
echo "slurm $(sinfo -V) up: $(sinfo -h -o '%N %c CPUs %T')"

# The sweep: 4 tasks (2 seeds × 2 learning rates), long enough to requeue one mid-run.
cd "$T/work"
sweep() { # sweep OUT
	cat <<YAML
model: $ASSETS/models/stories260K/hf
data: $ASSETS/datasets/wikisql/train.parquet
val: $ASSETS/datasets/wikisql/valid.parquet
out: $1
batch_size: 4
max_seq_len: 128
max_steps: 600
eval_every: 100
save_every: 20
log_every: 10
sweep:
  list:
    - {seed: 1}
    - {seed: 2}
  grid:
    lr: [1e-3, 3e-3]
YAML
}
sweep runs >sweep.yaml
sweep ref >ref.yaml
"$L" sweep sweep.yaml --list
"$L" sweep sweep.yaml --emit slurm --threads 1 --parallel 2 -o job.sh
job=$(sbatch --parsable job.sh)
echo "$(date +%T) submitted array job $job"

# Requeue task 1 once its run is well under way.
for i in $(seq 300); do
	if [ -f runs/task-1/metrics.jsonl ] && grep -q '"step":200,' runs/task-1/metrics.jsonl; then break; fi
	[ "$i" = 300 ] && fail "task 1 did not reach step 200"
	sleep 1
done
scontrol requeue "${job}_1"
echo "$(date +%T) requeued ${job}_1 at step $(tail -1 runs/task-1/metrics.jsonl | sed 's/.*"step":\([0-9]*\).*/\1/')"
# A requeued job waits out a begin time; let it start as soon as it is pending again.
for i in $(seq 60); do
	if squeue -h -j "${job}_1" -o %T 2>/dev/null | grep -q PENDING; then
		scontrol update JobId="${job}_1" StartTime=now 2>/dev/null || true
		break
	fi
	sleep 1
done

for i in $(seq 900); do
	if [ -z "$(squeue -h -j "$job" 2>/dev/null)" ]; then break; fi
	[ "$i" = 900 ] && fail "the array did not finish in 15 minutes: $(squeue -j "$job")"
	sleep 1
done
sacct_state=$(scontrol show job "$job" 2>/dev/null | grep -o 'JobState=[A-Z]*' | sort | uniq -c | tr '\n' ' ' || true)
echo "$(date +%T) array done ($sacct_state)"
grep -h "already complete\|resum" slurm-*_1.out | head -3 || true
grep -q "resum" slurm-*_1.out || fail "task 1's log does not show a resume"

"$L" sweep sweep.yaml --summary
"$L" sweep sweep.yaml --summary --json >summary.json
python3 - <<'PY' || fail "the summary does not list 4 done tasks with adapters"
import json
s = json.load(open("summary.json"))
t = s["tasks"]
assert len(t) == 4 and all(x["state"] == "done" and x["adapter"] and x["steps"] == 600 for x in t), t
PY
for i in 0 1 2 3; do
	[ -f runs/task-$i/adapter/adapter_model.safetensors ] || fail "task $i has no adapter"
done

# The requeued task against an uninterrupted run of the same settings.
"$L" train --config ref.yaml --task-index 1 --threads 1 --no-progress >/dev/null 2>&1 || fail "the reference run failed"
cmp runs/task-1/adapter/adapter_model.safetensors ref/task-1/adapter/adapter_model.safetensors ||
	fail "the requeued task's adapter differs from an uninterrupted run's"
echo "PASS slurm sweep: 4 tasks done through sbatch; task 1 requeued mid-run and bitwise equal to an uninterrupted run"

# One run over 2 ranks that srun starts (PMIx), with the MPI build when given.
if [ -z "$LM" ]; then
	echo "SKIP slurm srun: no MPI build given (make build-mpi; slurm_sweep.sh LOWRANK LOWRANK_MPI)"
	exit 0
fi
if ! srun --mpi=list 2>&1 | grep -q pmix; then
	echo "SKIP slurm srun: this Slurm has no PMIx plugin"
	exit 0
fi
dp=(--model "$ASSETS/models/stories260K/hf" --data "$ASSETS/datasets/wikisql/train.parquet" --grad-accum 4
	--batch-size 2 --max-seq-len 128 --max-steps 40 --save-every 20 --threads 1 --no-progress)
job=$(sbatch --parsable -n 2 --cpus-per-task=1 -o srun.out --wrap "srun --mpi=pmix $LM train ${dp[*]} --out srun-run")
for i in $(seq 300); do
	if [ -z "$(squeue -h -j "$job" 2>/dev/null)" ]; then break; fi
	[ "$i" = 300 ] && fail "the srun job did not finish in 5 minutes"
	sleep 1
done
grep -q "msg=data-parallel ranks=2" srun.out || fail "srun --mpi=pmix did not start one run over 2 ranks: $(tail -5 srun.out)"
"$L" train "${dp[@]}" --out srun-ref >/dev/null 2>&1 || fail "the one-process reference run failed"
cmp srun-run/adapter/adapter_model.safetensors srun-ref/adapter/adapter_model.safetensors ||
	fail "the 2-rank srun run's adapter differs from one process's with the same grad_accum"
echo "PASS slurm srun: 2 ranks started by srun --mpi=pmix, adapter byte for byte one process's"
