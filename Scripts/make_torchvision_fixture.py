#!/usr/bin/env python3
"""Writes Tests/ImageTests/Fixtures/torchvision-small-1000.safetensors: a state_dict in
torchvision's DenseNet names and shapes (growth 4, blocks (2, 2), 8 initial features, bn_size 2,
ImageNet stem, 1000 classes), written by the `safetensors` Python package as
`safetensors.torch.save_file(model.state_dict(), ...)` writes one (metadata format "pt",
`num_batches_tracked` as int64 scalars), with seeded values, and expected.json-style probes of a
few values, so the Swift loader is tested against a file it did not write. numpy and safetensors
come from PyPI for this script only; the fixture is committed.

  Scripts/make_torchvision_fixture.py
"""
import json
import os

import numpy as np
from safetensors.numpy import save_file

OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "Tests", "ImageTests", "Fixtures")


def state_dict(growth=4, blocks=(2, 2), init=8, bn_size=2, classes=1000, rng=np.random.default_rng(7)):
    """torchvision.models.DenseNet's state_dict layout, written out by its naming rules."""
    tensors = {}

    def conv(name, out_c, in_c, k):
        tensors[name + ".weight"] = rng.standard_normal((out_c, in_c, k, k)).astype(np.float32)

    def bn(name, c):
        tensors[name + ".weight"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
        tensors[name + ".bias"] = rng.standard_normal(c).astype(np.float32)
        tensors[name + ".running_mean"] = rng.standard_normal(c).astype(np.float32)
        tensors[name + ".running_var"] = rng.uniform(0.5, 2.0, c).astype(np.float32)
        tensors[name + ".num_batches_tracked"] = np.array(12, dtype=np.int64)

    conv("features.conv0", init, 3, 7)
    bn("features.norm0", init)
    width = init
    for b, layers in enumerate(blocks, start=1):
        for j in range(1, layers + 1):
            prefix = f"features.denseblock{b}.denselayer{j}"
            bn(prefix + ".norm1", width)
            conv(prefix + ".conv1", bn_size * growth, width, 1)
            bn(prefix + ".norm2", bn_size * growth)
            conv(prefix + ".conv2", growth, bn_size * growth, 3)
            width += growth
        if b < len(blocks):
            bn(f"features.transition{b}.norm", width)
            conv(f"features.transition{b}.conv", width // 2, width, 1)
            width //= 2
    bn("features.norm5", width)
    tensors["classifier.weight"] = rng.standard_normal((classes, width)).astype(np.float32)
    tensors["classifier.bias"] = rng.standard_normal(classes).astype(np.float32)
    return tensors


def main():
    tensors = state_dict()
    os.makedirs(OUT, exist_ok=True)
    save_file(tensors, os.path.join(OUT, "torchvision-small-1000.safetensors"), metadata={"format": "pt"})
    probes = {name: [float(v) for v in tensors[name].reshape(-1)[:4]]
              for name in ["features.conv0.weight", "features.denseblock2.denselayer2.conv2.weight",
                           "features.norm5.running_var", "features.transition1.conv.weight"]}
    with open(os.path.join(OUT, "torchvision-small-1000.json"), "w") as f:
        json.dump(probes, f, indent=1, sort_keys=True)
    print(f"{len(tensors)} tensors written to {OUT}")


if __name__ == "__main__":
    main()
