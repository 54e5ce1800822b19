// Checks of Sources/DataParallel between real Open MPI processes, on hand-made tensors whose
// expected values are computed here from every rank's known inputs, without MPI. Launched by
// Tests/DataParallelTests/MPIProcessTests.swift:
//   mpirun --oversubscribe -np 2 mpi-selftest collectives   every check; exit 1 on a mismatch
//   mpirun --oversubscribe -np 2 mpi-selftest kill-rank 1   rank 1 kills itself (SIGKILL) while
//                                                           the others wait in an all-reduce
//   mpirun --oversubscribe -np 2 mpi-selftest exit-rank 1   rank 1 exits with status 3 instead
//   mpi-selftest collectives                                 without mpirun: the one-rank fallback
import DataParallel
import Foundation
import Runtime

/// Element i of rank r's input number `k`: distinct across ranks, inputs and positions, and
/// exactly representable, so sums over a few ranks are exact.
func input(rank r: Int, _ k: Int, _ i: Int) -> Float { Float(k * 1000 + i) + Float(r) * 0.25 + 1 }

func values(rank r: Int, _ k: Int, count: Int) -> [Float] { (0..<count).map { input(rank: r, k, $0) } }

/// The sum over ranks `0..<size` of `values(rank:k:count:)`, by plain loops.
func expectedSum(size: Int, _ k: Int, count: Int) -> [Float] {
    (0..<count).map { i in (0..<size).reduce(Float(0)) { $0 + input(rank: $1, k, i) } }
}

final class Checks {
    let world: Communicator
    var passed = 0
    var failures = [String]()
    init(_ world: Communicator) { self.world = world }

    func expect(_ name: String, _ actual: [Float], _ expected: [Float]) {
        let close = actual.count == expected.count
            && zip(actual, expected).allSatisfy { abs($0 - $1) <= 1e-6 * max(1, abs($1)) }
        if close { passed += 1 } else {
            failures.append("\(name): got \(actual.prefix(6))… expected \(expected.prefix(6))… (counts \(actual.count), \(expected.count))")
        }
    }

    func expect(_ name: String, _ condition: Bool, _ detail: @autoclosure () -> String) {
        if condition { passed += 1 } else { failures.append("\(name): \(detail())") }
    }
}

func runCollectives(_ world: Communicator) throws -> Int32 {
    let c = Checks(world)
    let rank = world.rank, size = world.size
    let environmentSize = ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_SIZE"].flatMap(Int.init) ?? 1
    c.expect("size matches the launcher's", size == environmentSize, "MPI size \(size), launcher \(environmentSize)")
    c.expect("rank in range", (0..<size).contains(rank), "rank \(rank) of \(size)")

    print("rank \(rank) of \(size): host \(ProcessInfo.processInfo.hostName)")
    // Blocking all-reduce of sizes that do not divide by the rank count (and 0, 1, and one
    // past Open MPI's eager limits, which goes by its rendezvous protocol).
    for (k, count) in [13, 1, 0, 1001, 100_003].enumerated() {
        let t = Tensor(shape: [count], values: values(rank: rank, k, count: count), category: .gradients)
        try world.allReduceSum(t)
        c.expect("allReduceSum of \(count)", t.array, expectedSum(size: size, k, count: count))
    }
    // The same split into messages of 5 elements.
    world.maximumMessageCount = 5
    let split = Tensor(shape: [3, 7], values: values(rank: rank, 7, count: 21))
    try world.allReduceSum(split)
    c.expect("allReduceSum in 5-element messages", split.array, expectedSum(size: size, 7, count: 21))
    world.maximumMessageCount = Int(Int32.max)

    let mean = Tensor(shape: [17], values: values(rank: rank, 8, count: 17))
    try world.allReduceAverage(mean)
    c.expect("allReduceAverage", mean.array, expectedSum(size: size, 8, count: 17).map { $0 / Float(size) })

    var doubles = (0..<5).map { Double(rank * 10 + $0) }
    try world.allReduceSum(&doubles)
    let expectedDoubles = (0..<5).map { i in Float((0..<size).reduce(0) { $0 + $1 * 10 + i }) }
    c.expect("allReduceSum of doubles", doubles.map(Float.init), expectedDoubles)

    // Broadcast from rank 0 and from the last rank; the others start with other values.
    for root in [0, size - 1] {
        let t = Tensor(shape: [11], values: values(rank: rank, 9, count: 11))
        try world.broadcast(t, root: root)
        c.expect("broadcast from \(root)", t.array, values(rank: root, 9, count: 11))
    }
    do {
        try world.broadcast(Tensor(shape: [1], values: [0]), root: size)
        c.expect("broadcast from a rank outside the job throws", false, "no error")
    } catch let error as DataParallelError {
        c.expect("broadcast from a rank outside the job throws", error == .rootOutOfRange(root: size, size: size), "\(error)")
    }

    // Two non-blocking reductions in flight at once.
    let a = Tensor(shape: [29], values: values(rank: rank, 10, count: 29))
    let b = Tensor(shape: [3], values: values(rank: rank, 11, count: 3))
    let ra = try world.startAllReduceSum(a), rb = try world.startAllReduceSum(b)
    _ = try ra.isComplete()
    try rb.wait()
    try ra.wait()
    c.expect("startAllReduceSum, first", a.array, expectedSum(size: size, 10, count: 29))
    c.expect("startAllReduceSum, second", b.array, expectedSum(size: size, 11, count: 3))

    try checkBuckets(c)
    try world.barrier()

    // Every rank learns whether any rank failed, so that all exit alike.
    var failed = [Double(c.failures.count)]
    try world.allReduceSum(&failed)
    for failure in c.failures { FileHandle.standardError.write(Data("rank \(rank): FAILED \(failure)\n".utf8)) }
    print("rank \(rank) of \(size): \(c.passed) checks passed, \(c.failures.count) failed;"
          + " \(Int(failed[0])) failed over all ranks")
    return failed[0] == 0 ? 0 : 1
}

