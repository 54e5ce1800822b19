#!/usr/bin/env python3
"""The same training steps under PyTorch (naive and memory_efficient=True) and here, on the same
machine in the same run, with ratios. Needs `pip install torch torchvision` (never needed by the
build or the tests); run it with the Python that has torch:

  /path/to/python Scripts/pytorch_compare.py [--configs bc100,densenet121] [--steps 3] [--threads 2]

A training step is forward + cross-entropy + backward + SGD momentum step, training mode,
synthetic data. Every configuration runs in a fresh process; peak RSS − baseline is VmHWM minus
the RSS once model, optimizer and data exist (VmHWM reset there through /proc/self/clear_refs).
"""
import argparse
import json
import os
import subprocess
import sys

import benchlib

CONFIGS = {
    "bc100": dict(ours="densenet-bc-100-12", batch=64, input=(3, 32, 32)),
    "bc250": dict(ours="densenet-bc-250-12", batch=64, input=(3, 32, 32)),
    "densenet121": dict(ours="densenet121", batch=8, input=(3, 224, 224)),
}


def torch_child(name, memory_efficient, steps, warmup, threads):
    """Runs in a fresh interpreter: builds the model, measures, prints one JSON line."""
    import statistics

    import torch

    cfg = CONFIGS[name]
    model = benchlib.torchvision_densenet(cfg["ours"], memory_efficient)
    baseline, peak, times = benchlib.torch_training_steps(model, cfg["input"], cfg["batch"], steps, warmup, threads)
    print(json.dumps(dict(framework="pytorch", strategy="memory_efficient" if memory_efficient else "naive",
                          model=cfg["ours"], batch=cfg["batch"], baseline_rss_mib=baseline, peak_rss_mib=peak,
                          peak_minus_baseline_mib=peak - baseline, median_step_s=statistics.median(times),
                          params=sum(p.numel() for p in model.parameters()), torch=torch.__version__)))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", default="bc100,densenet121")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        torch_child(a.child[0], a.child[1] == "1", a.steps, a.warmup, a.threads)
        return
    try:
        import torch  # noqa: F401
        import torchvision  # noqa: F401
    except ImportError:
        sys.exit("pytorch_compare.py: torch and torchvision are not installed for this Python "
                 "(pip install torch torchvision); nothing measured")
    out = benchlib.results_dir("pytorch-compare")
    rows = []
    for name in a.configs.split(","):
        if name not in CONFIGS:
            sys.exit(f"unknown config '{name}'; choose from {','.join(CONFIGS)}")
        cfg = CONFIGS[name]
        for me in (False, True):
            cmd = [sys.executable, os.path.abspath(__file__), "--child", name, "1" if me else "0",
                   "--steps", str(a.steps), "--warmup", str(a.warmup), "--threads", str(a.threads)]
            print("$", " ".join(cmd), flush=True)
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                rows.append(dict(framework="pytorch", strategy="memory_efficient" if me else "naive",
                                 model=cfg["ours"], batch=cfg["batch"], status="failed", reason=done.stderr[-300:]))
            else:
                rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
        ours = benchlib.bench_memory(["--model", cfg["ours"], "--batch", str(cfg["batch"]), "--steps", str(a.steps),
                                      "--warmup", str(a.warmup), "--threads", str(a.threads)],
                                     os.path.join(out, f"ours-{name}"))
        for r in ours:
            r["framework"] = "ours"
        rows += ours
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(rows, f, indent=1)
    lines = [f"# PyTorch vs this framework, same machine, same run ({benchlib.machine_line()})", "",
             "| model | batch | framework | strategy | peak RSS − baseline MiB | median s/step | mem ÷ PyTorch ME | time ÷ PyTorch naive |",
             "|---|---|---|---|---|---|---|---|"]
    for name in a.configs.split(","):
        model = CONFIGS[name]["ours"]
        group = [r for r in rows if r["model"] == model]
        me = next((r for r in group if r["framework"] == "pytorch" and r["strategy"] == "memory_efficient"
                   and "median_step_s" in r), None)
        nv = next((r for r in group if r["framework"] == "pytorch" and r["strategy"] == "naive"
                   and "median_step_s" in r), None)
        for r in group:
            mem, t = r.get("peak_minus_baseline_mib"), r.get("median_step_s")
            rm = mem / me["peak_minus_baseline_mib"] if me and mem is not None else None
            rt = t / nv["median_step_s"] if nv and t is not None else None
            lines.append(f"| {model} | {r['batch']} | {r['framework']} | {r['strategy']} | {benchlib.fmt(mem, 0)} | "
                         f"{benchlib.fmt(t, 3)} | {benchlib.fmt(rm, 2)} | {benchlib.fmt(rt, 2)} |")
    benchlib.write(os.path.join(out, "report.md"), "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
