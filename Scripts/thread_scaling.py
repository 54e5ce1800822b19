#!/usr/bin/env python3
"""Thread scaling of our training step per memory strategy and of PyTorch's (naive and
memory_efficient=True), in the same run, at 1, 2, 4, ... threads up to the machine's cores
(issue 13), with a table and a chart (SVG, no plotting library needed):

  python3 Scripts/thread_scaling.py [--configs bc100,densenet121] [--threads 1,2,4,8,16]
      [--strategies naive,shared,minimal] [--steps 3] [--warmup 1] [--bench PATH | --pack PATH]
      [--no-torch] [--profile] [--out DIR]

Our binary: --bench PATH (a bench-memory executable), else --pack PATH (the static pack of
/work/shared/reference/scaling-notes.md: a .tar.xz holding bench-memory and lib/, unpacked into the
output folder and run with LD_LIBRARY_PATH=lib, so no Swift is needed), else .build/release/bench-memory
(built with `swift build -c release` when swift is there). PyTorch is measured when this Python
can import torch and torchvision (Scripts/pytorch_compare.py's child, one fresh process each,
torch.set_num_threads and OMP_NUM_THREADS set to the thread count); --no-torch skips it.

Each (model, threads) of ours is one bench-memory call (each strategy in its own child process);
the records keep the GEMM floor's probes and spread; --profile adds bench-memory's per-operation
profile, serial share and step estimated on dedicated cores to them (and columns for the last two to the table: on
a machine with that many cores the estimate against the measured step says what the split of the work does not
explain). The machine may be shared: say so with the
figures, and compare within one run.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile

import benchlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from pytorch_compare import CONFIGS  # noqa: E402


def default_threads():
    cores = os.cpu_count() or 1
    counts, t = [], 1
    while t < cores:
        counts.append(t)
        t *= 2
    return counts + [cores]


def find_bench(a, out):
    """(command prefix, environment) running our bench-memory."""
    env = dict(os.environ)
    if a.bench:
        return [os.path.abspath(a.bench)], env
    if a.pack:
        run = os.path.join(out, "run")
        os.makedirs(run, exist_ok=True)
        with tarfile.open(a.pack, "r:xz") as t:
            if hasattr(tarfile, "data_filter"):
                t.extractall(run, filter="data")
            else:
                t.extractall(run)
        exe = os.path.join(run, "bench-memory")
        if not os.path.exists(exe):
            sys.exit(f"thread_scaling.py: {a.pack} holds no bench-memory (see scaling-notes.md for how to pack it)")
        env["LD_LIBRARY_PATH"] = os.path.join(run, "lib") + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
        return [exe], env
    exe = os.path.join(benchlib.ROOT, ".build", "release", "bench-memory")
    if not os.path.exists(exe):
        if not shutil.which("swift"):
            sys.exit("thread_scaling.py: no bench-memory: pass --bench PATH or --pack PATH (Swift is not installed here)")
        exe = benchlib.build_release()
    return [exe], env


def ours(bench, env, cfg, strategies, threads, a, out):
    folder = os.path.join(out, f"ours-{cfg['ours']}-t{threads}")
    cmd = bench + ["--model", cfg["ours"], "--batch", str(cfg["batch"]), "--strategies", ",".join(strategies),
                   "--steps", str(a.steps), "--warmup", str(a.warmup), "--threads", str(threads), "--out", folder]
    if a.profile:
        cmd.append("--profile")
    print("$", " ".join(cmd), flush=True)
    done = subprocess.run(cmd, env=env)
    path = os.path.join(folder, "results.json")
    if done.returncode != 0 or not os.path.exists(path):
        return [dict(framework="ours", model=cfg["ours"], strategy=s, threads=threads, status="failed") for s in strategies]
    with open(path) as f:
        records = json.load(f)
    for r in records:
        r["framework"] = "ours"
        r["threads"] = threads
    return records


def torch_run(name, memory_efficient, threads, a):
    cmd = [sys.executable, os.path.join(HERE, "pytorch_compare.py"), "--child", name, "1" if memory_efficient else "0",
           "--steps", str(a.steps), "--warmup", str(a.warmup), "--threads", str(threads)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    print("$", " ".join(cmd), flush=True)
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    strategy = "memory_efficient" if memory_efficient else "naive"
    if done.returncode != 0:
        return dict(framework="pytorch", model=CONFIGS[name]["ours"], strategy=strategy, threads=threads,
                    status="failed", reason=done.stderr[-300:])
    r = json.loads(done.stdout.strip().splitlines()[-1])
    r["threads"] = threads
    r["status"] = "ok"
    return r


def chart(rows, model, path):
    """s/step against threads, both on log scales, one line per framework and strategy."""
    series = {}
    for r in rows:
        if r.get("model") == model and r.get("median_step_s"):
            series.setdefault(f"{r['framework']} {r['strategy']}", []).append((r["threads"], r["median_step_s"]))
    if not series:
        return
    import math
    W, H, L, R, T, B = 640, 420, 70, 190, 30, 50
    xs = sorted({t for s in series.values() for t, _ in s})
    ys = [v for s in series.values() for _, v in s]
    x0, x1 = math.log2(min(xs)), math.log2(max(xs)) or 1
    y0, y1 = math.log10(min(ys) * 0.8), math.log10(max(ys) * 1.25)
    px = lambda t: L + (math.log2(t) - x0) / max(x1 - x0, 1e-9) * (W - L - R)
    py = lambda v: T + (y1 - math.log10(v)) / (y1 - y0) * (H - T - B)
    colors = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#d62728", "#ff7f0e", "#17becf"]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
           f'<text x="{L}" y="18">{model}: median s/step by threads (log-log)</text>',
           f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="black"/>',
           f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="black"/>']
    for t in xs:
        out.append(f'<text x="{px(t):.1f}" y="{H - B + 16}" text-anchor="middle">{t}</text>')
    out.append(f'<text x="{(L + W - R) / 2:.0f}" y="{H - 10}" text-anchor="middle">threads</text>')
    for e in range(math.floor(y0), math.ceil(y1) + 1):
        for m in (1, 2, 5):
            v = m * 10 ** e
            if y0 <= math.log10(v) <= y1:
                out.append(f'<line x1="{L - 4}" y1="{py(v):.1f}" x2="{W - R}" y2="{py(v):.1f}" stroke="#ddd"/>')
                out.append(f'<text x="{L - 6}" y="{py(v) + 4:.1f}" text-anchor="end">{v:g}</text>')
    for i, (name, points) in enumerate(sorted(series.items())):
        c = colors[i % len(colors)]
        dash = ' stroke-dasharray="5,3"' if name.startswith("pytorch") else ""
        pts = " ".join(f"{px(t):.1f},{py(v):.1f}" for t, v in sorted(points))
        out.append(f'<polyline points="{pts}" fill="none" stroke="{c}" stroke-width="2"{dash}/>')
        out.append(f'<text x="{W - R + 10}" y="{T + 16 * i + 10}" fill="{c}">{name}</text>')
    out.append("</svg>")
    benchlib.write(path, "\n".join(out) + "\n")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", default="bc100,densenet121")
    p.add_argument("--threads", default=",".join(map(str, default_threads())))
    p.add_argument("--strategies", default="naive,shared,minimal")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--bench", help="a bench-memory executable")
    p.add_argument("--pack", help="a static pack (.tar.xz with bench-memory and lib/), scaling-notes.md")
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--profile", action="store_true", help="pass --profile to bench-memory")
    p.add_argument("--out")
    a = p.parse_args()
    try:
        threads = [int(t) for t in a.threads.split(",")]
        assert threads and all(t >= 1 for t in threads)
    except (ValueError, AssertionError):
        sys.exit(f"thread_scaling.py: --threads takes positive integers separated by commas, got '{a.threads}'")
    names = a.configs.split(",")
    for name in names:
        if name not in CONFIGS:
            sys.exit(f"thread_scaling.py: unknown config '{name}'; choose from {','.join(CONFIGS)}")
    strategies = a.strategies.split(",")
    have_torch = False
    if not a.no_torch:
        try:
            import torch  # noqa: F401
            import torchvision  # noqa: F401
            have_torch = True
        except ImportError:
            print("thread_scaling.py: torch/torchvision not importable here; measuring ours only", flush=True)
    out = a.out or benchlib.results_dir("thread-scaling")
    os.makedirs(out, exist_ok=True)
    bench, env = find_bench(a, out)
    rows = []
    for name in names:
        cfg = CONFIGS[name]
        for t in threads:
            rows += ours(bench, env, cfg, strategies, t, a, out)
            if have_torch:
                rows += [torch_run(name, me, t, a) for me in (False, True)]
            with open(os.path.join(out, "results.json"), "w") as f:
                json.dump(rows, f, indent=1)
    lines = [f"# Thread scaling, same run ({benchlib.machine_line()})", "",
             "| model | threads | framework | strategy | median s/step | × floor | floor probe spread | speedup vs fewest threads | serial share | est. on dedicated cores s/step | peak RSS − baseline MiB |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in names:
        model = CONFIGS[name]["ours"]
        first = {}
        for r in sorted((r for r in rows if r.get("model") == model), key=lambda r: (r["framework"], r["strategy"], r["threads"])):
            t = r.get("median_step_s")
            key = (r["framework"], r["strategy"])
            if t and key not in first:
                first[key] = t
            floor = r.get("floor_s")
            lines.append(f"| {model} | {r['threads']} | {r['framework']} | {r['strategy']} | {benchlib.fmt(t, 3)} | "
                         f"{benchlib.fmt(t / floor if t and floor else None, 2)} | {benchlib.fmt(r.get('sgemm_spread'), 2)} | "
                         f"{benchlib.fmt(first[key] / t if t else None, 2)} | {benchlib.fmt(r.get('serial_share'), 2)} | "
                         f"{benchlib.fmt(r.get('dedicated_step_s'), 3)} | {benchlib.fmt(r.get('peak_minus_baseline_mib'), 0)} |")
        chart(rows, model, os.path.join(out, f"scaling-{model}.svg"))
    benchlib.write(os.path.join(out, "report.md"), "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
