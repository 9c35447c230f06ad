#!/bin/bash
# mpi_train.sh LOWRANK_MPI LOWRANK: data-parallel training over real Open MPI
# ranks on this machine (make test-mpi), on stories260K:
#   - mpirun -np 1, 2 and 4 end with the adapter one process writes with the
#     same grad_accum (4), byte for byte;
#   - a rank killed (kill -9) mid-run ends every rank (bounded in time, none
#     left behind) and --resume continues on another rank count, ending
#     byte for byte as an uninterrupted run;
#   - SIGTERM to mpirun stops every rank after the same step, with a
#     checkpoint at it, and --resume continues;
#   - the default (cgo-free) binary started by mpirun says how to get the
#     MPI one, and only train runs across ranks.
# Needs Open MPI (openmpi-bin); without it, or without the assets, it says
# so and exits 0.
set -euo pipefail
LM=$(realpath "${1:-bin/lowrank-mpi}")
L=$(realpath "${2:-bin/lowrank}")
ASSETS=$(realpath -m "${LOWRANK_ASSETS:-$(dirname "$0")/../../../../shared/assets}")
if ! command -v mpirun >/dev/null 2>&1; then
	echo "SKIP mpi train: mpirun not installed (apt-get install openmpi-bin libopenmpi-dev)"
	exit 0
fi
if [ ! -d "$ASSETS/models/stories260K" ]; then
	echo "SKIP mpi train: no assets at $ASSETS (set LOWRANK_ASSETS)"
	exit 0
fi
T=$(mktemp -d /tmp/lowrank-mpi.XXXXXX)
cleanup() {
	pkill -9 -f "$T/" 2>/dev/null || true
	if [ "${keep:-}" = "" ]; then rm -rf "$T"; fi
}
trap cleanup EXIT
fail() {
	echo "FAIL mpi train: $*"
	keep=1
	echo "(left in $T)"
	exit 1
}
cd "$T"
MPIRUN=(mpirun --oversubscribe --allow-run-as-root --mca btl self,vader)
common=(--model "$ASSETS/models/stories260K/hf" --data "$ASSETS/datasets/wikisql/train.parquet"
	--val "$ASSETS/datasets/wikisql/valid.parquet" --grad-accum 4 --batch-size 2 --max-seq-len 128
	--dropout 0.1 --eval-every 50 --save-every 20 --threads 1 --no-progress)
same() { # same A B WHAT
	cmp -s "$1/adapter/adapter_model.safetensors" "$2/adapter/adapter_model.safetensors" || fail "$3: the adapter differs from one process's"
	cmp -s "$1/best/adapter_model.safetensors" "$2/best/adapter_model.safetensors" || fail "$3: best/ differs from one process's"
}

# References: one process, grad_accum 4.
"$L" train "${common[@]}" --max-steps 60 --out ref60 >ref60.log 2>&1 || fail "reference run: $(tail -3 ref60.log)"
"$L" train "${common[@]}" --max-steps 240 --out ref240 >ref240.log 2>&1 || fail "reference run: $(tail -3 ref240.log)"

for np in 1 2 4; do
	timeout 300 "${MPIRUN[@]}" -np $np "$LM" train "${common[@]}" --max-steps 60 --out np$np >np$np.log 2>&1 ||
		fail "mpirun -np $np: $(tail -5 np$np.log)"
	same ref60 np$np "mpirun -np $np"
	if [ $np -gt 1 ]; then
		grep -q "msg=data-parallel ranks=$np" np$np.log || fail "mpirun -np $np: no data-parallel line in the log"
		grep -q '"comm_bytes"' np$np/metrics.jsonl || fail "mpirun -np $np: metrics.jsonl has no comm_bytes"
		[ "$(grep -c 'msg=step ' np$np.log)" -le 10 ] || fail "mpirun -np $np: ranks other than 0 log steps"
	fi
	echo "ok: mpirun -np $np: adapter and best/ byte for byte one process's with grad_accum 4"
done

# A rank killed mid-run.
"${MPIRUN[@]}" -np 4 "$LM" train "${common[@]}" --max-steps 240 --out killed >killed.log 2>&1 &
mp=$!
for _ in $(seq 1 600); do
	n=$(grep -c '"loss"' killed/metrics.jsonl 2>/dev/null || true)
	[ "${n:-0}" -ge 50 ] && break
	kill -0 $mp 2>/dev/null || fail "the 4-rank run ended early: $(tail -5 killed.log)"
	sleep 0.1
done
victim=""
for p in $(pgrep -P $mp); do
	if tr '\0' '\n' <"/proc/$p/environ" | grep -qx OMPI_COMM_WORLD_RANK=2; then victim=$p; fi
