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


def torchvision_densenet(name, memory_efficient, classes=10):
    """The torchvision DenseNet for one of our zoo names: densenet121/161/169/201, or
    densenet-bc-L-k with the CIFAR stem (one 3x3 conv, no BN or pooling before the first block)."""
    import torch.nn as nn
    import torchvision
    if name.startswith("densenet-bc-"):
        depth, growth = (int(v) for v in name.split("-")[2:4])
        n = (depth - 4) // 6
        model = torchvision.models.DenseNet(growth_rate=growth, block_config=(n, n, n), num_init_features=2 * growth,
                                            bn_size=4, num_classes=classes, memory_efficient=memory_efficient)
        model.features.conv0 = nn.Conv2d(3, 2 * growth, kernel_size=3, padding=1, bias=False)
        model.features.norm0 = nn.Identity()
        model.features.relu0 = nn.Identity()
        model.features.pool0 = nn.Identity()
        return model
    return getattr(torchvision.models, name)(memory_efficient=memory_efficient)


def torch_training_steps(model, input_shape, batch, steps, warmup, threads, classes=10):
    """Runs in a fresh interpreter: `warmup + steps` training steps of `model` as bench-memory's
    (SGD momentum 0.9, weight decay 1e-4, cross-entropy, synthetic data); returns the baseline
    and peak RSS (MiB, VmRSS before and VmHWM after, the peak reset first) and the measured
    step times (s)."""
    import time

    import torch
    import torch.nn as nn

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(batch, *input_shape)
    y = torch.randint(0, classes, (batch,))
    loss_fn = nn.CrossEntropyLoss()

    def rss(field):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
        return 0.0

    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    baseline = rss("VmRSS")
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return baseline, rss("VmHWM"), times


def largest(fits, low, high):
    """Largest x in [low, high] with fits(x), assuming fits is monotone (True then False); None
    when not even `low` fits. Binary search: O(log(high - low)) calls of `fits`."""
    if not fits(low):
        return None
    while high - low > 1:
        mid = (low + high) // 2
        if fits(mid):
            low = mid
        else:
            high = mid
    return low if not fits(high) else high
