#!/usr/bin/env bash
# d2l "Densely Connected Networks", exercise 4: implement the DenseNet versions of Table 1 of
# the DenseNet paper (DenseNet-121, -169, -201, -264, and DenseNet-161 with k = 48). Builds each
# (torchvision configuration: bottleneck 4k, θ = 0.5, 3x224x224, 1000 classes), checks its
# parameter count against torchvision's, and trains it for one step with bench-memory (fresh
# process per configuration) under the naive and the minimal strategy, reporting parameters,
# forward FLOPs, measured peak memory and the planner's prediction.
#
#   Scripts/exercise4_table1.sh               batch 4, 1 step, naive and minimal (about 5 minutes on 2 cores)
#   BATCH=2 STRATEGIES=naive,checkpoint,shared,minimal Scripts/exercise4_table1.sh
#
# Environment: MODELS ("densenet121 densenet169 densenet201 densenet264 densenet161"), BATCH (4),
# INPUT (3x224x224), STRATEGIES (naive,minimal), STEPS (1), WARMUP (0), DENSENET, BENCH_MEMORY, OUT.
source "$(dirname "$0")/exercise_common.sh"
MODELS="${MODELS:-densenet121 densenet169 densenet201 densenet264 densenet161}"
BATCH="${BATCH:-4}"; INPUT="${INPUT:-3x224x224}"; STRATEGIES="${STRATEGIES:-naive,minimal}"
STEPS="${STEPS:-1}"; WARMUP="${WARMUP:-0}"
exercise_setup exercise4 densenet bench-memory

for model in $MODELS; do
    run "$DENSENET" summary --model "$model" --input "$INPUT" --batch "$BATCH" --strategies "$STRATEGIES" --json \
        > "$OUT/summary-$model.json"
    run "$BENCH_MEMORY" --model "$model" --input "$INPUT" --batch "$BATCH" --strategies "$STRATEGIES" \
        --steps "$STEPS" --warmup "$WARMUP" --out "$OUT/bench-$model" >&2
done

python3 - "$OUT" "$BATCH" "$INPUT" "$STEPS" "$WARMUP" $MODELS <<'PY'
import json, os, sys
out, batch, input_, steps, warmup, models = *sys.argv[1:6], sys.argv[6:]
# torchvision's trainable parameter counts (shared/reference/densenet-facts.md).
published = {"densenet121": 7_978_856, "densenet161": 28_681_000, "densenet169": 14_149_480,
             "densenet201": 20_013_928, "densenet264": 33_337_704}
f = lambda v, d=0: "-" if v is None else f"{v:.{d}f}"
mib = lambda b: None if b is None else b / 1048576
rows = {}
for m in models:
    s = json.load(open(os.path.join(out, f"summary-{m}.json")))
    convs = sum(1 for l in s["layers"] if l["type"] == "Conv2d")
    linears = sum(1 for l in s["layers"] if l["type"] == "Linear")
    per = {}
    for r in json.load(open(os.path.join(out, f"bench-{m}", "results.json"))):
        plan = s["strategies"].get(r["strategy"], {})
        per[r["strategy"]] = dict(status=r["status"], reason=r.get("reason"), peak_minus_baseline_mib=r.get("peak_minus_baseline_mib"),
                                  peak_tensor_mib=r.get("peak_tensor_mib"),
                                  predicted_peak_tensor_mib=r.get("predicted_peak_tensor_mib") or mib(plan.get("predicted_peak_bytes")),
                                  activations_kept_mib=mib(plan.get("activations_kept_bytes")),
                                  step_s=r.get("median_step_s"), baseline_rss_mib=r.get("baseline_rss_mib"))
    rows[m] = dict(parameters=s["params_trainable"], published=published.get(m), weighted_layers=convs + linears,
                   gflops=s["forward_flops_per_example"] / 1e9, parameter_mib=s["params_total"] * 4 / 1048576, strategies=per)
lines = ["# Exercise 4: the DenseNets of Table 1 (Huang et al. 2017), one training step each", "",
         f"Machine: {open(os.path.join(out, 'machine.txt')).read().strip()}.",
         f"bench-memory: input {input_}, batch {batch}, {steps} step(s) after {warmup} warm-up, SGD momentum, each configuration "
         "in a fresh process. Weighted layers = convolutions + classifier (the number in the name).", "",
         "| model | weighted layers | trainable parameters | torchvision | weights (MiB) | forward GFLOP/image |",
         "|---|---:|---:|---:|---:|---:|"]
for m, r in rows.items():
    ok = "" if r["published"] is None else (" ✓" if r["parameters"] == r["published"] else " ✗")
    lines.append(f"| {m} | {r['weighted_layers']} | {r['parameters']:,}{ok} | {r['published']:,} | {r['parameter_mib']:.1f} | {r['gflops']:.2f} |")
lines += ["", "| model | strategy | peak RSS − baseline (MiB) | tensor peak (MiB) | predicted (MiB) | activations kept, planner (MiB) | s/step |",
          "|---|---|---:|---:|---:|---:|---:|"]
for m, r in rows.items():
    for s, x in r["strategies"].items():
        lines.append(f"| {m} | {s} | {f(x['peak_minus_baseline_mib'])} | {f(x['peak_tensor_mib'])} | {f(x['predicted_peak_tensor_mib'])} | "
                     f"{f(x['activations_kept_mib'])} | {f(x['step_s'], 2)} |" + ("" if x["status"] == "ok" else f" {x['status']}: {x['reason']}"))
json.dump(rows, open(os.path.join(out, "results.json"), "w"), indent=2)
open(os.path.join(out, "report.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
echo "exercise4: results in $OUT (report.md, results.json, commands.sh, bench-*/)" >&2
