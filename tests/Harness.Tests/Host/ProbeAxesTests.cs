using Harness.Host.Matrix;
using Harness.Host.Output;
using Harness.Host.Plugins;
using Harness.Host.Telemetry;
using Harness.Host.Training;
using Harness.Tests.Integration;
using Microsoft.Extensions.Logging.Abstractions;

namespace Harness.Tests.Host;

/// <summary>Probe hyperparameters as grid axes, the same probe twice (<c>as:</c>), run labels with the swept model
/// hyperparameters, and what <c>steps_completed</c> means at an early stop.</summary>
[TestClass]
public sealed class ProbeAxesTests
{
    private static PluginCatalog Catalog() => PluginCatalog.Load(Paths.PluginArtifacts);

    private const string Matrix = """
        name: probe-axes
        dtype: float64
        models:
          - name: quadratic
            hyperparameters: { dim: [3, 4], lambda_max: 4, lambda_min: 1 }
        optimizers:
          - name: gd
            hyperparameters: { lr: 0.1 }
        training:
          steps: 4
        probes:
          - name: sharpness
            every: 2
            hyperparameters: { max_iterations: [2, 8] }
          - name: sharpness
            as: exact
            every: 1
            hyperparameters: { max_iterations: 10, tolerance: 1e-10 }
        """;

    [TestMethod]
    public void ProbeHyperparameterListsAreGridAxesAndLabelsNameEverySweptValue()
    {
        var cells = MatrixExpander.Expand(new MatrixParser(Catalog()).Parse(Matrix, "m.yaml"));
        Assert.HasCount(4, cells, "2 model dims × 2 probe settings");
        CollectionAssert.AreEquivalent(new[] { 2L, 8L, 2L, 8L }, cells.Select(c => (long)c.Probes[0].Hyperparameters["max_iterations"]).ToArray());
        Assert.IsTrue(cells.All(c => (long)c.Probes[1].Hyperparameters["max_iterations"] == 10L && c.Probes[1].Id == "exact"));
        Assert.HasCount(4, cells.Select(c => c.RunId).Distinct().ToList(), "each probe setting is its own run");
        CollectionAssert.AreEquivalent(
            new[]
            {
                "gd lr=0.1 | quadratic dim=3 | seeds 0/0 | sharpness max_iterations=2",
                "gd lr=0.1 | quadratic dim=3 | seeds 0/0 | sharpness max_iterations=8",
                "gd lr=0.1 | quadratic dim=4 | seeds 0/0 | sharpness max_iterations=2",
                "gd lr=0.1 | quadratic dim=4 | seeds 0/0 | sharpness max_iterations=8",
            },
            cells.Select(c => c.Label.Replace(" decoupled_weight_decay=false", "").Replace(" weight_decay=0", "")).ToArray());
        StringAssert.Contains(cells[0].CanonicalConfiguration, "\"as\":\"exact\"");
    }

    [TestMethod]
    public void TheSameProbeTwiceWritesPrefixedColumns()
    {
        var catalog = Catalog();
        var cell = MatrixExpander.Expand(new MatrixParser(catalog).Parse(Matrix, "m.yaml"))[0];
        var dir = Paths.NewTempDirectory("probe-twice");
        try
        {
            using var metrics = new HarnessMetrics();
            var manifest = new RunExecutor(catalog, metrics, NullLogger.Instance).Execute(cell, dir, new NoProgress(), CancellationToken.None);
            Assert.AreEqual(RunStatus.Completed, manifest.Status, manifest.Reason);
            var rows = DuckDb.Query($"SELECT * FROM read_parquet({DuckDb.Quote(Path.Combine(dir, "trace.parquet"))}) ORDER BY step");
            Assert.HasCount(5, rows);
            foreach (var r in rows)
            {
                Assert.AreEqual(4.0, Convert.ToDouble(r["exact_sharpness"]), 1e-9, "λ1 = lambda_max at every step");
                Assert.IsNotNull(r["probe_exact_seconds"]);
                Assert.IsNotNull(r["exact_edge_ratio"]);
            }
            Assert.IsNull(rows[1]["sharpness"], "the unprefixed instance keeps its own schedule (every 2)");
            Assert.IsNotNull(rows[2]["sharpness"]);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [TestMethod]
    [DataRow("  - name: sharpness\n    every: 1\n", "probes[2].name", "probe 'sharpness' is listed twice; give one of them a different 'as:' name")]
    [DataRow("  - name: accuracy\n    as: Bad-Name\n", "probes[2].as", "must match [a-z][a-z0-9_]*")]
    [DataRow("  - name: sharpness\n    as: exact\n", "probes[2].name", "probe 'exact' is listed twice; give one of them a different 'as:' name")]
    public void ProbeInstancesNeedDistinctValidNames(string extra, string key, string message)
    {
        var e = Assert.ThrowsExactly<MatrixValidationException>(() => new MatrixParser(Catalog()).Parse(Matrix + "\n" + extra, "m.yaml"));
        Console.WriteLine(string.Join("\n", e.Errors));
        Assert.IsTrue(e.Errors.Any(x => x.Key == key && x.Message == message), string.Join("\n", e.Errors));
    }

    [TestMethod]
    // lr 0.6 on λ = 4: |1 − 2.4| = 1.4, the loss grows ×1.96 per step and passes 10 × its initial value at step 4.
    [DataRow("0.6", "divergence_factor: 10", RunStatus.Diverged, 4L, true)]
    // lr 0.1 on λ ∈ [1, 4]: the loss falls below 0.5 × its initial value within a few steps.
    [DataRow("0.1", "target_loss: 1e-3", RunStatus.Completed, 8L, true)]
    [DataRow("0.1", "divergence_factor: 10", RunStatus.Completed, 30L, false)]
    public void StepsCompletedSaysWhetherTheStoppingStepsUpdateWasApplied(string lr, string rule, RunStatus status, long stoppedAt, bool applied)
    {
        var catalog = Catalog();
        var yaml = $"""
            name: stop
            dtype: float64
            models:
              - name: quadratic
                hyperparameters: {"{"} dim: 1, lambda_max: 4, lambda_min: 4, theta0: "1" {"}"}
            optimizers:
              - name: gd
                hyperparameters: {"{"} lr: {lr} {"}"}
            training:
              steps: 30
              {rule}
            """;
        var cell = MatrixExpander.Expand(new MatrixParser(catalog).Parse(yaml, "m.yaml"))[0];
        var dir = Paths.NewTempDirectory("stop");
        try
        {
            using var metrics = new HarnessMetrics();
            var manifest = new RunExecutor(catalog, metrics, NullLogger.Instance).Execute(cell, dir, new NoProgress(), CancellationToken.None);
            Assert.AreEqual(status, manifest.Status, manifest.Reason);
            if (stoppedAt >= 0) Assert.AreEqual(stoppedAt, manifest.StepsCompleted);
            Assert.AreEqual(applied, manifest.StoppingStepUpdateApplied, manifest.Reason);
            var saved = RunManifest.TryLoad(Path.Combine(dir, "manifest.json"))!;
            Assert.AreEqual(applied, saved.StoppingStepUpdateApplied, "written to manifest.json");
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    private sealed class NoProgress : IRunProgress { }
}
