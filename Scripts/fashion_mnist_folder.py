#!/usr/bin/env python3
"""Writes Fashion-MNIST images as an image folder in torchvision's ImageFolder layout
(DIR/train/<class>/*.png and DIR/val/<class>/*.png), for trying `densenet train --data folder:DIR`
on real files. Pillow writes the files (pip install pillow: for this script only, never a build or
test dependency); the pixels are the IDX files' own (Debian's dataset-fashion-mnist package).

  Scripts/fashion_mnist_folder.py DIR [--train 2000] [--val 1000] [--classes 0,1,...,9] [--format png|jpeg]
"""
import argparse
import gzip
import os
import struct

NAMES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, count = struct.unpack(">II", data[:8])
    if magic == 2049:
        return list(data[8:8 + count])
    rows, cols = struct.unpack(">II", data[8:16])
    size = rows * cols
    return [data[16 + i * size:16 + (i + 1) * size] for i in range(count)], rows, cols


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dir")
    p.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--train", type=int, default=2000, help="first N training images (of the chosen classes)")
    p.add_argument("--val", type=int, default=1000, help="first N test images (of the chosen classes)")
    p.add_argument("--classes", default="0,1,2,3,4,5,6,7,8,9")
    p.add_argument("--format", choices=["png", "jpeg"], default="png")
    a = p.parse_args()
    from PIL import Image
    keep = [int(c) for c in a.classes.split(",")]
    for split, prefix, limit in [("train", "train", a.train), ("val", "t10k", a.val)]:
        (images, rows, cols) = idx(os.path.join(a.data_dir, f"{prefix}-images-idx3-ubyte.gz"))
        labels = idx(os.path.join(a.data_dir, f"{prefix}-labels-idx1-ubyte.gz"))
        written = 0
        for i, (pixels, label) in enumerate(zip(images, labels)):
            if written == limit:
                break
            if label not in keep:
                continue
            folder = os.path.join(a.dir, split, f"{label}-{NAMES[label]}")
            os.makedirs(folder, exist_ok=True)
            name = os.path.join(folder, f"{i:05d}.{'png' if a.format == 'png' else 'jpg'}")
            options = {"quality": 90} if a.format == "jpeg" else {}
            Image.frombytes("L", (cols, rows), bytes(pixels)).save(name, **options)
            written += 1
        print(f"{split}: {written} images in {len(keep)} classes under {os.path.join(a.dir, split)}")


if __name__ == "__main__":
    main()
