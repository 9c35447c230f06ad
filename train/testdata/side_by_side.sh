#!/bin/bash
# side_by_side.sh [LOWRANK] [ROUNDS]: the README's training-throughput table.
# Alternates PyTorch 1.13 (torch_lora_bench.py, OpenBLAS given its AVX-512
# kernel) and `lowrank bench train` on each preset and thread count, ROUNDS
# times, printing tokens/s and peak RSS per run; take medians per cell.
set -u
L=${1:-bin/lowrank}
ROUNDS=${2:-4}
cd "$(dirname "$0")/../.."
PT="env OPENBLAS_CORETYPE=SkylakeX /usr/bin/python3 train/testdata/torch_lora_bench.py"
lr() { # tokens/s and peak MiB of one lowrank run
	"$L" bench train "$@" --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(round(d["tokens_per_second"]), d["peak_rss_bytes"]>>20, "MiB")'
}
for round in $(seq "$ROUNDS"); do
	echo "== round $round $(date +%T)"
	for th in 1 2; do
		echo "pt smollm2 t$th: $($PT --preset smollm2-135m --threads "$th" 2>&1 | tail -1)"
		echo "lr smollm2 t$th q8_0: $(lr --preset smollm2-135m --threads "$th")"
		echo "lr smollm2 t$th nf4: $(lr --preset smollm2-135m --threads "$th" --quant nf4)"
		echo "lr smollm2 t$th q8_0 ckpt6: $(lr --preset smollm2-135m --threads "$th" --checkpoint-layers 6)"
		echo "lr smollm2 t$th q8_0 all: $(lr --preset smollm2-135m --threads "$th" --activation-checkpointing)"
		echo "pt stories15m t$th: $($PT --preset stories15m --threads "$th" 2>&1 | tail -1)"
		echo "lr stories15m t$th q8_0: $(lr --preset stories15m --threads "$th" --steps 4)"
		echo "lr stories15m t$th nf4: $(lr --preset stories15m --threads "$th" --steps 4 --quant nf4)"
	done
	echo "pt tinyllama t2: $($PT --preset tinyllama-1.1b --batch 1 --seq 512 --threads 2 --steps 2 2>&1 | tail -1)"
	echo "lr tinyllama t2 nf4: $(lr --preset tinyllama-1.1b --batch 1 --seq 512 --threads 2 --quant nf4 --steps 2)"
	echo "lr tinyllama t2 q8_0 ckpt10: $(lr --preset tinyllama-1.1b --batch 1 --seq 512 --threads 2 --checkpoint-layers 10 --steps 2)"
	echo "lr tinyllama t2 q8_0: $(lr --preset tinyllama-1.1b --batch 1 --seq 512 --threads 2 --steps 2)"
done
