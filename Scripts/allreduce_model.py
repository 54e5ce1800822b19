#!/usr/bin/env python3
"""Data-parallel scaling on paper: the ring all-reduce time of a model's gradients and the
predicted scaling efficiency at several rank counts and network speeds, with and without
overlap of communication and the backward pass.

Model (Patarasuk & Yuan 2009; Thakur et al. 2005): a ring all-reduce of S bytes over p ranks
sends 2(p-1)/p * S bytes per rank in 2(p-1) steps, so

    T_comm(p) = 2(p-1) * alpha + 2(p-1)/p * S / bandwidth

Synchronised batch norm adds, per batch-norm layer and step, three small all-reduces (sums and
squares in forward, the two gradient sums in backward: Sources/Autograd/
BatchNormalization+Synchronized.swift), latency-bound; Open MPI reduces small messages by
recursive doubling, log2(p) steps:

    T_bn(p) = 3 * n_bn * log2(p) * alpha           (blocking, not overlapped)

Weak scaling (each rank keeps the per-rank batch whose step time T_step was measured):
    without overlap  efficiency = T_step / (T_step + T_comm)
    with overlap     the buckets of all but the last finished gradients travel during the
                     backward pass (about 2/3 of T_step, as PyTorch DDP assumes), so only what
                     does not fit under it is exposed:
                     efficiency = T_step / (T_step + T_bn + max(T_comm - f_backward * T_step, T_last))
                     where T_last is the all-reduce of the last bucket (25 MiB cap).

  Scripts/allreduce_model.py --model densenet-bc-100-12:3.08e6:1.0:99 --model densenet121:31.9e6:0.77:121
      (name:gradient bytes:measured seconds per step:batch-norm layers)
"""
import argparse
import math


def ring_seconds(size_bytes, ranks, bandwidth_bytes, alpha):
    if ranks < 2:
        return 0.0
    return 2 * (ranks - 1) * alpha + 2 * (ranks - 1) / ranks * size_bytes / bandwidth_bytes


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", required=True, help="name:gradient_bytes:step_seconds:bn_layers")
    p.add_argument("--ranks", default="2,8,64")
    p.add_argument("--gbits", default="10,100", help="network speeds, Gb/s")
    p.add_argument("--alpha-us", type=float, default=30.0, help="per-message latency, microseconds (TCP: ~30)")
    p.add_argument("--backward-share", type=float, default=2 / 3, help="share of the step that is backward")
    p.add_argument("--bucket-bytes", type=float, default=25 * 2**20)
    a = p.parse_args()
    ranks = [int(r) for r in a.ranks.split(",")]
    speeds = [float(g) for g in a.gbits.split(",")]
    print("| model | gradient | step (s) | network | ranks | gradient all-reduce (ms) | sync BN (ms) "
          "| efficiency, no overlap | with overlap |")
    print("|---|---|---|---|---|---|---|---|---|")
    for spec in a.model:
        name, size, step, bn = spec.split(":")
        size, step, bn = float(size), float(step), int(bn)
        for g in speeds:
            bandwidth = g * 1e9 / 8
            for r in ranks:
                t = ring_seconds(size, r, bandwidth, a.alpha_us * 1e-6)
                last = ring_seconds(min(size, a.bucket_bytes), r, bandwidth, a.alpha_us * 1e-6)
                sync = 3 * bn * math.log2(r) * a.alpha_us * 1e-6 if r > 1 else 0.0
                plain = step / (step + sync + t)
                exposed = max(t - a.backward_share * step, last if r > 1 else 0.0)
                overlap = step / (step + sync + exposed)
                print(f"| {name} | {size / 1e6:.1f} MB | {step:.2f} | {g:g} Gb/s | {r} | {1e3 * t:.1f} | {1e3 * sync:.1f} | "
                      f"{100 * plain:.1f} % | {100 * overlap:.1f} % |")


if __name__ == "__main__":
    main()
