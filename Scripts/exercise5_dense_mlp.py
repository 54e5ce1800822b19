#!/usr/bin/env python3
"""d2l "Densely Connected Networks", exercise 5: apply the DenseNet idea to an MLP.

Trains the DenseNet-style MLP of the zoo (`dense-mlp`: dense fully connected layers, each
seeing all earlier features; 7,691 parameters) and a plain MLP of similar size and the same
depth (`mlp`: 10 -> 48 -> 48 -> 48 -> 48 -> 1, 7,633 parameters) the same way on scikit-learn's
diabetes regression set (442 x 10), and reports their test mean squared error beside an
ordinary least-squares baseline.

    Scripts/exercise5_dense_mlp.py                      train both, write results/exercise5-<time>/
    Scripts/exercise5_dense_mlp.py --dry-run            export the data and print the commands only
    Scripts/exercise5_dense_mlp.py --epochs 300 --batch 16 --extra "--lr 0.01"

Data: the raw table shipped in scikit-learn's wheel (sklearn/datasets/data/diabetes_data_raw.csv.gz
and diabetes_target.csv.gz), or `load_diabetes(scaled=False)` when those files are not there;
`pip install scikit-learn` first if it is missing. Rows are shuffled with a fixed seed and split
80/20; features and target are standardised with the training rows' mean and standard deviation,
so the MSE the command line reports is in units of the target's variance (the report converts
it back). Files: diabetes-train.csv and diabetes-test.csv, a header row, the target last.

Command-line support this needs (see the report of the models branch):
`densenet train --data csv:PATH --test-data csv:PATH` (numeric table, header, last column the
regression target, mean squared error loss for a model with one output) and the zoo model `mlp`.
"""
import argparse
import datetime
import glob
import gzip
import json
import os
import re
import shlex
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]


def ensure_sklearn():
    try:
        import sklearn  # noqa: F401
        return
    except ImportError:
        pass
    print("exercise5: installing scikit-learn (pip)", file=sys.stderr)
    command = [sys.executable, "-m", "pip", "install", "--quiet", "scikit-learn"]
    if subprocess.run(command).returncode != 0:
        # Debian's system Python refuses pip without this (PEP 668); a user install is harmless.
        subprocess.run(command + ["--user", "--break-system-packages"], check=True)
    import importlib
    importlib.invalidate_caches()


