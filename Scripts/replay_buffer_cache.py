#!/usr/bin/env python3
"""Replays a training run's storage allocations through the buffer cache's policy, offline.

  DENSENET_ALLOC_TRACE=/tmp/trace.txt .build/release/bench-memory --model densenet-bc-100-12 \\
      --batch 64 --strategies minimal --threads 2 --steps 2 --warmup 1
  Scripts/replay_buffer_cache.py /tmp/trace.txt --steps 3 [--fit 2] [--waste 32] [--evict shipped]
      [--no-move]

The trace (Sources/Runtime/AllocationTrace.swift, written by Memory.allocate/release) holds every
allocation, `A <bytes> <address> hit`, `A <bytes> <address> miss` (a jemalloc block) or
`A <bytes> <address> miss <moved>` (a mapped block, <moved> bytes of it cached pages moved in),
and every release, `F <bytes> <address>`; `R` marks `Memory.resetHighWater` (cache emptied, high
water = live bytes), after which bench-memory runs its warm-up and measured steps (--steps:
warm-up + measured; they have the same allocations, so the part after `R` is cut into that many
equal runs of allocations).

The replay implements Sources/Runtime/BufferCache.swift with Memory+Pages.swift and Memory.swift:
- blocks of 16 KiB and up are cached; a request takes the smallest cached block of 1 to --fit
  times its size while the bytes wasted in live blocks stay under highWater/--waste (a hit); a
  mapped request keeps only its whole pages of a bigger mapped block, the rest (when 256 KiB or
  more) staying cached in the block's place in release order;
- else (a miss) a request of 256 KiB and up gets a mapping of whole pages (4 KiB), a smaller
  one a jemalloc block of its size; held (live blocks' real bytes) counts the block's size;
- a miss evicts cached blocks until held + block + cached <= high water, the largest first for a
  mapped request and the oldest first otherwise (`--evict shipped`; other orders to compare). A mapped
  request takes over the pages of evicted mapped blocks as far as it has room: the evicted block
  is split there (runs cut in two as Block.split does), the part moved goes into the new block,
  the rest goes back to the cache in its place in release order if the bound, its size (mapped)
  and the process's extra runs (< 16384) allow, else it is freed. A donation that would give
  the new block more than --segments runs of pages (default 128, BufferCache.maximumSegments;
  its fresh rest counting one) is not made: that block
  is freed whole. The new block's runs are the moved runs plus one fresh run (Memory.mapBlock,
  every mremap assumed to succeed).
It first checks itself against the trace with the defaults: hit/miss of every cached-size
request, and the moved bytes of every mapped miss. (With --threads > 1 a few may differ for a
cause outside the trace: Memory.release writes `F` before it takes the lock and Memory.allocate
writes `A` after it lets go, so two threads' records can be out of the cache's order; on the
DenseNet-BC-100 traces every difference was such a pair, and agreed once swapped.)

Then it prints, for the last step, misses, MB missed (the new blocks' bytes), MB moved (cached
pages moved in) and MB fresh (missed - moved: the bytes page-faulted in anew), for the policy
asked and for the eviction orders `shipped`, `oldest`, `largest`, `newest`, `smallest` and `future` (Belady:
the cached size next asked for exactly latest goes first; needs knowledge of the future, so a
bound on what reordering evictions can gain); a size chosen gives up its oldest block (`newest`:
its newest). --no-move replays the policy before dfe073d: no mapped rounding, no pages moved,
every evicted block freed, oldest first, so the before/after can be compared from one trace.
"""
import argparse
import bisect
import collections

MINIMUM_BYTES = 16 * 1024             # BufferCache.minimumBytes
MAPPED_MINIMUM_BYTES = 256 * 1024     # Memory.mappedMinimumBytes
PAGE_BYTES = 4096                     # Memory.pageBytes on Linux x86-64
MAXIMUM_SEGMENTS = 128               # BufferCache.maximumSegments (8 before this was measured)
MAXIMUM_EXTRA_SEGMENTS = 16_384       # BufferCache.maximumExtraSegments


def read(path):
    events = []
    for line in open(path):
        f = line.split()
        if not f:
            continue
        if f[0] == 'R':
            events.append(('R',))
        elif f[0] == 'A':
            moved = int(f[4]) if len(f) > 4 else None
            events.append(('A', int(f[1]), f[2], f[3] if len(f) > 3 else None, moved))
        elif f[0] == 'F':
            events.append(('F', int(f[1]), f[2]))
    return events


