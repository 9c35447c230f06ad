#!/bin/bash
# generate_side_by_side.sh [LOWRANK] [ROUNDS] [TOKENS]: the README's
# generation table. Writes the smollm2-135m shape with seeded random
# weights as Q8_0, Q4_0 and F16 GGUF files (randgguf, StarCoder's 49152-token
# vocabulary from the assets; F16 is what a merged model is exported as),
# then alternates llama.cpp (node-llama-cpp 3.21.1's prebuilt CPU build) and
# `lowrank generate` (compute f32, int8, auto; F16 has no int8 form) on each
# file and thread count, ROUNDS times: greedy from BOS, TOKENS
# tokens, tokens/s over the whole call (the first token included) and peak
# RSS; then the Q8_0 file after a prompt of 150 words (490 tokens: a
# context where attention over the cache counts), llama.cpp against auto.
# Take medians per cell.
set -eu
L=${1:-bin/lowrank}
ROUNDS=${2:-3}
N=${3:-128}
cd "$(dirname "$0")/../.."
ASSETS=${LOWRANK_ASSETS:-../shared/assets}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
for q in q8_0 q4_0 f16; do
	go run ./model/testdata/randgguf -preset smollm2-135m -type $q \
		-vocab "$ASSETS/tokenizers/llama.cpp-vocab/ggml-vocab-starcoder.gguf" -o "$T/smollm2-$q.gguf" >/dev/null
done
ln -s "$(npm root -g)" "$T/node_modules"
cat >"$T/gen.mjs" <<'JS'
import {getLlama} from "node-llama-cpp";
const [,, modelPath, n, threads] = process.argv;
const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const model = await llama.loadModel({modelPath});
const ctx = await model.createContext({contextSize: 1024, threads: Number(threads)});
const seq = ctx.getSequence();
const prompt = process.argv[5] ? model.tokenize(process.argv[5]) : [];
let count = 0;
const start = performance.now();
for await (const t of seq.evaluate([model.tokens.bos ?? 1, ...prompt], {temperature: 0})) {
  if (++count >= Number(n)) break;
}
const s = (performance.now() - start) / 1000;
console.log(Math.round(count / s));
JS
PROMPT=$(python3 -c "print(' '.join('word%d' % i for i in range(150)))")
rss() { echo "$(($(cat "$T/rss") >> 10)) MiB"; } # of the last run
llama() { echo "$(/usr/bin/time -f %M -o "$T/rss" node "$T/gen.mjs" "$@") $(rss)"; }
lowrank() {
	/usr/bin/time -f %M -o "$T/rss" "$L" generate --temperature 0 --json "$@" >"$T/out.json"
	echo "$(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["tokens_per_second"]))' "$T/out.json") $(rss)"
}
for round in $(seq "$ROUNDS"); do
	echo "== round $round $(date +%T)"
	for q in q8_0 q4_0 f16; do
		cs="f32 int8 auto"
		if [ $q = f16 ]; then cs="f32 auto"; fi
		for th in 1 2; do
			echo "llama.cpp $q t$th: $(llama "$T/smollm2-$q.gguf" "$N" "$th")"
			for c in $cs; do
				echo "lowrank $q t$th $c: $(lowrank --model "$T/smollm2-$q.gguf" --max-tokens "$N" --threads "$th" --compute-dtype $c)"
			done
		done
	done
	for th in 1 2; do
		echo "llama.cpp q8_0 p490 t$th: $(llama "$T/smollm2-q8_0.gguf" "$N" "$th" "$PROMPT")"
		echo "lowrank q8_0 p490 t$th auto: $(lowrank --model "$T/smollm2-q8_0.gguf" --max-tokens "$N" --threads "$th" --prompt "$PROMPT")"
	done
done
