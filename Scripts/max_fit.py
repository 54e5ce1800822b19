#!/usr/bin/env python3
"""The deepest DenseNet-BC and the largest batch that fit a memory budget, per strategy.

  Scripts/max_fit.py [--budget-mib 1024] [--growth 12] [--batch 64] [--depth 100] [--input 3x32x32] [--verify]

The search asks the planner (`densenet summary --json`, which predicts the runtime's peak tensor
bytes to the byte on one thread) for each candidate; no model is built. --input takes any size
(e.g. 3x224x224, or 3x512x384: height x width); sizes whose arithmetic would overflow are refused
by densenet summary with a message, and the search treats them as not fitting. With --verify, the deepest
model and the largest batch found for each strategy are then run for one training step in a fresh
bench-memory process, and its measured peak tensor bytes and peak RSS − baseline are reported
beside the prediction. Writes results/max-fit-<time>/report.md.
"""
import argparse
import json
import os
import subprocess

import benchlib

STRATEGIES = ["naive", "checkpoint", "shared", "minimal"]


INPUT = "3x32x32"


def predicted_mib(densenet, model, batch, strategy):
    """The planner's peak in MiB; infinity when densenet summary refuses the configuration."""
    done = subprocess.run([densenet, "summary", "--model", model, "--batch", str(batch), "--strategies", strategy,
                           "--input", INPUT, "--json"], capture_output=True, text=True, cwd=benchlib.ROOT)
    if done.returncode != 0:
        print(f"densenet summary refused {model} batch {batch} input {INPUT}: {done.stderr.strip()[-300:]}", flush=True)
        return float("inf")
    return json.loads(done.stdout)["strategies"][strategy]["predicted_peak_bytes"] / 2**20


def main():
    global INPUT
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budget-mib", type=float, default=1024)
    p.add_argument("--growth", type=int, default=12)
    p.add_argument("--batch", type=int, default=64, help="batch for the depth search")
    p.add_argument("--depth", type=int, default=100, help="depth for the batch search")
    p.add_argument("--max-n", type=int, default=400, help="largest n tried (depth 6n+4)")
    p.add_argument("--input", default=INPUT, help="model input CxHxW, any size (default 3x32x32)")
    p.add_argument("--verify", action="store_true")
    a = p.parse_args()
    parts = a.input.lower().split("x")
    if len(parts) != 3 or not all(v.isdigit() and int(v) >= 1 for v in parts):
        p.error(f"--input must be CxHxW with positive integers, e.g. 3x224x224; got '{a.input}'")
    INPUT = a.input
    densenet = benchlib.build_release("densenet")
    out = benchlib.results_dir("max-fit")
    rows = []
    for s in STRATEGIES:
        n = benchlib.largest(lambda n: predicted_mib(densenet, f"densenet-bc-{6 * n + 4}-{a.growth}", a.batch, s) <= a.budget_mib,
                    1, a.max_n)
        depth = 6 * n + 4 if n else None
        model = f"densenet-bc-{a.depth}-{a.growth}"
        batch = benchlib.largest(lambda b: predicted_mib(densenet, model, b, s) <= a.budget_mib, 1, 4096)
        row = dict(strategy=s, max_depth=depth, max_batch=batch)
        if depth:
            row["depth_predicted_mib"] = predicted_mib(densenet, f"densenet-bc-{depth}-{a.growth}", a.batch, s)
        if batch:
            row["batch_predicted_mib"] = predicted_mib(densenet, model, batch, s)
        print(row, flush=True)
        rows.append(row)
    if a.verify:
        for row in rows:
            for key, model, batch in (("depth", f"densenet-bc-{row['max_depth']}-{a.growth}", a.batch),
                                      ("batch", f"densenet-bc-{a.depth}-{a.growth}", row["max_batch"])):
                if model.startswith("densenet-bc-None") or batch is None:
                    continue
                rec = benchlib.bench_memory(["--model", model, "--batch", str(batch), "--strategies", row["strategy"],
                                             "--input", INPUT,
                                             "--steps", "1", "--warmup", "0"],
                                            os.path.join(out, f"verify-{row['strategy']}-{key}"))[0]
                row[f"{key}_measured_tensor_mib"] = rec.get("peak_tensor_mib")
                row[f"{key}_measured_rss_mib"] = rec.get("peak_minus_baseline_mib")
                row[f"{key}_step_s"] = rec.get("median_step_s")
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(rows, f, indent=1)
    lines = [f"# What fits in {a.budget_mib:.0f} MiB of tensor memory ({benchlib.machine_line()})", "",
             f"DenseNet-BC, k={a.growth}, {INPUT}: deepest model at batch {a.batch}, largest batch at depth {a.depth}."
             " Predicted by the planner (peak tensor bytes); measured columns from one bench-memory step (--verify).", "",
             "| strategy | max depth | predicted MiB | measured tensor MiB | measured RSS − baseline MiB | max batch | predicted MiB | measured tensor MiB | measured RSS − baseline MiB |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
            r["strategy"], r["max_depth"], benchlib.fmt(r.get("depth_predicted_mib")),
            benchlib.fmt(r.get("depth_measured_tensor_mib")), benchlib.fmt(r.get("depth_measured_rss_mib")),
            r["max_batch"], benchlib.fmt(r.get("batch_predicted_mib")), benchlib.fmt(r.get("batch_measured_tensor_mib")),
            benchlib.fmt(r.get("batch_measured_rss_mib"))))
    benchlib.write(os.path.join(out, "report.md"), "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
