#!/usr/bin/env python3
"""Pleiss et al.'s memory-against-depth figure with our numbers, and a batch-size sweep.

  Scripts/ablation_depth_batch.py [--depths 40,100,160,250] [--batches 16,32,64,128] [--steps 2]

Each configuration runs in a fresh bench-memory child process (peak RSS = its VmHWM). Writes
results/ablation-depth-batch-<time>/{depth,batch}/results.* (JSON, CSV, Markdown, SVG) and a
summary report.md.
"""
import argparse
import os

import benchlib


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--depths", default="40,100,160,250")
    p.add_argument("--batches", default="16,32,64,128")
    p.add_argument("--growth", default="12")
    p.add_argument("--steps", default="2")
    p.add_argument("--strategies", default="naive,checkpoint,shared,minimal")
    a = p.parse_args()
    out = benchlib.results_dir("ablation-depth-batch")
    common = ["--steps", a.steps, "--warmup", "1", "--strategies", a.strategies]
    depth = benchlib.bench_memory(["--model", "densenet-bc", "--depths", a.depths, "--growth", a.growth,
                                   "--batch", "64"] + common, os.path.join(out, "depth"))
    batch = benchlib.bench_memory(["--model", f"densenet-bc-100-{a.growth}", "--batch", a.batches] + common,
                                  os.path.join(out, "batch"))
    lines = [f"# Memory against depth and batch ({benchlib.machine_line()})", "",
             "peak RSS − baseline (MiB) / median s per step; DenseNet-BC k=" + a.growth + ", 3x32x32", ""]
    for title, records, key in (("Depth (batch 64)", depth, "model"), ("Batch (L=100)", batch, "batch")):
        strategies = [s for s in a.strategies.split(",")]
        xs = []
        for r in records:
            if r[key] not in xs:
                xs.append(r[key])
        lines += [f"## {title}", "", "| " + key + " | " + " | ".join(strategies) + " |",
                  "|---" * (len(strategies) + 1) + "|"]
        for x in xs:
            cells = []
            for s in strategies:
                r = next((r for r in records if r[key] == x and r["strategy"] == s), None)
                if r is None or r["status"] != "ok":
                    cells.append("failed" if r else "–")
                else:
                    cells.append(f"{benchlib.fmt(r['peak_minus_baseline_mib'], 0)} / {benchlib.fmt(r['median_step_s'], 2)} s")
            lines.append(f"| {x} | " + " | ".join(cells) + " |")
        lines.append("")
    lines.append("Charts: depth/peak-memory.svg, batch/peak-memory.svg")
    benchlib.write(os.path.join(out, "report.md"), "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