done
[ -n "$victim" ] || fail "no rank 2 among mpirun's children"
kill -9 "$victim"
t0=$SECONDS
rc=0
for _ in $(seq 1 300); do kill -0 $mp 2>/dev/null || break; sleep 0.1; done
kill -0 $mp 2>/dev/null && fail "mpirun still runs 30 s after a rank was killed"
wait $mp || rc=$?
[ $rc -ne 0 ] || fail "mpirun exited 0 after a rank was killed"
grep -q "process rank 2 .*exited on signal 9" killed.log || fail "mpirun did not say which rank died: $(tail -5 killed.log)"
sleep 2
if pgrep -f "$T/killed" >/dev/null || pgrep -f -- "--out killed" >/dev/null; then fail "ranks left running after the kill"; fi
if grep -q "goroutine \|panic" killed.log; then fail "a Go stack trace after the kill"; fi
ls killed/checkpoints/step-* >/dev/null 2>&1 || fail "no checkpoint left by the killed run"
echo "ok: rank 2 killed at step ~50: every rank ended within $((SECONDS - t0)) s, mpirun exit $rc, checkpoints $(ls killed/checkpoints | tr '\n' ' ')"
timeout 300 "${MPIRUN[@]}" -np 2 "$LM" train --resume killed --threads 1 --no-progress >resumed.log 2>&1 ||
	fail "resume on 2 ranks: $(tail -5 resumed.log)"
grep -q "msg=resumed" resumed.log || fail "the resume did not say where from"
same ref240 killed "killed on 4 ranks, resumed on 2"
echo "ok: resumed on 2 ranks: adapter and best/ byte for byte an uninterrupted run's"

# SIGTERM to mpirun (as a scheduler stops a job): every rank stops after one step.
"${MPIRUN[@]}" -np 2 "$LM" train "${common[@]}" --max-steps 240 --out termed >termed.log 2>&1 &
mp=$!
for _ in $(seq 1 600); do
	n=$(grep -c '"loss"' termed/metrics.jsonl 2>/dev/null || true)
	[ "${n:-0}" -ge 30 ] && break
	sleep 0.1
done
kill -TERM $mp
rc=0
wait $mp || rc=$?
[ $rc -ne 0 ] || fail "mpirun exited 0 after SIGTERM"
last=$(grep '"loss"' termed/metrics.jsonl | tail -1 | sed 's/.*"step":\([0-9]*\).*/\1/')
[ -d "termed/checkpoints/step-$last" ] || fail "SIGTERM: no checkpoint at the last step ($last): $(ls termed/checkpoints)"
echo "ok: SIGTERM to mpirun: both ranks stopped after step $last, checkpointed"
timeout 300 "${MPIRUN[@]}" -np 4 "$LM" train --resume termed --threads 1 --no-progress >termed2.log 2>&1 ||
	fail "resume on 4 ranks: $(tail -5 termed2.log)"
same ref240 termed "stopped on 2 ranks, resumed on 4"
echo "ok: resumed on 4 ranks: byte for byte an uninterrupted run's"

# Refusals: the default binary under mpirun, another command, a rank count that does not divide grad_accum.
rc=0
"${MPIRUN[@]}" -np 2 "$L" train "${common[@]}" --max-steps 2 --out nompi >nompi.log 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q "built without MPI.*make build-mpi" nompi.log || fail "the default binary under mpirun: exit $rc: $(head -3 nompi.log)"
[ ! -e nompi/checkpoints ] || fail "the default binary under mpirun trained"
rc=0
"${MPIRUN[@]}" -np 2 "$LM" eval --model "$ASSETS/models/stories260K/hf" --data "$ASSETS/datasets/wikisql/valid.parquet" >eval.log 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q "only lowrank train runs across ranks" eval.log || fail "eval under mpirun: exit $rc: $(head -3 eval.log)"
rc=0
"${MPIRUN[@]}" -np 3 "$LM" train "${common[@]}" --max-steps 2 --out np3 >np3.log 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q "rank count must divide --grad-accum" np3.log || fail "3 ranks, grad_accum 4: exit $rc: $(head -3 np3.log)"
[ "$(grep -c 'rank count must divide' np3.log)" = 1 ] || fail "3 ranks, grad_accum 4: the error is printed more than once"
if grep -q "goroutine \|panic" nompi.log eval.log np3.log; then fail "a Go stack trace in a refusal"; fi
echo "ok: refusals (default binary under mpirun, eval across ranks, 3 ranks for grad_accum 4) are one clear line"
echo "PASS mpi train"
