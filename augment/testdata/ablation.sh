#!/usr/bin/env bash
# Ablation of augmentation on stories260K (the real pretrained model in the
# test assets): the best validation loss with and without NEFTune and token
# noise, the same seeds, data and steps. Prints one table row per dataset and
# setting: the mean and the per-seed values over 3 seeds.
#
#   make build && augment/testdata/ablation.sh [ASSETS]   (default ../shared/assets)
#   ABLATION_ONLY=text augment/testdata/ablation.sh        (only the rows whose name has "text")
set -euo pipefail
A=${1:-../shared/assets}
L=${LOWRANK:-bin/lowrank}
M=$A/models/stories260K/hf
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
run() { # name flags...
	local name=$1; shift
	if [ -n "${ABLATION_ONLY:-}" ] && [[ "$name" != *"$ABLATION_ONLY"* ]]; then return; fi
	local vals=()
	for seed in 1 2 3; do
		v=$("$L" train --model "$M" --out "$out/$name-$seed" --seed "$seed" --quant f32 --compute-dtype f32 --no-progress --log-every 0 --save-every 0 --json "$@" 2>/dev/null |
			python3 -c 'import json,sys; print("%.4f" % json.load(sys.stdin)["best_val_loss"])')
		vals+=("$v")
	done
	python3 - "$name" "${vals[@]}" <<'PY'
import sys, statistics
name, vals = sys.argv[1], [float(v) for v in sys.argv[2:]]
print(f"| {name} | {statistics.mean(vals):.4f} | {' / '.join(f'{v:.4f}' for v in vals)} |")
PY
}
echo "| run | best validation loss, mean of 3 seeds | seeds 1 / 2 / 3 |"
echo "|---|---|---|"
# WikiSQL (1000 text rows, every token supervised: token noise needs --augment-answers), 2 epochs.
W="--data $A/datasets/wikisql/train.parquet --val $A/datasets/wikisql/valid.parquet --epochs 2 --batch-size 8 --max-seq-len 256 --lr 2e-3 --eval-every 50"
run "wikisql, plain" $W
run "wikisql, NEFTune α=5" $W --neftune-noise-alpha 5
run "wikisql, token dropout 0.1 + replace 0.1 (data freq.)" $W --token-dropout 0.1 --token-replace 0.1 --token-replace-from data --augment-answers
run "wikisql, text: word swap 0.1 + char noise 0.03 (all of the text)" $W --text-word-swap 0.1 --text-char-noise 0.03 --text-fields all
# identity (91 alpaca rows: prompts to noise), 20% held out, 10 epochs.
I="--data $A/datasets/llamafactory/identity.parquet --val-fraction 0.2 --epochs 10 --batch-size 4 --lr 2e-3 --eval-every 10"
run "identity, plain" $I
run "identity, NEFTune α=5" $I --neftune-noise-alpha 5
run "identity, token dropout 0.1 + replace 0.1 on prompts" $I --token-dropout 0.1 --token-replace 0.1
run "identity, text: word swap 0.1 + char noise 0.03 on prompts" $I --text-word-swap 0.1 --text-char-noise 0.03
# LlamaFactory's v1_sft_demo (500 chat rows; the simple template: stories260K cannot write
# chatml's markers), 20% held out, 3 epochs.
S="--data $A/datasets/llamafactory/v1_sft_demo.messages.parquet --chat-template simple --val-fraction 0.2 --epochs 3 --batch-size 4 --lr 2e-3 --eval-every 50"
run "sft, plain" $S
run "sft, NEFTune α=5" $S --neftune-noise-alpha 5
run "sft, token dropout 0.1 + replace 0.1 on prompts" $S --token-dropout 0.1 --token-replace 0.1
run "sft, text: word swap 0.1 + char noise 0.03 on prompts" $S --text-word-swap 0.1 --text-char-noise 0.03
