using Harness.Host.Workers;

namespace Harness.Tests.Host;

/// <summary>The default libtorch thread count follows the free cores, so a busy machine does not get more threads than
/// it has cores to spare (oversubscribed OpenMP threads spin and collapse throughput).</summary>
[TestClass]
public sealed class ThreadDefaultTests
{
    [TestMethod]
    [DataRow(2, 0.05, 1, 2)]    // idle 2-core machine: both cores
    [DataRow(2, 36.0, 1, 1)]    // 2 cores shared by many jobs: one thread
    [DataRow(2, 1.4, 1, 1)]     // one core busy
    [DataRow(8, 3.4, 1, 5)]
    [DataRow(8, 3.4, 2, 2)]     // five free cores shared by two workers
    [DataRow(8, 0.0, 3, 2)]
    [DataRow(4, double.NaN, 1, 4)]
    [DataRow(1, 0.0, 4, 1)]     // never below one
    public void DefaultThreadsAreTheFreeCoresSharedByTheWorkers(int cores, double load, int workers, int expected) =>
        Assert.AreEqual(expected, WorkerPool.AutoThreads(cores, load, workers));
}