def block_bytes(b, move):
    """The block a miss of `b` bytes gets (Memory.mappedBlockBytes for mapped sizes)."""
    if move and b >= MAPPED_MINIMUM_BYTES:
        return (b + PAGE_BYTES - 1) // PAGE_BYTES * PAGE_BYTES
    return b


def split(runs, at):
    """BufferCache.Block.split: the runs of the first `at` bytes, and of the rest."""
    first, rest, offset = [], [], 0
    for run in runs:
        if offset + run <= at:
            first.append(run)
        elif offset >= at:
            rest.append(run)
        else:
            first.append(at - offset)
            rest.append(offset + run - at)
        offset += run
    return first, rest


def replay(events, steps, fit=2.0, waste=32, evict='shipped', move=True, segments=MAXIMUM_SEGMENTS):
    last_reset = max((i for i, e in enumerate(events) if e[0] == 'R'), default=-1)
    measured = sum(1 for e in events[last_reset + 1:] if e[0] == 'A')
    per_step = max(1, measured // steps)
    positions = collections.defaultdict(list)   # block size -> indices of its requests
    for i, b in enumerate(e[1] for e in events if e[0] == 'A'):
        positions[block_bytes(b, move)].append(i)

    total = high = cached = held = sequence = extra = 0
    cache = {}          # block size -> [(release sequence, runs or None if jemalloc's)], oldest first
    live = {}           # address -> (counted bytes, block bytes, runs or None)
    per = [[0, 0, 0, 0] for _ in range(steps)]   # misses, missed bytes, moved bytes, hits
    check = [0, 0, 0, 0]   # hit/miss agree, differ; moved bytes agree, differ
    request_index = -1
    after_reset = False
    counted = 0

    def next_use(size):
        p = positions.get(size, [])
        k = bisect.bisect_right(p, request_index)
        return p[k] if k < len(p) else float('inf')

    def victim(mapped):
        if evict == 'shipped':   # BufferCache.take: the largest for a mapped request, else the oldest
            return max(cache) if mapped else min(cache, key=lambda s: cache[s][0][0])
        if evict == 'oldest':
            return min(cache, key=lambda s: cache[s][0][0])
        if evict == 'newest':
            return max(cache, key=lambda s: cache[s][-1][0])
        if evict == 'largest':
            return max(cache)
        if evict == 'smallest':
            return min(cache)
        return max(cache, key=lambda s: (next_use(s), s))   # future

    def remove(size, oldest):
        nonlocal cached
        blocks = cache[size]
        block = blocks.pop(0) if oldest else blocks.pop()
        if not blocks:
            del cache[size]
        cached -= size
        return block

    def insert(size, block):
        """Into its place in release order (BufferCache.put appends, reinsert keeps order)."""
        nonlocal cached
        blocks = cache.setdefault(size, [])
        blocks.insert(bisect.bisect_right([s for s, _ in blocks], block[0]), block)
        cached += size

    for e in events:
        if e[0] == 'R':   # Memory.resetHighWater: BufferCache.removeAll, then ledger
            extra -= sum(len(r) - 1 for blocks in cache.values() for _, r in blocks if r)
            cache.clear()
            cached = 0
            high = total
            after_reset = True
            counted = 0
            continue
        if e[0] == 'F':   # BufferCache.put
            _, b, address = e
            counted_bytes, block, runs = live.pop(address)
            total -= counted_bytes
            held -= block
            if block >= MINIMUM_BYTES:
                sequence += 1
                insert(block, (sequence, runs))
            continue

        _, b, address, recorded, recorded_moved = e   # Memory.allocate, BufferCache.take
        request_index += 1
        total += b
        high = max(high, total)
        mapped = move and b >= MAPPED_MINIMUM_BYTES
        block = block_bytes(b, move)
        runs = None
        hit = False
        moved = 0
        if b >= MINIMUM_BYTES:
            allowance = max(0, high // waste - (held - total + b))
            sizes = sorted(cache)
            k = bisect.bisect_left(sizes, b)
            if k < len(sizes) and sizes[k] <= b * fit and sizes[k] - b <= allowance:
                size = sizes[k]
                seq, runs = remove(size, oldest=False)
                hit = True
                need = block
                block = size
                # A mapped request keeps only its pages of a bigger mapped block; the rest stays
                # cached when it is a mapped size itself.
                if (mapped and runs and size - need >= MAPPED_MINIMUM_BYTES
                        and extra < MAXIMUM_EXTRA_SEGMENTS):
                    extra -= len(runs) - 1
                    runs, rest = split(runs, need)
                    extra += len(runs) - 1
                    insert(size - need, (seq, rest))
                    extra += len(rest) - 1
                    block = need
            else:
                left = block if mapped else 0   # bytes of the new block no cached pages go to yet
                donated = []                    # the runs moved in, in order
                while held + block + cached > high and cache:
                    size = victim(mapped)
                    _, evicted_runs = evicted = remove(size, oldest=(evict != 'newest'))
                    if evicted_runs:
                        extra -= len(evicted_runs) - 1
                    if left > 0 and evicted_runs:
                        take = min(left, size)
                        first, rest = split(evicted_runs, take)
                        if len(donated) + len(first) + (1 if take < left else 0) <= segments:
                            donated += first
                            left -= take
                            moved += take
                            rest_bytes = size - take
                            if (rest_bytes and held + block + cached + rest_bytes <= high
                                    and rest_bytes >= MAPPED_MINIMUM_BYTES
                                    and extra < MAXIMUM_EXTRA_SEGMENTS):
                                insert(rest_bytes, (evicted[0], rest))
                                extra += len(rest) - 1
                            continue
                    # freed whole (jemalloc's, no room left, or too many runs)
        if mapped and not hit:   # Memory.mapBlock, BufferCache.didMap
            runs = donated + ([left] if left else [])   # (mapped sizes are all cached sizes)
            extra += len(runs) - 1
        held += block
        live[address] = (b, block, runs)

        if recorded is not None and b >= MINIMUM_BYTES:
            check[0 if (recorded == 'hit') == hit else 1] += 1
            if recorded_moved is not None and not hit:
                check[2 if recorded_moved == moved else 3] += 1
        if after_reset and b >= MINIMUM_BYTES:
            step = min(steps - 1, counted // per_step)
            if hit:
                per[step][3] += 1
            else:
                per[step][0] += 1
                per[step][1] += block
                per[step][2] += moved
        if after_reset:
            counted += 1
    return per, check


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('trace')
    parser.add_argument('--steps', type=int, default=3, help='warm-up + measured steps after the last R')
    parser.add_argument('--fit', type=float, default=2.0)
    parser.add_argument('--waste', type=int, default=32)
    parser.add_argument('--evict', default='shipped',
                        choices=['shipped', 'oldest', 'newest', 'largest', 'smallest', 'future'])
    parser.add_argument('--no-move', action='store_true',
                        help='the policy before dfe073d: no mapped blocks, evicted blocks all freed')
    parser.add_argument('--segments', type=int, default=MAXIMUM_SEGMENTS,
                        help='most runs of pages per block for the policies compared (the check against '
                             'the trace uses BufferCache.maximumSegments)')
    a = parser.parse_args()
    events = read(a.trace)
    _, check = replay(events, a.steps)
    print(f'replay of BufferCache.swift against the trace: {check[0]} hits/misses agree, {check[1]} differ; '
          f'moved bytes of {check[2]} mapped misses agree, {check[3]} differ')
    move = not a.no_move
    print('policy: ' + (f'pages of evicted blocks moved into mapped misses (dfe073d), at most {a.segments} runs a block' if move
                        else 'before dfe073d (--no-move: evicted blocks freed)'))
    print('| fit | waste | evict | misses (last step) | MB missed | MB moved | MB fresh | hits |')
    print('|---|---|---|---|---|---|---|---|')
    orders = ['shipped', 'oldest', 'largest', 'newest', 'smallest', 'future'] if move else ['oldest', 'largest', 'newest', 'smallest', 'future']
    runs = [(a.fit, a.waste, a.evict if move or a.evict != 'shipped' else 'oldest')] + [(2.0, 32, e) for e in orders]
    for fit, waste, evict in dict.fromkeys(runs):
        per, _ = replay(events, a.steps, fit, waste, evict, move, a.segments)
        m, missed, moved, h = per[-1]
        print(f'| {fit:g} | 1/{waste} | {evict} | {m} | {missed / 1e6:.1f} | {moved / 1e6:.1f} '
              f'| {(missed - moved) / 1e6:.1f} | {h} |')


if __name__ == '__main__':
    main()
