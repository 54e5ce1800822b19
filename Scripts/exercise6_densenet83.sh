#!/usr/bin/env bash
# The course exercise (CAP421, optional exercise 02): explain why the "new" DenseNet-83 has more
# trainable parameters and demands more memory (parameters) than DenseNet-121. DenseNet-83 is
# DenseNet-161's growth rate k = 48 and 96 stem channels with every block halved (3-6-18-12);
# DenseNet-121 has k = 32, 64 stem channels, blocks 6-12-24-16.
#
# Compares the two with `densenet summary --json` at batch 64 (parameters per block, the
# planner's predicted training memory per strategy and its parts) and measures one training
# step of each with bench-memory at a small batch (naive and minimal, fresh process each).
#
#   Scripts/exercise6_densenet83.sh             (about 3 minutes on 2 cores)
#
# Environment: BATCH (64, the planner's), BENCH_BATCH (4, measured), INPUT (3x224x224),
# STRATEGIES (naive,minimal, measured), STEPS (1), WARMUP (0), DENSENET, BENCH_MEMORY, OUT.
source "$(dirname "$0")/exercise_common.sh"
BATCH="${BATCH:-64}"; BENCH_BATCH="${BENCH_BATCH:-4}"; INPUT="${INPUT:-3x224x224}"
STRATEGIES="${STRATEGIES:-naive,minimal}"; STEPS="${STEPS:-1}"; WARMUP="${WARMUP:-0}"
exercise_setup exercise6 densenet bench-memory

for model in densenet83 densenet121; do
    run "$DENSENET" summary --model "$model" --input "$INPUT" --batch "$BATCH" --json > "$OUT/summary-$model.json"
    run "$BENCH_MEMORY" --model "$model" --input "$INPUT" --batch "$BENCH_BATCH" --strategies "$STRATEGIES" \
        --steps "$STEPS" --warmup "$WARMUP" --out "$OUT/bench-$model" >&2
done

python3 - "$OUT" "$BATCH" "$BENCH_BATCH" "$INPUT" <<'PY'
import json, os, re, sys
out, batch, bench_batch, input_ = sys.argv[1:]
models = ["densenet83", "densenet121"]
mib = lambda b: b / 1048576
f = lambda v, d=0: "-" if v is None else f"{v:.{d}f}"
S = {m: json.load(open(os.path.join(out, f"summary-{m}.json"))) for m in models}
B = {m: {r["strategy"]: r for r in json.load(open(os.path.join(out, f"bench-{m}", "results.json")))} for m in models}

def part(name):
    g = re.match(r"features\.(denseblock\d|transition\d)", name)
    if g: return g.group(1)
    return "classifier" if name.startswith("classifier") else "stem and head"

def elements(layer):
    n = 1
    for d in layer["output_shape"]: n *= d
    return n

lines = ["# Exercise 6: DenseNet-83 against DenseNet-121", "",
         f"Machine: {open(os.path.join(out, 'machine.txt')).read().strip()}.",
         f"Planner (densenet summary): input {input_}, batch {batch}, SGD momentum. Measured (bench-memory): batch {bench_batch}, "
         "one training step in a fresh process.", "",
         "| | densenet83 | densenet121 |", "|---|---:|---:|"]
def row(label, fn): lines.append(f"| {label} | " + " | ".join(fn(m) for m in models) + " |")
row("growth k, stem, blocks", lambda m: {"densenet83": "48, 96, 3-6-18-12", "densenet121": "32, 64, 6-12-24-16"}[m])
row("trainable parameters", lambda m: f"{S[m]['params_trainable']:,}")
row("weights + gradients + momentum (MiB)", lambda m: f"{3 * mib(S[m]['params_trainable'] * 4):.1f}")
row("forward GFLOP/image", lambda m: f"{S[m]['forward_flops_per_example'] / 1e9:.2f}")
row(f"layer outputs per batch of {batch} (sum of every layer's output, MiB)", lambda m: f"{mib(4 * sum(elements(l) for l in S[m]['layers'])):.0f}")
for s in ("naive", "checkpoint", "shared", "minimal"):
    row(f"predicted peak, {s}, batch {batch} (MiB)", lambda m: f(mib(S[m]["strategies"][s]["predicted_peak_bytes"])))
    row(f"  of which activations kept (MiB)", lambda m: f(mib(S[m]["strategies"][s]["activations_kept_bytes"])))
for s in sorted({s for m in models for s in B[m]}):
    row(f"measured, {s}, batch {bench_batch}: peak RSS − baseline (MiB)", lambda m: f(B[m].get(s, {}).get("peak_minus_baseline_mib")))
    row(f"measured, {s}, batch {bench_batch}: tensor peak (MiB)", lambda m: f(B[m].get(s, {}).get("peak_tensor_mib")))
    row(f"predicted, {s}, batch {bench_batch}: tensor peak (MiB)", lambda m: f(B[m].get(s, {}).get("predicted_peak_tensor_mib")))
    row(f"measured, {s}, batch {bench_batch}: s/step", lambda m: f(B[m].get(s, {}).get("median_step_s"), 2))

# Where the parameters and the feature maps are, block by block.
lines += ["", "| part | densenet83 parameters | densenet121 parameters | densenet83 output MiB (batch %s) | densenet121 output MiB |" % batch,
          "|---|---:|---:|---:|---:|"]
parts = {}
for m in models:
    for l in S[m]["layers"]:
        p = parts.setdefault(part(l["name"]), {}).setdefault(m, [0, 0])
        p[0] += l["params"]; p[1] += 4 * elements(l)
for name, v in parts.items():
    lines.append(f"| {name} | " + " | ".join(f"{v.get(m, [0, 0])[0]:,}" for m in models) + " | "
                 + " | ".join(f"{mib(v.get(m, [0, 0])[1]):.0f}" for m in models) + " |")
# One bottleneck layer by hand: BN(c) 2c, conv1 c·4k, BN 2·4k, conv2 9·4k·k.
lines += ["", "One bottleneck dense layer with input width c: 2c + 4kc + 8k + 36k² parameters; "
          "the 3x3 conv alone is 36k² = 82,944 for k = 48 and 36,864 for k = 32 (2.25x)."]
json.dump({"summary": {m: {k: S[m][k] for k in ("params_trainable", "forward_flops_per_example", "strategies")} for m in models},
           "measured": B}, open(os.path.join(out, "results.json"), "w"), indent=2)
open(os.path.join(out, "report.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
echo "exercise6: results in $OUT (report.md, results.json, commands.sh, bench-*/)" >&2
