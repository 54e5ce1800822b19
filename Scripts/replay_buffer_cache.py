#!/usr/bin/env python3
"""Replays a training run's storage allocations through the buffer cache's policy, offline.

  DENSENET_ALLOC_TRACE=/tmp/trace.txt .build/release/bench-memory --model densenet-bc-100-12 \\
      --batch 64 --strategies minimal --threads 2 --steps 2
  Scripts/replay_buffer_cache.py /tmp/trace.txt --steps 3 [--fit 2] [--waste 32] [--evict oldest]

The trace (Sources/Runtime/AllocationTrace.swift) holds every allocation and release; `R` marks
`Memory.resetHighWater`, after which bench-memory runs its warm-up and measured steps (--steps:
warm-up + measured; they have the same allocations, so the part after `R` is cut into that many
equal runs of allocations). The replay implements Sources/Runtime/BufferCache.swift (blocks of
16 KiB and up; best fit up to --fit times the request while the bytes wasted in live blocks stay
under highWater/--waste; a miss frees cached blocks until live + cached ≤ high water, oldest
first) and first checks itself against the trace's own hit/miss record with the defaults. Then
it prints misses and missed bytes (the bytes page-faulted in again) per step for the policy
asked, and for the eviction orders `oldest`, `largest`, `newest`, `smallest` and `future`
(Belady: the cached size next asked for exactly latest goes first; needs knowledge of the future,
so a bound on what reordering evictions can gain).
"""
import argparse
import bisect
import collections

MINIMUM_BYTES = 16 * 1024


def read(path):
    events = []
    for line in open(path):
        f = line.split()
        if not f:
            continue
        if f[0] == 'R':
            events.append(('R',))
        elif f[0] == 'A':
            events.append(('A', int(f[1]), f[2], f[3] if len(f) > 3 else None))
        elif f[0] == 'F':
            events.append(('F', int(f[1]), f[2]))
    return events


def replay(events, steps, fit=2.0, waste=32, evict='oldest'):
    last_reset = max((i for i, e in enumerate(events) if e[0] == 'R'), default=-1)
    measured = sum(1 for e in events[last_reset + 1:] if e[0] == 'A')
    per_step = max(1, measured // steps)
    requests = [e[1] for e in events if e[0] == 'A']
    positions = collections.defaultdict(list)
    for i, b in enumerate(requests):
        positions[b].append(i)

    total = high = cached = held = sequence = 0
    cache = {}          # block size -> [release sequence numbers], oldest first
    live = {}           # address -> (counted bytes, block bytes)
    per = [[0, 0, 0] for _ in range(steps)]   # misses, missed bytes, hits
    agree = disagree = 0
    request_index = -1
    after_reset = False
    counted = 0

    def next_use(size):
        p = positions.get(size, [])
        k = bisect.bisect_right(p, request_index)
        return p[k] if k < len(p) else float('inf')

    def victim():
        if evict == 'oldest':
            return min(cache, key=lambda s: cache[s][0])
        if evict == 'newest':
            return max(cache, key=lambda s: cache[s][-1])
        if evict == 'largest':
            return max(cache)
        if evict == 'smallest':
            return min(cache)
        return max(cache, key=lambda s: (next_use(s), s))   # future

    def remove(size, oldest):
        nonlocal cached
        blocks = cache[size]
        blocks.pop(0) if oldest else blocks.pop()
        if not blocks:
            del cache[size]
        cached -= size

    for e in events:
        if e[0] == 'R':
            cache.clear()
            cached = 0
            high = total
            after_reset = True
            counted = 0
            continue
        if e[0] == 'A':
            _, b, address, recorded = e
            request_index += 1
            total += b
            high = max(high, total)
            block = b
            hit = False
            if b >= MINIMUM_BYTES:
                allowance = max(0, high // waste - (held - total + b))
                sizes = sorted(cache)
                k = bisect.bisect_left(sizes, b)
                if k < len(sizes) and sizes[k] <= b * fit and sizes[k] - b <= allowance:
                    block = sizes[k]
                    remove(block, oldest=False)
                    hit = True
                else:
                    while held + b + cached > high and cache:
                        remove(victim(), oldest=True)
            held += block
            live[address] = (b, block)
            if recorded is not None and b >= MINIMUM_BYTES:
                if (recorded == 'hit') == hit:
                    agree += 1
                else:
                    disagree += 1
            if after_reset and b >= MINIMUM_BYTES:
                step = min(steps - 1, counted // per_step)
                if hit:
                    per[step][2] += 1
                else:
                    per[step][0] += 1
                    per[step][1] += b
            if after_reset:
                counted += 1
        else:
            _, b, address = e
            counted_bytes, block = live.pop(address)
            total -= counted_bytes
            held -= block
            if block >= MINIMUM_BYTES:
                sequence += 1
                cache.setdefault(block, []).append(sequence)
                cached += block
    return per, agree, disagree


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('trace')
    parser.add_argument('--steps', type=int, default=3, help='warm-up + measured steps after the last R')
    parser.add_argument('--fit', type=float, default=2.0)
    parser.add_argument('--waste', type=int, default=32)
    parser.add_argument('--evict', default='oldest', choices=['oldest', 'newest', 'largest', 'smallest', 'future'])
    a = parser.parse_args()
    events = read(a.trace)
    _, agree, disagree = replay(events, a.steps)
    print(f'replay of BufferCache.swift against the trace: {agree} hits/misses agree, {disagree} differ')
    runs = [(a.fit, a.waste, a.evict)] + [(2.0, 32, e) for e in ['oldest', 'largest', 'newest', 'smallest', 'future']]
    print('| fit | waste | evict | misses/step (last step) | MB missed/step | hits/step |')
    print('|---|---|---|---|---|---|')
    for fit, waste, evict in dict.fromkeys(runs):
        per, _, _ = replay(events, a.steps, fit, waste, evict)
        m, mb, h = per[-1]
        print(f'| {fit:g} | 1/{waste} | {evict} | {m} | {mb / 1e6:.1f} | {h} |')


if __name__ == '__main__':
    main()
