#!/usr/bin/env python3
"""Cross-check densenet-swift against PyTorch/torchvision: the same weights and the same input
give the same logits (max |difference| <= --tolerance, default 1e-4), in evaluation and in
training mode (batch statistics).

Needs `pip install torch torchvision safetensors`; never used by the build or the tests.

For each model it
  1. trains the model for a couple of steps with `densenet train` on a few Fashion-MNIST images
     (so weights and BatchNorm running statistics are not their initial values) and takes the
     run's model.safetensors;
  2. builds the same network with torchvision's DenseNet class and loads that file with
     `load_state_dict(safetensors.torch.load_file(path), strict=True)`: this also checks that
     a file without `num_batches_tracked` loads strictly (PyTorch fills it in);
  3. writes a random input (N, C, H, W) to input.safetensors, runs
     `densenet evaluate --checkpoint ... --input-tensor input.safetensors --dump-logits ...
     --mode eval|train`, and compares with the PyTorch model's logits in the same mode.

Models: densenet121 (torchvision's, with Fashion-MNIST's 1 input channel and 10 classes:
1x224x224) and densenet-bc-100-12 (the CIFAR DenseNet-BC: torchvision's DenseNet class with
growth 12, blocks (16, 16, 16), 24 stem channels, bn_size 4, the stem replaced by one 3x3
convolution; 1x32x32). Both name the final BatchNorm `features.norm5` whatever the number
of blocks, so our file loads into torchvision's network strictly, as it is.

Usage: python3 Scripts/pytorch_crosscheck.py [--densenet .build/release/densenet]
       [--models densenet121,densenet-bc-100-12] [--batch 2] [--tolerance 1e-4] [--keep DIR]
"""
import argparse
import copy
import os
import subprocess
import sys
import tempfile

try:
    import torch
    import torch.nn as nn
    import torchvision
    from safetensors.torch import load_file, save_file
except ImportError as error:  # pragma: no cover
    sys.exit(f"{error}: run `pip install torch torchvision safetensors` first")


def torchvision_model(name, channels, classes):
    """The torchvision network matching densenet-swift's `name` (for 1-channel input)."""
    if name == "densenet121":
        model = torchvision.models.densenet121(weights=None, num_classes=classes)
        model.features.conv0 = nn.Conv2d(channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        return model, (channels, 224, 224)
    if name.startswith("densenet-bc-"):
        depth, k = (int(x) for x in name[len("densenet-bc-"):].split("-"))
        n = (depth - 4) // 6
        model = torchvision.models.DenseNet(growth_rate=k, block_config=(n, n, n), num_init_features=2 * k,
                                            bn_size=4, num_classes=classes)
        model.features.conv0 = nn.Conv2d(channels, 2 * k, kernel_size=3, stride=1, padding=1, bias=False)
        del model.features.norm0, model.features.relu0, model.features.pool0
        return model, (channels, 32, 32)
    raise SystemExit(f"no torchvision counterpart known for {name}")


def run(command):
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True)


def check(name, args, work):
    out = os.path.join(work, name)
    # 1. Weights and running statistics after two training steps.
    run([args.densenet, "train", "--model", name, "--limit", "4", "--test-limit", "2", "--batch", "2",
         "--epochs", "1", "--lr", "0.01", "--threads", str(args.threads), "--out", out])
    weights = os.path.join(out, "model.safetensors")

    # 2. The same weights in torchvision's network, strictly.
    model, shape = torchvision_model(name, channels=1, classes=10)
    state = load_file(weights)
    missing = [k for k in model.state_dict() if k not in state]
    assert all(k.endswith("num_batches_tracked") for k in missing), missing
    model.load_state_dict(state, strict=True)  # num_batches_tracked absent: filled in by PyTorch
    print(f"{name}: strict load_state_dict of {weights} ({len(state)} tensors, "
          f"{len(missing)} num_batches_tracked filled in by PyTorch) OK")

    # 3. The same input through both, in both modes.
    torch.manual_seed(0)
    x = torch.randn(args.batch, *shape)
    input_path = os.path.join(work, f"{name}-input.safetensors")
    save_file({"input": x.contiguous()}, input_path)
    worst = 0.0
    for mode in ("eval", "train"):
        logits_path = os.path.join(work, f"{name}-{mode}-logits.safetensors")
        run([args.densenet, "evaluate", "--checkpoint", weights, "--input-tensor", input_path,
             "--dump-logits", logits_path, "--mode", mode, "--threads", str(args.threads)])
        reference = copy.deepcopy(model)
        reference.train(mode == "train")
        with torch.no_grad():
            expected = reference(x)
        got = load_file(logits_path)["logits"]
        difference = (got - expected).abs().max().item()
        worst = max(worst, difference)
        verdict = "OK" if difference <= args.tolerance else "FAIL"
        print(f"{name} {mode} mode: logits {tuple(got.shape)}, max |swift - torch| = {difference:.3g} "
              f"(scale {expected.abs().max().item():.3g}) {verdict}", flush=True)
    return worst <= args.tolerance


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--densenet", default=".build/release/densenet")
    parser.add_argument("--models", default="densenet121,densenet-bc-100-12")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tolerance", type=float, default=1e-4)
    parser.add_argument("--keep", help="work folder to keep (default: a temporary one)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = args.keep or tempfile.mkdtemp(prefix="crosscheck-")
    os.makedirs(work, exist_ok=True)
    results = {name: check(name, args, work) for name in args.models.split(",")}
    passed = sum(results.values())
    print(f"{passed} passed, {len(results) - passed} failed")
    sys.exit(0 if passed == len(results) else 1)


if __name__ == "__main__":
    main()
