import Autograd
import Foundation
import Kernels
import Runtime
import XCTest

/// Issue 11, class 3: releasing an autograd graph as long as a 16,000-layer DenseNet's step
/// (`densenet summary --model densenet-bc-16000-12` overflowed the stack in the planner). A
/// chain of a million nodes, far deeper than the main thread's 8 MiB stack can unwind one
/// frame per node, is dropped at once; `Node.deinit` releases it with a worklist.
final class HostileGraphReleaseTests: XCTestCase {
    func testAMillionNodeChainIsReleasedWithoutRecursion() {
        let value = Tensor.filled([1], 1)
        let leaf = Node.leaf("x", gradient: Tensor.zeros([1]))
        weak var first: Node?
        do {
            var x = Variable(value, node: leaf)
            for i in 0..<1_000_000 {
                x = Autograd.record("step", value, inputs: [x, x]) { _, _ in }
                if i == 0 { first = x.node }
            }
            XCTAssertNotNil(first)
        }
        XCTAssertNil(first, "the whole chain was released")
        // A graph still in use keeps what it reads: only the dropped part goes.
        var kept: Variable? = nil
        do {
            var x = Variable(value, node: leaf)
            for i in 0..<1000 {
                x = Autograd.record("step", value, inputs: [x]) { _, _ in }
                if i == 10 { kept = x }
            }
        }
        weak var keptNode = kept?.node
        XCTAssertNotNil(keptNode)
        kept = nil
        XCTAssertNil(keptNode)
    }

    /// Backward still reaches the leaf through a long chain after the change.
    func testBackwardThroughALongChainStillReachesTheLeaf() {
        let gradient = Tensor.zeros([1])
        var x = Variable(Tensor.filled([1], 1), node: Node.leaf("x", gradient: gradient))
        for _ in 0..<10_000 {
            x = Autograd.record("identity", x.value, inputs: [x]) { gy, g in if let g0 = g[0] { Elementwise.accumulate(gy, into: g0) } }
        }
        Autograd.backward(x)
        XCTAssertEqual(gradient.array, [1])
    }
}
