import DataParallel
import Runtime
import XCTest

/// The one-rank fallback of a process not started by mpirun (this test process), and launch
/// detection. Collectives between real processes are in MPIProcessTests.
final class CommunicatorTests: XCTestCase {
    func testLauncherDetection() {
        XCTAssertNil(LaunchEnvironment.launcherVariable(in: ["PATH": "/usr/bin", "OMPI_MCA_btl": "self"]))
        XCTAssertEqual(LaunchEnvironment.launcherVariable(in: ["OMPI_COMM_WORLD_SIZE": "2"]), "OMPI_COMM_WORLD_SIZE")
        XCTAssertEqual(LaunchEnvironment.launcherVariable(in: ["PMI_SIZE": "4"]), "PMI_SIZE")
    }

    func testWorldWithoutLauncherIsRankZeroOfOneWithoutMPI() throws {
        let world = try Communicator.world(environment: [:])
        XCTAssertEqual(world.rank, 0)
        XCTAssertEqual(world.size, 1)
        XCTAssertFalse(world.usesMPI)
        XCTAssertTrue(try Communicator.world() === world, "one communicator per process")
    }

    func testOneRankCollectivesLeaveBuffersAsTheyAre() throws {
        let c = Communicator.singleProcess()
        let t = Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6.5])
        try c.allReduceSum(t)
        try c.allReduceAverage(t)
        try c.broadcast(t, root: 0)
        try c.barrier()
        let pending = try c.startAllReduceSum(t)
        XCTAssertTrue(try pending.isComplete())
        try pending.wait()
        XCTAssertEqual(t.array, [1, 2, 3, 4, 5, 6.5])
        var d = [1.5, -2]
        try c.allReduceSum(&d)
        XCTAssertEqual(d, [1.5, -2])
        try c.finalize()
    }

    func testBroadcastFromARankOutsideTheJobIsATypedError() {
        XCTAssertThrowsError(try Communicator.singleProcess().broadcast(Tensor.zeros([1]), root: 1)) {
            XCTAssertEqual($0 as? DataParallelError, .rootOutOfRange(root: 1, size: 1))
        }
    }

    func testErrorsSayWhatToDo() {
        XCTAssertTrue("\(DataParallelError.mpiUnavailable(launcherVariable: "OMPI_COMM_WORLD_SIZE"))".contains("Scripts/setup.sh"))
        XCTAssertTrue("\(DataParallelError.operationFailed(operation: "MPI_Allreduce", code: 1, message: "x"))"
            .contains("another rank"))
    }
}
