#!/usr/bin/env python3
"""d2l "Densely Connected Networks", exercise 5: apply the DenseNet idea to an MLP.

Trains the DenseNet-style MLP of the zoo (`dense-mlp`: dense fully connected layers, each
seeing all earlier features; 7,691 parameters) and a plain MLP of similar size and the same
depth (`mlp`: 10 -> 48 -> 48 -> 48 -> 48 -> 1, 7,633 parameters) the same way on scikit-learn's
diabetes regression set (442 x 10), and reports their test mean squared error beside an
ordinary least-squares baseline.

    Scripts/exercise5_dense_mlp.py                      train both (5 seeds, 50 and 200 epochs; about a minute)
    Scripts/exercise5_dense_mlp.py --dry-run            export the data and print the commands only
    Scripts/exercise5_dense_mlp.py --epochs 100 --batch 16 --extra "--weight-decay 0.01"

Data: the raw table shipped in scikit-learn's wheel (sklearn/datasets/data/diabetes_data_raw.csv.gz
and diabetes_target.csv.gz), or `load_diabetes(scaled=False)` when those files are not there;
`pip install scikit-learn` first if it is missing. Rows are shuffled with a fixed seed and split
80/20; features and target are standardised with the training rows' mean and standard deviation,
so the MSE the command line reports is in units of the target's variance (the report converts
it back). Files: diabetes-train.csv and diabetes-test.csv, a header row, the target last.

Uses `densenet train --data csv:TRAIN.csv --test-data csv:TEST.csv` (numeric table, header, last
column the regression target, mean squared error loss for a model with one output; `test_mse` in
the run's metrics.json) and the zoo models `dense-mlp` and `mlp`. Each model is trained with
several seeds for each budget; the report gives mean ± standard deviation of the test MSE.
"""
import argparse
import datetime
import gzip
import json
import os
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


