#!/usr/bin/env python3
"""Memory and time of DenseNet-121 at high resolution, per memory strategy, next to PyTorch.

  Scripts/ablation_resolution.py [--model densenet121] [--resolutions 224,320,448,512,768,1024]
      [--batches 8,16] [--strategies naive,checkpoint,shared,minimal] [--steps 2] [--warmup 1]
      [--threads N] [--budget 80%|SIZE] [--fit-budget 4G] [--fit-step 32] [--fit-max 4096]
      [--no-pytorch] [--papers]

For every resolution R (input 3xRxR), batch and strategy: this framework's peak RSS and median
seconds per training step (forward + cross-entropy + backward + SGD momentum step), each
configuration in a fresh bench-memory child process (peak RSS = its VmHWM). Before running,
the planner predicts the configuration's peak of tensor memory (`densenet summary --json`); a
configuration predicted above --budget (default 80 % of physical memory) is not run, and its
row gives the prediction instead, so the machine never swaps.

Where this Python can import torch and torchvision, PyTorch's torchvision DenseNet (naive and
memory_efficient=True) is measured in the same run, each in a fresh interpreter, as
Scripts/pytorch_compare.py does; a PyTorch configuration is skipped when our corresponding
strategy's prediction (naive; checkpoint for memory_efficient) times 1.25 exceeds --budget.

Last, the largest resolution whose predicted peak fits --fit-budget (default 4 GiB), per
strategy and batch, searched by the planner alone over multiples of --fit-step pixels (32).

Writes results/ablation-resolution-<time>/{results.json,report.md,resolution.svg}; --papers
also copies the report and chart to Papers/resolution.md and Papers/resolution.svg. The full
default sweep takes hours on a laptop-class CPU (a 1024-pixel step of DenseNet-121 at batch 16
is ~10^14 FLOPs); try --resolutions 224,320 --batches 8 first.

DENSENET_BIN_DIR=.build/debug uses already built binaries from that folder (for a quick check
of the script itself; measure with the release build, the default).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

import benchlib

STRATEGIES = ["naive", "checkpoint", "shared", "minimal"]
COLORS = {"naive": "#d62728", "checkpoint": "#ff7f0e", "shared": "#1f77b4", "minimal": "#2ca02c",
          "pytorch naive": "#7f7f7f", "pytorch memory_efficient": "#9467bd"}
MIB = 2 ** 20


def parse_size(text, what):
    """Bytes from '6G', '512M', '4GiB', '1000000' or 'P%' (of physical memory)."""
    t = text.strip().upper().replace("IB", "").replace("B", "")
    if t.endswith("%"):
        try:
            share = float(t[:-1])
        except ValueError:
            sys.exit(f"{what}: '{text}' is not a percentage, e.g. 80%")
        if not 0 < share <= 100:
            sys.exit(f"{what}: {text} must be in (0, 100]%")
        return int(physical_memory() * share / 100)
    scale = 1
    for suffix, factor in (("K", 2 ** 10), ("M", 2 ** 20), ("G", 2 ** 30), ("T", 2 ** 40)):
        if t.endswith(suffix):
            t, scale = t[:-1], factor
            break
    try:
        value = float(t)
    except ValueError:
        sys.exit(f"{what}: '{text}' is not a size, e.g. 4G, 512M or 80%")
    if not value > 0 or value * scale > 2 ** 62:
        sys.exit(f"{what}: {text} must be a positive size, e.g. 4G")
    return int(value * scale)


def size(nbytes):
    """'18.4 GiB' or '40.0 MiB'."""
    return f"{nbytes / 2**30:.1f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.1f} MiB"


def physical_memory():
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def integers(text, what):
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        sys.exit(f"{what}: '{text}' is not a comma-separated list of integers")
    if not values or any(v < 1 for v in values):
        sys.exit(f"{what}: '{text}' must list positive integers")
    return values


class Planner:
    """`densenet summary --json` predictions, remembered."""

    def __init__(self, densenet, model, threads):
        self.densenet, self.model, self.threads, self.cache = densenet, model, threads, {}

    def peak(self, resolution, batch, strategy):
        """Predicted peak tensor bytes, or None when the model refuses the input (too small,
        or sizes that overflow)."""
        key = (resolution, batch, strategy)
        if key not in self.cache:
            done = subprocess.run([self.densenet, "summary", "--model", self.model, "--input", f"3x{resolution}x{resolution}",
                                   "--batch", str(batch), "--strategies", strategy, "--threads", str(self.threads), "--json"],
                                  capture_output=True, text=True, cwd=benchlib.ROOT)
            if done.returncode != 0:
                self.cache[key] = None
            else:
                self.cache[key] = json.loads(done.stdout)["strategies"][strategy]["predicted_peak_bytes"]
        return self.cache[key]


def largest_fitting(planner, batch, strategy, budget, step, maximum):
    """Largest multiple of `step` up to `maximum` whose prediction fits `budget` (the peak grows
    with the resolution), with its predicted bytes; (None, None) when none does."""
    def fits(k):
        peak = planner.peak(k * step, batch, strategy)
        return peak is not None and peak <= budget
    low, high = 1, maximum // step
    while low <= high and planner.peak(low * step, batch, strategy) is None:
        low += 1  # below the model's smallest input
    if low > high:
        return None, None
    k = benchlib.largest(fits, low, high)
    return (None, None) if k is None else (k * step, planner.peak(k * step, batch, strategy))


def torch_child(model_name, resolution, batch, memory_efficient, steps, warmup, threads):
    """Runs in a fresh interpreter: one PyTorch configuration, one JSON line."""
    import statistics

    import torch

    model = benchlib.torchvision_densenet(model_name, memory_efficient)
    baseline, peak, times = benchlib.torch_training_steps(model, (3, resolution, resolution), batch, steps, warmup,
                                                          threads)
    print(json.dumps(dict(framework="pytorch", strategy="pytorch " + ("memory_efficient" if memory_efficient else "naive"),
                          model=model_name, resolution=resolution, batch=batch, status="ok", baseline_rss_mib=baseline,
                          peak_rss_mib=peak, peak_minus_baseline_mib=peak - baseline,
                          median_step_s=statistics.median(times), torch=torch.__version__)))


def torch_available():
    try:
        import torch  # noqa: F401
        import torchvision  # noqa: F401
        return True
    except ImportError:
        return False


def cell(r):
    if r is None:
        return "–"
    if r["status"] == "skipped":
        return f"skipped: predicted {size(r['predicted_peak_tensor_mib'] * MIB)}" if r.get("predicted_peak_tensor_mib") \
            else "skipped"
    if r["status"] != "ok":
        return "failed"
    return f"{benchlib.fmt(r.get('peak_rss_mib'), 0)} / {benchlib.fmt(r.get('median_step_s'), 2)} s"


def svg_chart(rows, batches, series, title):
    """Peak RSS (MiB) against resolution, one panel per batch, one line per strategy; a
    configuration not run is drawn as a hollow marker at its predicted tensor peak."""
    pw, h, left, bottom, top, right, legend = 420.0, 420.0, 70.0, 50.0, 50.0, 20.0, 190.0
    w = left + pw * len(batches) + legend
    def value(r):
        if r["status"] == "ok" and r.get("peak_rss_mib") is not None:
            return r["peak_rss_mib"], True
        if r["status"] == "skipped" and r.get("predicted_peak_tensor_mib") is not None:
            return r["predicted_peak_tensor_mib"], False
        return None, False
    values = [value(r)[0] for r in rows if value(r)[0] is not None]
    xs = sorted({r["resolution"] for r in rows})
    if not values or not xs:
        return None
    y1 = max(values) * 1.1
    x0, x1 = xs[0], max(xs[-1], xs[0] + 1)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{int(w)}" height="{int(h)}" font-family="sans-serif" font-size="12">',
           '<rect width="100%" height="100%" fill="white"/>',
           f'<text x="{left}" y="22" font-size="14">{title}</text>']
    for p, batch in enumerate(batches):
        ox = left + p * pw
        def px(v):
            return ox + (v - x0) / (x1 - x0) * (pw - 40)
        def py(v):
            return h - bottom - v / y1 * (h - bottom - top)
        out.append(f'<text x="{ox + pw / 2 - 30}" y="{top - 10}">batch {batch}</text>')
        out.append(f'<line x1="{ox}" y1="{h - bottom}" x2="{ox + pw - 40}" y2="{h - bottom}" stroke="black"/>')
        out.append(f'<line x1="{ox}" y1="{top}" x2="{ox}" y2="{h - bottom}" stroke="black"/>')
        out.append(f'<text x="{ox + pw / 2 - 50}" y="{h - 12}">input side (pixels)</text>')
        for i in range(5):
            v = y1 * i / 4
            out.append(f'<text x="{ox - 6}" y="{py(v) + 4:.1f}" text-anchor="end">{int(v)}</text>')
            out.append(f'<line x1="{ox}" y1="{py(v):.1f}" x2="{ox + pw - 40}" y2="{py(v):.1f}" stroke="#ddd"/>')
        for v in xs:
            out.append(f'<text x="{px(v):.1f}" y="{h - bottom + 16}" text-anchor="middle">{v}</text>')
        for s in series:
            color = COLORS.get(s, "black")
            pts = sorted((r["resolution"],) + value(r) for r in rows
                         if r["strategy"] == s and r["batch"] == batch and value(r)[0] is not None)
            measured = [(x, y) for x, y, ok in pts if ok]
            if len(measured) > 1:
                out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="'
                           + " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in measured) + '"/>')
            for x, y, ok in pts:
                fill = color if ok else "white"
                out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3.5" fill="{fill}" stroke="{color}"/>')
    out.append(f'<text x="14" y="{h / 2 + 60}" transform="rotate(-90 14 {h / 2 + 60})">peak RSS (MiB)</text>')
    lx = left + pw * len(batches)
    for i, s in enumerate(series):
        out.append(f'<text x="{lx}" y="{top + 20 + i * 18}" fill="{COLORS.get(s, "black")}">{s}</text>')
    out.append(f'<text x="{lx}" y="{top + 30 + len(series) * 18}" fill="#555">hollow: not run,</text>')
    out.append(f'<text x="{lx}" y="{top + 46 + len(series) * 18}" fill="#555">predicted tensor peak</text>')
    return "\n".join(out) + "\n</svg>\n"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="densenet121")
    p.add_argument("--resolutions", default="224,320,448,512,768,1024")
    p.add_argument("--batches", default="8,16")
    p.add_argument("--strategies", default=",".join(STRATEGIES))
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--budget", default="80%", help="skip configurations predicted above this (default 80%% of RAM)")
    p.add_argument("--fit-budget", default="4G", help="the budget of the largest-resolution search (default 4G)")
    p.add_argument("--fit-step", type=int, default=32)
    p.add_argument("--fit-max", type=int, default=4096)
    p.add_argument("--no-pytorch", action="store_true")
    p.add_argument("--papers", action="store_true", help="also write Papers/resolution.{md,svg}")
    p.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.steps < 1 or a.warmup < 0 or a.threads < 1 or a.fit_step < 1 or a.fit_max < a.fit_step:
        sys.exit("--steps and --threads must be at least 1, --warmup at least 0, --fit-max at least --fit-step")
    if a.child:
        model, resolution, batch, me = a.child
        torch_child(model, int(resolution), int(batch), me == "1", a.steps, a.warmup, a.threads)
        return
    resolutions, batches = integers(a.resolutions, "--resolutions"), integers(a.batches, "--batches")
    strategies = a.strategies.split(",")
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        sys.exit(f"--strategies: {','.join(unknown)} not among {','.join(STRATEGIES)}")
    budget, fit_budget = parse_size(a.budget, "--budget"), parse_size(a.fit_budget, "--fit-budget")
    densenet = benchlib.build_release("densenet")
    planner = Planner(densenet, a.model, a.threads)
    out = benchlib.results_dir("ablation-resolution")
    with_torch = not a.no_pytorch and torch_available()
    print(f"budget {size(budget)} for running, {size(fit_budget)} for the fit search; "
          f"PyTorch {'measured' if with_torch else 'not measured (torch/torchvision not importable or --no-pytorch)'}",
          flush=True)

    rows = []
    for resolution in resolutions:
        for batch in batches:
            for s in strategies:
                predicted = planner.peak(resolution, batch, s)
                base = dict(framework="ours", model=a.model, strategy=s, resolution=resolution, batch=batch,
                            input=f"3x{resolution}x{resolution}",
                            predicted_peak_tensor_mib=predicted / MIB if predicted is not None else None)
                if predicted is None:
                    rows.append(dict(base, status="failed", reason="densenet summary refused the input"))
                elif predicted > budget:
                    rows.append(dict(base, status="skipped",
                                     reason=f"predicted peak {size(predicted)} exceeds the budget {size(budget)}"))
                else:
                    rec = benchlib.bench_memory(
                        ["--model", a.model, "--input", base["input"], "--batch", str(batch), "--strategies", s,
                         "--steps", str(a.steps), "--warmup", str(a.warmup), "--threads", str(a.threads),
                         "--max-memory", str(budget)],
                        os.path.join(out, f"ours-{resolution}-{batch}-{s}"))[0]
                    rows.append(dict(rec, **{k: v for k, v in base.items() if k not in ("predicted_peak_tensor_mib",)},
                                     predicted_peak_tensor_mib=rec.get("predicted_peak_tensor_mib", base["predicted_peak_tensor_mib"])))
                print({k: rows[-1].get(k) for k in ("strategy", "resolution", "batch", "status", "peak_rss_mib",
                                                    "median_step_s", "predicted_peak_tensor_mib")}, flush=True)
            if not with_torch:
                continue
            for me, ours in ((False, "naive"), (True, "checkpoint")):
                name = "pytorch " + ("memory_efficient" if me else "naive")
                predicted = planner.peak(resolution, batch, ours)
                base = dict(framework="pytorch", model=a.model, strategy=name, resolution=resolution, batch=batch)
                if predicted is None or predicted * 1.25 > budget:
                    rows.append(dict(base, status="skipped", reason=f"our {ours} prediction × 1.25 exceeds the budget",
                                     predicted_peak_tensor_mib=None))
                    continue
                cmd = [sys.executable, os.path.abspath(__file__), "--child", a.model, str(resolution), str(batch),
                       "1" if me else "0", "--steps", str(a.steps), "--warmup", str(a.warmup), "--threads", str(a.threads)]
                print("$", " ".join(cmd), flush=True)
                done = subprocess.run(cmd, capture_output=True, text=True)
                if done.returncode != 0:
                    rows.append(dict(base, status="failed", reason=done.stderr[-300:]))
                else:
                    rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
                print(rows[-1], flush=True)

    fits = []
    for s in strategies:
        for batch in batches:
            side, peak = largest_fitting(planner, batch, s, fit_budget, a.fit_step, a.fit_max)
            fits.append(dict(strategy=s, batch=batch, largest_resolution=side,
                             predicted_peak_mib=peak / MIB if peak is not None else None))
            print(fits[-1], flush=True)

    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(dict(model=a.model, threads=a.threads, budget_bytes=budget, fit_budget_bytes=fit_budget,
                       machine=benchlib.machine_line(), rows=rows, largest_fitting=fits), f, indent=1)
    series = strategies + (["pytorch naive", "pytorch memory_efficient"] if with_torch else [])
    lines = [f"# {a.model} at high resolution ({benchlib.machine_line()}, {a.threads} threads)", "",
             f"Peak RSS (MiB, VmHWM of a fresh process) / median seconds per training step (SGD with momentum), "
             f"{a.steps} measured step(s) after {a.warmup} warm-up. Configurations whose predicted tensor peak "
             f"exceeds {size(budget)} were not run: the cell gives the prediction.", "",
             "| input | batch | " + " | ".join(series) + " |", "|---|---|" + "---|" * len(series)]
    for resolution in resolutions:
        for batch in batches:
            cells = [cell(next((r for r in rows if r["strategy"] == s and r["resolution"] == resolution
                                and r["batch"] == batch), None)) for s in series]
            lines.append(f"| {resolution}x{resolution} | {batch} | " + " | ".join(cells) + " |")
    lines += ["", "Predicted peak of tensor memory (MiB, the planner; bench-memory measures it too):", "",
              "| input | batch | " + " | ".join(strategies) + " |", "|---|---|" + "---|" * len(strategies)]
    for resolution in resolutions:
        for batch in batches:
            cells = []
            for s in strategies:
                r = next((r for r in rows if r["strategy"] == s and r["resolution"] == resolution and r["batch"] == batch), None)
                pred = benchlib.fmt(r.get("predicted_peak_tensor_mib"), 0) if r else "–"
                meas = r.get("peak_tensor_mib") if r else None
                cells.append(pred + (f" (measured {meas:.0f})" if meas is not None else ""))
            lines.append(f"| {resolution}x{resolution} | {batch} | " + " | ".join(cells) + " |")
    lines += ["", f"Largest square input (multiples of {a.fit_step} px, up to {a.fit_max}) whose predicted tensor peak "
              f"fits {size(fit_budget)}:", "",
              "| strategy | " + " | ".join(f"batch {b}" for b in batches) + " |", "|---|" + "---|" * len(batches)]
    for s in strategies:
        cells = []
        for b in batches:
            fit = next(f for f in fits if f["strategy"] == s and f["batch"] == b)
            cells.append("none" if fit["largest_resolution"] is None else
                         f"{fit['largest_resolution']} px ({fit['predicted_peak_mib']:.0f} MiB)")
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    if not with_torch:
        lines += ["", "PyTorch not measured: torch and torchvision are not importable by this Python."]
    lines += ["", "Chart: resolution.svg"]
    report = "\n".join(lines) + "\n"
    benchlib.write(os.path.join(out, "report.md"), report)
    svg = svg_chart([r for r in rows if r["status"] in ("ok", "skipped")], batches, series,
                    f"{a.model}: peak RSS against input side")
    if svg:
        benchlib.write(os.path.join(out, "resolution.svg"), svg)
    if a.papers:
        benchlib.write(os.path.join(benchlib.ROOT, "Papers", "resolution.md"), report)
        if svg:
            shutil.copy(os.path.join(out, "resolution.svg"), os.path.join(benchlib.ROOT, "Papers", "resolution.svg"))


if __name__ == "__main__":
    main()