def read_space_table(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        return [[float(v) for v in line.split()] for line in f if line.strip()]


def load_diabetes_raw():
    """(rows of 10 features, targets) in original units, and where they came from."""
    import sklearn.datasets
    data = os.path.join(os.path.dirname(sklearn.datasets.__file__), "data")
    for suffix in (".csv.gz", ".csv"):
        x_path = os.path.join(data, "diabetes_data_raw" + suffix)
        y_path = os.path.join(data, "diabetes_target" + suffix)
        if os.path.exists(x_path) and os.path.exists(y_path):
            x, y = read_space_table(x_path), [r[0] for r in read_space_table(y_path)]
            return x, y, x_path
    bunch = sklearn.datasets.load_diabetes(scaled=False)
    return bunch.data.tolist(), bunch.target.tolist(), "sklearn.datasets.load_diabetes(scaled=False)"


def export(out, seed=0, test_fraction=0.2):
    """Writes the shuffled, standardised train/test CSVs; returns paths and the target scaling."""
    import numpy as np
    x, y, source = load_diabetes_raw()
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    assert x.shape == (442, 10) and y.shape == (442,), f"unexpected diabetes shapes {x.shape} {y.shape}"
    order = np.random.default_rng(seed).permutation(len(y))
    x, y = x[order], y[order]
    n_test = int(round(test_fraction * len(y)))
    n_train = len(y) - n_test
    mean, std = x[:n_train].mean(0), x[:n_train].std(0)
    y_mean, y_std = y[:n_train].mean(), y[:n_train].std()
    xs, ys = (x - mean) / std, (y - y_mean) / y_std
    paths = {}
    for name, rows in (("train", slice(0, n_train)), ("test", slice(n_train, None))):
        path = os.path.join(out, f"diabetes-{name}.csv")
        with open(path, "w") as f:
            f.write(",".join(FEATURES + ["target"]) + "\n")
            for features, target in zip(xs[rows], ys[rows]):
                f.write(",".join(f"{v:.8g}" for v in list(features) + [target]) + "\n")
        paths[name] = path
    return {
        "source": source, "seed": seed, "train_rows": n_train, "test_rows": n_test,
        "target_mean": y_mean, "target_std": y_std, "test_target_variance": float(y[n_train:].var()),
        "paths": paths, "x_train": xs[:n_train], "y_train": ys[:n_train], "x_test": xs[n_train:], "y_test": ys[n_train:],
    }


def least_squares_mse(data):
    """Ordinary least squares on the same split, test MSE in standardised units: the baseline."""
    import numpy as np
    a = np.hstack([data["x_train"], np.ones((len(data["y_train"]), 1))])
    w, *_ = np.linalg.lstsq(a, data["y_train"], rcond=None)
    prediction = np.hstack([data["x_test"], np.ones((len(data["y_test"]), 1))]) @ w
    return float(((prediction - data["y_test"]) ** 2).mean())


def find_number(obj, keys):
    """The last numeric value under a key in `keys` (lower-case, '_' removed), searched depth-first."""
    found = None
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k.lower().replace("_", "") in keys and isinstance(v, (int, float)):
                found = v
            else:
                inner = find_number(v, keys)
                found = inner if inner is not None else found
    elif isinstance(obj, list):
        for v in obj:
            inner = find_number(v, keys)
            found = inner if inner is not None else found
    return found


def test_mse(out_dir, log_path):
    """Test MSE from a JSON file the train command wrote, else the last 'test mse'/'test loss' in its log."""
    for path in sorted(glob.glob(os.path.join(out_dir, "**", "*.json"), recursive=True)):
        try:
            value = find_number(json.load(open(path)), {"testmse", "testloss", "mse"})
        except (OSError, ValueError):
            continue
        if value is not None:
            return float(value), os.path.relpath(path, os.path.dirname(out_dir))
    log = open(log_path, errors="replace").read()
    hits = re.findall(r"test[ _-]*(?:mse|loss)[^0-9\n-]{0,10}(-?[0-9]*\.?[0-9]+(?:e-?[0-9]+)?)", log, re.IGNORECASE)
    if hits:
        return float(hits[-1]), os.path.basename(log_path)
    return None, "(no test MSE found)"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--strategy", default="naive")
    parser.add_argument("--models", default="dense-mlp,mlp", help="zoo names, comma-separated")
    parser.add_argument("--extra", default="", help="more arguments for every `densenet train`")
    parser.add_argument("--out", default=None, help="default results/exercise5-<time>")
    parser.add_argument("--densenet", default="swift run -c release densenet",
                        help="the command line to run (e.g. a built .build/release/densenet)")
    parser.add_argument("--dry-run", action="store_true", help="export the data and print the commands only")
    args = parser.parse_args()

    os.chdir(ROOT)
    out = args.out or os.path.join("results", "exercise5-" + datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    os.makedirs(out, exist_ok=True)
    ensure_sklearn()
    data = export(out)
    baseline = least_squares_mse(data)
    print(f"exercise5: {data['train_rows']} train / {data['test_rows']} test rows from {data['source']}; "
          f"least squares test MSE {baseline:.4f} (standardised)", file=sys.stderr)

    models = [m for m in args.models.split(",") if m]
    swift = shlex.split(args.densenet)
    commands = {}
    for m in models:
        commands[m] = {
            "summary": swift + ["summary", "--model", m, "--json"],
            "train": swift + ["train", "--model", m, "--data", "csv:" + data["paths"]["train"],
                              "--test-data", "csv:" + data["paths"]["test"], "--epochs", str(args.epochs),
                              "--batch", str(args.batch), "--strategy", args.strategy,
                              "--out", os.path.join(out, "train-" + m)] + shlex.split(args.extra),
        }
    if args.dry_run:
        for m in models:
            for c in commands[m].values():
                print(shlex.join(c))
        print(f"exercise5: data in {out} (dry run: nothing trained)")
        return

    rows = []
    for m in models:
        summary = subprocess.run(commands[m]["summary"], check=True, capture_output=True, text=True).stdout
        open(os.path.join(out, f"summary-{m}.json"), "w").write(summary)
        parameters = find_number(json.loads(summary), {"trainableparameters", "trainable"})
        log_path = os.path.join(out, f"train-{m}.log")
        print(f"exercise5: training {m}: {shlex.join(commands[m]['train'])}", file=sys.stderr)
        started = datetime.datetime.now()
        with open(log_path, "w") as log:
            process = subprocess.Popen(commands[m]["train"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for line in process.stdout:
                sys.stderr.write(line)
                log.write(line)
            if process.wait() != 0:
                sys.exit(f"exercise5: training {m} failed (exit {process.returncode}); see {log_path}")
        seconds = (datetime.datetime.now() - started).total_seconds()
        mse, source = test_mse(os.path.join(out, "train-" + m), log_path)
        rows.append({"model": m, "parameters": parameters, "test_mse": mse, "seconds": round(seconds, 1), "from": source})

    # Standardised MSE → original units (× σ²) and R² on the test rows.
    variance = data["target_std"] ** 2
    def described(mse):
        if mse is None:
            return {"mse": None, "rmse": None, "r2": None}
        original = mse * variance
        return {"mse": original, "rmse": original ** 0.5, "r2": 1 - original / data["test_target_variance"]}
    lines = ["# Exercise 5: a DenseNet-style MLP on scikit-learn's diabetes set", "",
             f"{data['train_rows']} training / {data['test_rows']} test rows (seed {data['seed']}), from {data['source']}; "
             f"{args.epochs} epochs, batch {args.batch}, strategy {args.strategy}, extra `{args.extra}`.", "",
             "| model | parameters | test MSE (standardised) | test MSE | RMSE | R² | seconds | from |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows + [{"model": "least squares (baseline)", "parameters": 11, "test_mse": baseline, "seconds": "-", "from": "numpy"}]:
        d = described(r["test_mse"])
        fmt = lambda v, f: (f % v) if v is not None else "?"
        lines.append(f"| {r['model']} | {r['parameters'] if r['parameters'] is not None else '?'} | "
                     f"{fmt(r['test_mse'], '%.4f')} | {fmt(d['mse'], '%.1f')} | {fmt(d['rmse'], '%.2f')} | "
                     f"{fmt(d['r2'], '%.3f')} | {r['seconds']} | {r['from']} |")
        r.update(d)
    report = "\n".join(lines) + "\n"
    open(os.path.join(out, "report.md"), "w").write(report)
    json.dump({"rows": rows, "baseline_standardised_mse": baseline,
               "target_std": data["target_std"], "test_target_variance": data["test_target_variance"]},
              open(os.path.join(out, "results.json"), "w"), indent=2)
    print(report)
    print(f"exercise5: results in {out} (report.md, results.json, logs)")


if __name__ == "__main__":
    main()
