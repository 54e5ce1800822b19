#!/usr/bin/env bash
# d2l "Densely Connected Networks", exercise 1: why average pooling rather than max pooling in
# the transition layer? Trains the textbook DenseNet (`d2l`, Fashion-MNIST at 96x96) twice with
# the same budget, seed and strategy, once with average and once with max pooling in the
# transitions (`densenet train --transition-pooling avg|max`), and reports test accuracy, loss,
# peak memory and time of each, with the planner's predicted peak (`densenet summary`).
#
#   Scripts/exercise1_transition_pooling.sh                 a short run (about 5 minutes on 2 cores)
#   EPOCHS=10 LIMIT=0 TEST_LIMIT=0 Scripts/exercise1_transition_pooling.sh   the textbook's budget (hours)
#
# Environment: EPOCHS (2), BATCH (64), LIMIT training images (4000; 0 = all 60,000), TEST_LIMIT
# (2000; 0 = all 10,000), SEED (0), STRATEGY (naive), INPUT (1x96x96), EXTRA_ARGS, DENSENET, OUT.
source "$(dirname "$0")/exercise_common.sh"
EPOCHS="${EPOCHS:-2}"; BATCH="${BATCH:-64}"; LIMIT="${LIMIT:-4000}"; TEST_LIMIT="${TEST_LIMIT:-2000}"
SEED="${SEED:-0}"; STRATEGY="${STRATEGY:-naive}"; INPUT="${INPUT:-1x96x96}"; EXTRA_ARGS="${EXTRA_ARGS:-}"
exercise_setup exercise1 densenet

limits=()
[ "$LIMIT" != "0" ] && limits+=(--limit "$LIMIT")
[ "$TEST_LIMIT" != "0" ] && limits+=(--test-limit "$TEST_LIMIT")
for pooling in avg max; do
    run "$DENSENET" summary --model d2l --input "$INPUT" --batch "$BATCH" --transition-pooling "$pooling" --json \
        > "$OUT/summary-$pooling.json"
    # shellcheck disable=SC2086  # EXTRA_ARGS is a list of words on purpose
    run "$DENSENET" train --model d2l --input "$INPUT" --transition-pooling "$pooling" --data fashion-mnist \
        --epochs "$EPOCHS" --batch "$BATCH" --seed "$SEED" --strategy "$STRATEGY" "${limits[@]}" \
        --out "$OUT/train-$pooling" $EXTRA_ARGS 2>&1 | tee "$OUT/train-$pooling.log" >&2
done

python3 - "$OUT" "$EPOCHS" "$BATCH" "$LIMIT" "$TEST_LIMIT" "$SEED" "$STRATEGY" "$INPUT" <<'PY'
import json, os, sys
out, epochs, batch, limit, test_limit, seed, strategy, input_ = sys.argv[1:]
mib = lambda b: b / 1048576
lines = ["# Exercise 1: average vs max pooling in the transitions (d2l DenseNet, Fashion-MNIST)", "",
         f"Machine: {open(os.path.join(out, 'machine.txt')).read().strip()}.",
         f"Same budget for both: input {input_}, {epochs} epoch(s), batch {batch}, {limit or 'all'} training / "
         f"{test_limit or 'all'} test images, seed {seed}, strategy {strategy}, SGD momentum 0.9, lr 0.1 cosine.", "",
         "| transition pooling | parameters | test accuracy | test loss | last-epoch train loss | peak RSS (MiB) | tensor peak (MiB) | predicted peak (MiB) | seconds |",
         "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
results = {}
for p in ("avg", "max"):
    m = json.load(open(os.path.join(out, f"train-{p}", "metrics.json")))
    s = json.load(open(os.path.join(out, f"summary-{p}.json")))
    recs = m["records"]
    test = [r for r in recs if r["phase"] == "test"][-1]
    train = [r for r in recs if r["phase"] == "train_epoch"][-1]
    rss = max(r["peakResidentBytes"] for r in recs)
    tensors = max(r["runtimePeakBytes"] for r in recs)
    predicted = s["strategies"].get(strategy, {}).get("predicted_peak_bytes")
    results[p] = dict(accuracy=test["accuracy"], test_loss=test["loss"], train_loss=train["loss"], peak_rss_mib=mib(rss),
                      tensor_peak_mib=mib(tensors), predicted_peak_mib=mib(predicted) if predicted else None,
                      seconds=test["elapsedSeconds"], parameters=s["params_trainable"])
    r = results[p]
    lines.append(f"| {p} | {r['parameters']:,} | {100 * r['accuracy']:.2f}% | {r['test_loss']:.4f} | {r['train_loss']:.4f} | "
                 f"{r['peak_rss_mib']:.0f} | {r['tensor_peak_mib']:.0f} | "
                 f"{'%.0f' % r['predicted_peak_mib'] if r['predicted_peak_mib'] else '-'} | {r['seconds']:.0f} |")
json.dump(results, open(os.path.join(out, "results.json"), "w"), indent=2)
open(os.path.join(out, "report.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
echo "exercise1: results in $OUT (report.md, results.json, commands.sh, logs)" >&2