/// Bucketed averaging over three steps: by byte cap and with explicit buckets (one empty), with
/// gradients marked in a different order on each rank.
func checkBuckets(_ c: Checks) throws {
    let world = c.world, rank = world.rank, size = world.size
    let counts = [7, 0, 13, 1, 30, 5, 0, 9]
    let byCap = try GradientBuckets(elementCounts: counts, capBytes: 64, communicator: world)
    let explicit = GradientBuckets(elementCounts: counts, buckets: [[7, 6], [], [5, 4, 3], [2, 1, 0], []],
                                   communicator: world)
    // Started buckets after each markReady, worked out by hand from the bucket layouts: byte cap
    // [[7, 6, 5, 4], [3, 2, 1, 0]]; explicit as given (an empty bucket starts with the one before).
    let startedReverse = [[0, 0, 0, 1, 1, 1, 1, 2], [0, 2, 2, 2, 3, 3, 3, 5]]
    let startedForward = [[0, 0, 0, 0, 0, 0, 0, 2], [0, 0, 0, 0, 0, 0, 0, 5]]
    c.expect("byte cap bucket layout", byCap.buckets == [[7, 6, 5, 4], [3, 2, 1, 0]], "\(byCap.buckets)")
    for (set, (name, buckets)) in [("byte cap", byCap), ("explicit, with empty buckets", explicit)].enumerated() {
        for step in 0..<3 {
            let gradients = counts.indices.map { k in
                Tensor(shape: [counts[k]], values: values(rank: rank, 100 * step + k, count: counts[k]), category: .gradients)
            }
            // Even ranks in the usual reverse order, odd ranks forwards: their later buckets
            // complete first, and must still be started after the earlier ones.
            let order = rank % 2 == 0 ? Array(counts.indices.reversed()) : Array(counts.indices)
            var started = [Int]()
            for k in order {
                try buckets.markReady(k, gradient: gradients[k])
                started.append(buckets.startedBucketCount)
            }
            c.expect("\(name), step \(step): buckets started in order as soon as complete",
                     started == (!world.usesMPI ? Array(repeating: 0, count: counts.count)
                                 : (rank % 2 == 0 ? startedReverse : startedForward)[set]), "\(started)")
            try buckets.finish()
            for k in counts.indices {
                c.expect("\(name), step \(step), gradient \(k)", gradients[k].array,
                         expectedSum(size: size, 100 * step + k, count: counts[k]).map { $0 / Float(size) })
            }
        }
    }
    do {
        let g = Tensor(shape: [7], values: values(rank: rank, 0, count: 7))
        try byCap.markReady(0, gradient: g)
        try byCap.finish()
        c.expect("finish with unmarked gradients throws", false, "no error")
    } catch let error as DataParallelError {
        c.expect("finish with unmarked gradients throws",
                 error == .gradientsNotReady(indices: Array(1..<counts.count)), "\(error)")
    }
}

/// Rank `victim` kills itself (or exits with status 3); every other rank waits in an all-reduce
/// that cannot complete.
func runFailingRank(_ world: Communicator, victim: Int, signal: Bool) throws -> Int32 {
    try world.barrier()
    print("rank \(world.rank): entering the all-reduce"); fflush(stdout)
    if world.rank == victim {
        if signal { kill(getpid(), SIGKILL) }
        FileHandle.standardError.write(Data("rank \(victim): exiting with status 3 on purpose\n".utf8))
        exit(3)
    }
    let t = Tensor(shape: [1 << 16], values: [Float](repeating: 1, count: 1 << 16))
    while true { try world.allReduceSum(t) }
}

let arguments = CommandLine.arguments.dropFirst()
do {
    let status = try Communicator.withWorld { world -> Int32 in
        switch arguments.first {
        case "collectives", nil:
            return try runCollectives(world)
        case "kill-rank", "exit-rank":
            guard let victim = arguments.dropFirst().first.flatMap(Int.init), (0..<world.size).contains(victim) else {
                FileHandle.standardError.write(Data("mpi-selftest: \(arguments.first!) needs a rank in 0..<\(world.size)\n".utf8))
                exit(2)
            }
            return try runFailingRank(world, victim: victim, signal: arguments.first == "kill-rank")
        default:
            FileHandle.standardError.write(Data("mpi-selftest: unknown mode '\(arguments.first!)' (collectives, kill-rank R, exit-rank R)\n".utf8))
            exit(2)
        }
    }
    exit(status)
} catch {
    FileHandle.standardError.write(Data("mpi-selftest: \(error)\n".utf8))
    exit(1)
}
