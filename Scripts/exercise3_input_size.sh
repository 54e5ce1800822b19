#!/usr/bin/env bash
# d2l "Densely Connected Networks", exercise 3: one problem of DenseNet is its high memory
# consumption. Is this really the case? Measures one training step of the textbook DenseNet
# (`d2l`) at the textbook's 96x96 input and at 224x224 under every memory strategy with
# bench-memory (each configuration in a fresh process: peak RSS minus the baseline with model,
# optimizer and batch allocated, and the runtime's peak of counted tensor bytes), next to the
# planner's prediction (`densenet summary --json`: predicted peak and activations kept), with
# the textbook ResNet-18 (naive) at the same inputs and batch as the yardstick.
#
#   Scripts/exercise3_input_size.sh              batch 32, 2 steps, every strategy (about 3 minutes on 2 cores)
#   BATCH=128 Scripts/exercise3_input_size.sh    the textbook's batch size
#
# Environment: BATCH (32), INPUTS ("1x96x96 1x224x224"), STRATEGIES
# (naive,checkpoint,shared-concat,shared,minimal), BASELINE (resnet18; "" for none), STEPS (2),
# WARMUP (0), DENSENET, BENCH_MEMORY, OUT.
source "$(dirname "$0")/exercise_common.sh"
BATCH="${BATCH:-32}"; INPUTS="${INPUTS:-1x96x96 1x224x224}"; STEPS="${STEPS:-2}"; WARMUP="${WARMUP:-0}"
STRATEGIES="${STRATEGIES:-naive,checkpoint,shared-concat,shared,minimal}"; BASELINE="${BASELINE-resnet18}"
exercise_setup exercise3 densenet bench-memory

for input in $INPUTS; do
    run "$DENSENET" summary --model d2l --input "$input" --batch "$BATCH" --strategies "$STRATEGIES" --json \
        > "$OUT/summary-$input.json"
    run "$BENCH_MEMORY" --model d2l --input "$input" --batch "$BATCH" --strategies "$STRATEGIES" \
        --steps "$STEPS" --warmup "$WARMUP" --out "$OUT/bench-$input" >&2
    if [ -n "$BASELINE" ]; then
        run "$DENSENET" summary --model "$BASELINE" --input "$input" --batch "$BATCH" --strategies naive --json \
            > "$OUT/summary-$BASELINE-$input.json"
        run "$BENCH_MEMORY" --model "$BASELINE" --input "$input" --batch "$BATCH" --strategies naive \
            --steps "$STEPS" --warmup "$WARMUP" --out "$OUT/bench-$BASELINE-$input" >&2
    fi
done

python3 - "$OUT" "$BATCH" "$STEPS" "$WARMUP" "$BASELINE" $INPUTS <<'PY'
import json, os, sys
out, batch, steps, warmup, baseline, inputs = *sys.argv[1:6], sys.argv[6:]
mib = lambda b: None if b is None else b / 1048576
f = lambda v, d=0: "-" if v is None else f"{v:.{d}f}"
results = {}
for i in inputs:
    for model, tag in [("d2l", "")] + ([(baseline, baseline + "-")] if baseline else []):
        summary = json.load(open(os.path.join(out, f"summary-{tag}{i}.json")))
        for r in json.load(open(os.path.join(out, f"bench-{tag}{i}", "results.json"))):
            plan = summary["strategies"].get(r["strategy"], {})
            name = r["strategy"] if model == "d2l" else f"{model} {r['strategy']}"
            results[(i, name)] = dict(
                status=r["status"], peak_minus_baseline_mib=r.get("peak_minus_baseline_mib"), peak_tensor_mib=r.get("peak_tensor_mib"),
                predicted_peak_tensor_mib=r.get("predicted_peak_tensor_mib") or mib(plan.get("predicted_peak_bytes")),
                activations_kept_mib=mib(plan.get("activations_kept_bytes")), median_step_s=r.get("median_step_s"),
                baseline_rss_mib=r.get("baseline_rss_mib"))
strategies = list(dict.fromkeys(s for _, s in results))
lines = ["# Exercise 3: d2l DenseNet memory at 96x96 and 224x224", "",
         f"Machine: {open(os.path.join(out, 'machine.txt')).read().strip()}.",
         f"bench-memory, batch {batch}, {steps} measured step(s) after {warmup} warm-up, each configuration in a fresh process; "
         "SGD momentum. Peak RSS − baseline: VmHWM minus the RSS with model, optimizer state and batch allocated. "
         "Tensor peak: the runtime's count (Memory.peak, baseline included). Predicted: the planner (densenet summary).", "",
         f"Rows named {baseline or '-'} are the textbook ResNet-18 (11.2 M parameters against the d2l DenseNet's 0.76 M) at the same input and batch.", "",
         "| input | strategy | peak RSS − baseline (MiB) | tensor peak (MiB) | predicted tensor peak (MiB) | activations kept, planner (MiB) | median s/step |",
         "|---|---|---:|---:|---:|---:|---:|"]
for (i, s), r in results.items():
    lines.append(f"| {i} | {s} | {f(r['peak_minus_baseline_mib'])} | {f(r['peak_tensor_mib'])} | {f(r['predicted_peak_tensor_mib'])} | "
                 f"{f(r['activations_kept_mib'])} | {f(r['median_step_s'], 2)} |")
if len(inputs) == 2:
    a, b = inputs
    lines += ["", f"| strategy | ratio {b} / {a}: peak RSS − baseline | tensor peak | activations kept |", "|---|---:|---:|---:|"]
    for s in strategies:
        x, y = results.get((a, s)), results.get((b, s))
        if not x or not y:
            continue
        ratio = lambda k: "-" if not x[k] or y[k] is None else f"{y[k] / x[k]:.2f}"
        lines.append(f"| {s} | {ratio('peak_minus_baseline_mib')} | {ratio('peak_tensor_mib')} | {ratio('activations_kept_mib')} |")
json.dump({f"{i} {s}": r for (i, s), r in results.items()}, open(os.path.join(out, "results.json"), "w"), indent=2)
open(os.path.join(out, "report.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
echo "exercise3: results in $OUT (report.md, results.json, commands.sh, bench-*/)" >&2
