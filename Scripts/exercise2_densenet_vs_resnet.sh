#!/usr/bin/env bash
# d2l "Densely Connected Networks", exercise 2: DenseNet has fewer parameters than ResNet. Why?
# Prints the exact trainable parameter counts of the textbook DenseNet (`d2l`) and ResNet-18
# (`resnet18`) from `densenet summary --json`, checks them against the published figures
# (758,226 and 11,178,378), breaks them down by layer kind (3x3 convs, 1x1 convs, BN, linear),
# then trains both the same way on Fashion-MNIST and reports test accuracy, peak memory and time.
#
#   Scripts/exercise2_densenet_vs_resnet.sh            defaults below (a short run, about 6 minutes on 2 cores)
#   EPOCHS=10 BATCH=128 LIMIT=0 TEST_LIMIT=0 Scripts/exercise2_densenet_vs_resnet.sh   the textbook's run (hours)
#
# Environment: EPOCHS (2), BATCH (64), LIMIT training images (4000; 0 = all 60,000), TEST_LIMIT
# (2000; 0 = all 10,000), SEED (0), STRATEGY (naive), MODELS ("d2l resnet18"), EXTRA_ARGS (passed
# to every `densenet train`, e.g. "--input 1x32x32"), DENSENET (a built densenet binary; default:
# build it), OUT (results/exercise2-<time>).
source "$(dirname "$0")/exercise_common.sh"
EPOCHS="${EPOCHS:-2}"; BATCH="${BATCH:-64}"; LIMIT="${LIMIT:-4000}"; TEST_LIMIT="${TEST_LIMIT:-2000}"
SEED="${SEED:-0}"; STRATEGY="${STRATEGY:-naive}"; MODELS="${MODELS:-d2l resnet18}"; EXTRA_ARGS="${EXTRA_ARGS:-}"
exercise_setup exercise2 densenet

limits=()
[ "$LIMIT" != "0" ] && limits+=(--limit "$LIMIT")
[ "$TEST_LIMIT" != "0" ] && limits+=(--test-limit "$TEST_LIMIT")
for model in $MODELS; do
    run "$DENSENET" summary --model "$model" --batch "$BATCH" --json > "$OUT/summary-$model.json"
    # shellcheck disable=SC2086  # EXTRA_ARGS is a list of words on purpose
    run "$DENSENET" train --model "$model" --data fashion-mnist --epochs "$EPOCHS" --batch "$BATCH" --seed "$SEED" \
        --strategy "$STRATEGY" "${limits[@]}" --out "$OUT/train-$model" $EXTRA_ARGS \
        2>&1 | tee "$OUT/train-$model.log" >&2
done

# The report: counts from the summaries (params_trainable, and per layer), accuracy, memory and
# time from each run's metrics.json (its last "test" record).
python3 - "$OUT" "$EPOCHS" "$BATCH" "$LIMIT" "$TEST_LIMIT" "$SEED" "$STRATEGY" $MODELS <<'PY'
import json, os, sys
out, epochs, batch, limit, test_limit, seed, strategy, models = *sys.argv[1:8], sys.argv[8:]
published = {"d2l": 758_226, "resnet18": 11_178_378}   # shared/reference/densenet-facts.md
mib = lambda b: b / 1048576

def breakdown(summary):
    """Trainable parameters by kind: 3x3 (and larger) convs, 1x1 convs, batch norm, linear."""
    kinds = {"conv kxk (k>1)": 0, "conv 1x1": 0, "batch norm": 0, "linear": 0}
    for layer in summary["layers"]:
        t, name = layer["type"], layer["name"]
        if t == "Conv2d":
            # 1x1: transition convs (DenseNet) and projections (ResNet); every other conv is 3x3 or the 7x7 stem.
            kinds["conv 1x1" if (name.endswith("downsample.0") or "transition" in name) else "conv kxk (k>1)"] += layer["params"]
        elif t.startswith("BatchNorm"):
            kinds["batch norm"] += layer["params"]
        elif t == "Linear":
            kinds["linear"] += layer["params"]
    return kinds

rows, results = [], {}
for m in models:
    summary = json.load(open(os.path.join(out, f"summary-{m}.json")))
    metrics = json.load(open(os.path.join(out, f"train-{m}", "metrics.json")))
    recs = metrics["records"]
    test = [r for r in recs if r["phase"] == "test"][-1]
    convs = [l for l in summary["layers"] if l["type"] == "Conv2d"]
    biggest = max(convs, key=lambda l: l["params"])
    results[m] = dict(parameters=summary["params_trainable"], published=published.get(m), accuracy=test["accuracy"],
                      test_loss=test["loss"], seconds=test["elapsedSeconds"],
                      peak_rss_mib=mib(max(r["peakResidentBytes"] for r in recs)),
                      tensor_peak_mib=mib(max(r["runtimePeakBytes"] for r in recs)),
                      flops_per_example=summary["forward_flops_per_example"], breakdown=breakdown(summary),
                      largest_conv=(biggest["name"], biggest["params"]))
lines = ["# Exercise 2: DenseNet vs ResNet-18 on Fashion-MNIST", "",
         f"Machine: {open(os.path.join(out, 'machine.txt')).read().strip()}.",
         f"Same training for both: {epochs} epoch(s), batch {batch}, {limit if limit != '0' else 'all'} training / "
         f"{test_limit if test_limit != '0' else 'all'} test images, seed {seed}, strategy {strategy}, input 1x96x96.", "",
         "| model | trainable parameters | published | forward GFLOP/image | test accuracy | test loss | peak RSS (MiB) | tensor peak (MiB) | seconds |",
         "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
for m, r in results.items():
    check = "" if r["published"] is None else (" ✓" if r["parameters"] == r["published"] else " ✗")
    lines.append(f"| {m} | {r['parameters']:,}{check} | {r['published']:,} | {r['flops_per_example'] / 1e9:.3f} | "
                 f"{100 * r['accuracy']:.2f}% | {r['test_loss']:.4f} | {r['peak_rss_mib']:.0f} | {r['tensor_peak_mib']:.0f} | {r['seconds']:.0f} |")
lines += ["", "| model | " + " | ".join(next(iter(results.values()))["breakdown"]) + " | largest conv |",
          "|---|" + "---:|" * (len(next(iter(results.values()))["breakdown"]) + 1)]
for m, r in results.items():
    lines.append(f"| {m} | " + " | ".join(f"{v:,}" for v in r["breakdown"].values())
                 + f" | {r['largest_conv'][0]} ({r['largest_conv'][1]:,}) |")
if "d2l" in results and "resnet18" in results:
    lines += ["", f"ResNet-18 has {results['resnet18']['parameters'] / results['d2l']['parameters']:.1f}x the parameters of the d2l DenseNet."]
json.dump(results, open(os.path.join(out, "results.json"), "w"), indent=2)
open(os.path.join(out, "report.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
echo "exercise2: results in $OUT (report.md, results.json, commands.sh, summaries, training logs)" >&2
