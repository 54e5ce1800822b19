"""Shared helpers for the ablation scripts: build and run bench-memory, collect its records."""
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def results_dir(name):
    path = os.path.join(ROOT, "results", f"{name}-{time.strftime('%Y%m%d-%H%M%S')}")
    os.makedirs(path, exist_ok=True)
    return path


def build_release(product="bench-memory"):
    """The release build of `product`; with DENSENET_BIN_DIR set (e.g. .build/debug, for a quick
    check of a script), the binary already in that folder, unbuilt."""
    prebuilt = os.environ.get("DENSENET_BIN_DIR")
    if prebuilt:
        path = os.path.join(ROOT, prebuilt, product) if not os.path.isabs(prebuilt) else os.path.join(prebuilt, product)
        if not os.access(path, os.X_OK):
            sys.exit(f"DENSENET_BIN_DIR={prebuilt}: {path} is not an executable; build it or unset the variable")
        return path
    subprocess.run(["swift", "build", "-c", "release", "--product", product], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    return os.path.join(ROOT, ".build", "release", product)


def bench_memory(args, out_dir):
    """Runs bench-memory with `args` into `out_dir` and returns its records."""
    exe = build_release()
    cmd = [exe] + args + ["--out", out_dir]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)
    with open(os.path.join(out_dir, "results.json")) as f:
        return json.load(f)


def fmt(x, digits=1):
    return "–" if x is None else f"{x:.{digits}f}"


def machine_line():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPUs"


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit("benchlib.py is a helper module; run one of the ablation scripts")