def mean_std(values):
    m = sum(values) / len(values)
    return m, (sum((v - m) ** 2 for v in values) / max(len(values) - 1, 1)) ** 0.5


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", default="50,200", help="comma-separated budgets; every model and seed is trained for each")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seeds", default="0,1,2,3,4", help="weight-initialisation and shuffle seeds (the data split is fixed)")
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--lr", default="0.001")
    parser.add_argument("--strategy", default="naive")
    parser.add_argument("--models", default="dense-mlp,mlp", help="zoo names, comma-separated")
    parser.add_argument("--extra", default="", help="more arguments for every `densenet train`, e.g. \"--weight-decay 0.01\"")
    parser.add_argument("--out", default=None, help="default results/exercise5-<time>")
    parser.add_argument("--densenet", default=None,
                        help="the command line to run (default: build and use .build/release/densenet)")
    parser.add_argument("--dry-run", action="store_true", help="export the data and print the commands only")
    args = parser.parse_args()

    os.chdir(ROOT)
    out = args.out or os.path.join("results", "exercise5-" + datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    os.makedirs(out, exist_ok=True)
    if args.densenet is None:
        subprocess.run(["swift", "build", "-c", "release", "--product", "densenet"], check=True, stdout=sys.stderr)
        args.densenet = os.path.join(subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], check=True,
                                                    capture_output=True, text=True).stdout.strip(), "densenet")
    ensure_sklearn()
    data = export(out)
    baseline = least_squares_mse(data)
    machine = "unknown CPU"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            machine = line.split(":", 1)[1].strip()
            break
    machine += f" ({os.cpu_count()} cores)"
    print(f"exercise5: {data['train_rows']} train / {data['test_rows']} test rows from {data['source']}; "
          f"least squares test MSE {baseline:.4f} (standardised)", file=sys.stderr)

    models = [m for m in args.models.split(",") if m]
    budgets = [int(e) for e in args.epochs.split(",") if e]
    seeds = [int(x) for x in args.seeds.split(",") if x]
    swift = shlex.split(args.densenet)
    summaries, runs = {}, []
    for m in models:
        summaries[m] = swift + ["summary", "--model", m, "--json"]
        for epochs in budgets:
            for seed in seeds:
                folder = os.path.join(out, f"train-{m}-e{epochs}-s{seed}")
                runs.append((m, epochs, seed, folder, swift + [
                    "train", "--model", m, "--data", "csv:" + data["paths"]["train"],
                    "--test-data", "csv:" + data["paths"]["test"], "--epochs", str(epochs), "--batch", str(args.batch),
                    "--seed", str(seed), "--optimizer", args.optimizer, "--lr", args.lr, "--strategy", args.strategy,
                    "--out", folder] + shlex.split(args.extra)))
    with open(os.path.join(out, "commands.sh"), "w") as f:
        for c in list(summaries.values()) + [r[4] for r in runs]:
            f.write(shlex.join(c) + "\n")
    if args.dry_run:
        print(open(os.path.join(out, "commands.sh")).read(), end="")
        print(f"exercise5: data in {out} (dry run: nothing trained)")
        return

    parameters = {}
    for m in models:
        summary = subprocess.run(summaries[m], check=True, capture_output=True, text=True).stdout
        open(os.path.join(out, f"summary-{m}.json"), "w").write(summary)
        parameters[m] = json.loads(summary)["params_trainable"]
    results = {}
    log_path = os.path.join(out, "train.log")
    with open(log_path, "w") as log:
        for m, epochs, seed, folder, command in runs:
            print(f"exercise5: {shlex.join(command)}", file=sys.stderr)
            process = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            log.write(process.stdout)
            if process.returncode != 0:
                sys.exit(f"exercise5: training {m} failed (exit {process.returncode}); see {log_path}")
            metrics = json.load(open(os.path.join(folder, "metrics.json")))
            results.setdefault((m, epochs), []).append(
                {"seed": seed, "test_mse": metrics["test_mse"], "train_mse": metrics["train_mse"],
                 "seconds": float(metrics["run"]["seconds"])})

    # Standardised MSE → original units (× σ²) and R² on the test rows.
    variance = data["target_std"] ** 2
    r2 = lambda mse: 1 - mse * variance / data["test_target_variance"]
    lines = ["# Exercise 5: a DenseNet-style MLP on scikit-learn's diabetes set", "",
             f"Machine: {machine}. {data['train_rows']} training / {data['test_rows']} test rows (split seed {data['seed']}), "
             f"from {data['source']}, features and target standardised with the training rows' statistics.",
             f"Every run: batch {args.batch}, {args.optimizer} lr {args.lr} (cosine), strategy {args.strategy}, extra `{args.extra}`; "
             f"seeds {args.seeds} (initialisation and shuffles). Mean ± standard deviation over the seeds.", "",
             "| model | parameters | epochs | test MSE (standardised) | test MSE | test RMSE | R² | train MSE (standardised) | seconds per run |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    report = []
    for (m, epochs), rs in results.items():
        test_m, test_s = mean_std([r["test_mse"] for r in rs])
        train_m, train_s = mean_std([r["train_mse"] for r in rs])
        seconds = sum(r["seconds"] for r in rs) / len(rs)
        lines.append(f"| {m} | {parameters[m]:,} | {epochs} | {test_m:.4f} ± {test_s:.4f} | {test_m * variance:.0f} | "
                     f"{(test_m * variance) ** 0.5:.1f} | {r2(test_m):.3f} | {train_m:.4f} ± {train_s:.4f} | {seconds:.2f} |")
        report.append({"model": m, "parameters": parameters[m], "epochs": epochs, "runs": rs,
                       "test_mse_mean": test_m, "test_mse_std": test_s, "train_mse_mean": train_m, "r2": r2(test_m)})
    lines.append(f"| least squares (baseline) | 11 | - | {baseline:.4f} | {baseline * variance:.0f} | {(baseline * variance) ** 0.5:.1f} | "
                 f"{r2(baseline):.3f} | - | - |")
    text = "\n".join(lines) + "\n"
    open(os.path.join(out, "report.md"), "w").write(text)
    json.dump({"results": report, "baseline_standardised_mse": baseline, "target_std": data["target_std"],
               "test_target_variance": data["test_target_variance"]}, open(os.path.join(out, "results.json"), "w"), indent=2)
    print(text)
    print(f"exercise5: results in {out} (report.md, results.json, commands.sh, train.log)")


if __name__ == "__main__":
    main()
