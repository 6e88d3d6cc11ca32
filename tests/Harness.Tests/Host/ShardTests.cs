using Harness.Host.Matrix;
using Harness.Host.Plugins;

namespace Harness.Tests.Host;

[TestClass]
public sealed class ShardTests
{
    private static IReadOnlyList<RunCell> Cells()
    {
        var catalog = PluginCatalog.Load(Paths.PluginArtifacts);
        const string yaml = """
            name: sharded
            models:
              - name: quadratic
                hyperparameters: { dim: [2, 3, 4] }
            optimizers:
              - name: gd
                hyperparameters: { lr: [0.1, 0.2, 0.3, 0.4] }
              - name: heavy_ball
                hyperparameters: { lr: [0.1, 0.2], momentum: [0.5, 0.9] }
            seeds: { init: [0, 1], data: [0] }
            training: { steps: 5 }
            """;
        return MatrixExpander.Expand(new MatrixParser(catalog).Parse(yaml, "sharded.yaml"));
    }

    [TestMethod]
    public void FourShardsPartitionTheMatrixExactly()
    {
        var cells = Cells();
        Assert.AreEqual(3 * (4 + 4) * 2, cells.Count);
        var shards = Enumerable.Range(0, 4).Select(i => cells.Where(new Shard(i, 4).Contains).Select(c => c.RunId).ToList()).ToList();
        var union = shards.SelectMany(s => s).ToList();
        CollectionAssert.AreEquivalent(cells.Select(c => c.RunId).ToList(), union, "every cell in exactly one shard");
        Assert.IsTrue(shards.All(s => s.Count > 0), "no shard is empty for 48 cells");
        // Deterministic: a second expansion assigns the same cells.
        var again = Cells().Where(new Shard(2, 4).Contains).Select(c => c.RunId).ToList();
        CollectionAssert.AreEqual(shards[2], again);
    }

    [TestMethod]
    public void ACellThatTakesItsPreconditionerFromAnotherRunIsInThatRunsShard()
    {
        var catalog = PluginCatalog.Load(Paths.PluginArtifacts);
        const string yaml = """
            name: frozen
            models:
              - name: quadratic
                hyperparameters: { dim: [2, 3, 4, 5, 6, 7, 8, 9] }
            optimizers:
              - name: adam
                hyperparameters: { lr: 0.01 }
              - name: precond_ema_heavy_ball
                hyperparameters: { lr: 0.01 }
                preconditioner_from: { optimizer: 0, step: 3 }
            training: { steps: 5 }
            """;
        var cells = MatrixExpander.Expand(new MatrixParser(catalog).Parse(yaml, "frozen.yaml"));
        var dependents = cells.Where(c => c.PreconditionerFrom is { RunId: not null }).ToList();
        Assert.AreEqual(8, dependents.Count);
        for (int n = 2; n <= 4; n++)
            foreach (var dep in dependents)
            {
                var source = cells.Single(c => c.RunId == dep.PreconditionerFrom!.RunId);
                var shard = Enumerable.Range(0, n).Single(i => new Shard(i, n).Contains(dep));
                Assert.IsTrue(new Shard(shard, n).Contains(source), $"{dep.RunId} and its source {source.RunId} in shard {shard}/{n}");
            }
    }

    [TestMethod]
    public void ParsesShardSpecificationsAndClusterEnvironments()
    {
        Assert.AreEqual(new Shard(1, 4), Shard.Parse("1/4"));
        Assert.ThrowsExactly<FormatException>(() => Shard.Parse("4/4"));
        Assert.ThrowsExactly<FormatException>(() => Shard.Parse("x"));
        var slurm = new Dictionary<string, string> { ["SLURM_ARRAY_TASK_ID"] = "7", ["SLURM_ARRAY_TASK_MIN"] = "5", ["SLURM_ARRAY_TASK_COUNT"] = "3" };
        Assert.AreEqual(new Shard(2, 3), Shard.FromEnvironment(k => slurm.GetValueOrDefault(k)));
        var k8s = new Dictionary<string, string> { ["JOB_COMPLETION_INDEX"] = "0", ["HARNESS_SHARD_COUNT"] = "4" };
        Assert.AreEqual(new Shard(0, 4), Shard.FromEnvironment(k => k8s.GetValueOrDefault(k)));
        var k8sNoCount = new Dictionary<string, string> { ["JOB_COMPLETION_INDEX"] = "0" };
        Assert.ThrowsExactly<FormatException>(() => Shard.FromEnvironment(k => k8sNoCount.GetValueOrDefault(k)));
        Assert.IsNull(Shard.FromEnvironment(_ => null));
    }
}
