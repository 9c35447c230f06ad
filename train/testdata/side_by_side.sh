#!/bin/bash
# side_by_side.sh [LOWRANK] [ROUNDS]: the README's training-throughput table.
# Alternates PyTorch 1.13 (torch_lora_bench.py: fp32, and bf16 autocast) and
# `lowrank bench train` (f32 and bf16 compute) on each preset and thread
# count, ROUNDS times, printing tokens/s and peak RSS per run; take medians
# per cell. PyTorch runs with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset
# (this machine sets them, selecting OpenBLAS's slower Haswell kernel).
set -u
L=${1:-bin/lowrank}
ROUNDS=${2:-3}
cd "$(dirname "$0")/../.."
PT="env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 train/testdata/torch_lora_bench.py"
lr() { # tokens/s and peak MiB of one lowrank run ("refused" where this CPU has no such path: bf16 without AVX512_BF16 or AMX)
	local out
	if ! out=$("$L" bench train "$@" --json 2>/dev/null); then
		echo refused
		return
	fi
	echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(round(d["tokens_per_second"]), d["peak_rss_bytes"]>>20, "MiB")'
}
for round in $(seq "$ROUNDS"); do
	echo "== round $round $(date +%T)"
	for th in 1 2; do
		echo "pt smollm2 t$th: $($PT --preset smollm2-135m --threads "$th" 2>&1 | tail -1)"
		echo "pt smollm2 t$th bf16: $($PT --preset smollm2-135m --threads "$th" --bf16 2>&1 | tail -1)"
		echo "lr smollm2 t$th q8_0: $(lr --preset smollm2-135m --threads "$th" --compute-dtype f32)"
		echo "lr smollm2 t$th q8_0 bf16: $(lr --preset smollm2-135m --threads "$th" --compute-dtype bf16)"
		echo "lr smollm2 t$th nf4: $(lr --preset smollm2-135m --threads "$th" --quant nf4 --compute-dtype f32)"
		echo "lr smollm2 t$th nf4 bf16: $(lr --preset smollm2-135m --threads "$th" --quant nf4 --compute-dtype bf16)"
	done
	echo "pt tinyllama t2: $($PT --preset tinyllama-1.1b --batch 1 --seq 512 --threads 2 --steps 2 2>&1 | tail -1)"
	echo "pt tinyllama t2 bf16: $($PT --preset tinyllama-1.1b --batch 1 --seq 512 --threads 2 --steps 2 --bf16 2>&1 | tail -1)"
	echo "lr tinyllama t2 nf4: $(lr --preset tinyllama-1.1b --batch 1 --seq 512 --threads 2 --quant nf4 --steps 2 --compute-dtype f32)"
	echo "lr tinyllama t2 nf4 bf16: $(lr --preset tinyllama-1.1b --batch 1 --seq 512 --threads 2 --quant nf4 --steps 2 --compute-dtype bf16)"
done
