using System.Text.RegularExpressions;
using Harness.Abstractions;
using Harness.Host.Matrix;
using Harness.Host.Plugins;
using Harness.Host.Telemetry;
using Harness.Host.Training;
using Harness.Plugins.Probes;
using Microsoft.Extensions.Logging.Abstractions;
using TorchSharp;
using static Harness.Tests.Probes.ProbeTestSupport;
using static TorchSharp.torch;

namespace Harness.Tests.Probes;

using Math = System.Math;

[TestClass]
public sealed class ProbeCatalogueTests
{
    private static IReadOnlyList<IProbePlugin> AllProbes() =>
        typeof(SharpnessProbePlugin).Assembly.GetTypes()
            .Where(t => typeof(IProbePlugin).IsAssignableFrom(t) && t is { IsClass: true, IsAbstract: false })
            .Select(t => (IProbePlugin)Activator.CreateInstance(t)!).OrderBy(p => p.Name, StringComparer.Ordinal).ToList();

    [TestMethod]
    public void CatalogueHasEveryProbeOfTheIssue()
    {
        CollectionAssert.IsSubsetOf(
            new[] { "sharpness", "precond_sharpness", "hessian_trace", "rmed", "diag_dominance", "implicit_bias", "coherence", "fisher", "sam",
                    "update_geometry", "preconditioner", "accuracy" },
            AllProbes().Select(p => p.Name).ToArray());
    }

    [TestMethod]
    public void MetricNamesAreBoundedPrometheusSafeAndGloballyUnique()
    {
        using var model = new TinyMlp(seed: 1);
        var names = new List<string>();
        foreach (var plugin in AllProbes())
        {
            var hp = new HyperparameterValues(plugin.Hyperparameters);
            foreach (var m in plugin.MetricsFor(hp, model.Parameters))
            {
                Assert.IsTrue(Regex.IsMatch(m.Name, "^[a-z][a-z0-9_]*$"), $"{plugin.Name}: metric '{m.Name}' is not [a-z0-9_]");
                Assert.IsFalse(string.IsNullOrWhiteSpace(m.Doc), $"{m.Name} has no documentation");
                names.Add(m.Name);
            }
        }
        names.AddRange(RunExecutor.FixedColumns);
        names.AddRange(RunExecutor.ProbeCostColumns(AllProbes().Select(p => p.Name)));
        var dupes = names.GroupBy(n => n).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
        Assert.AreEqual(0, dupes.Count, "duplicate columns: " + string.Join(", ", dupes));

        // Per-layer series exist only for per-layer probes, one set per weight tensor (never per bias).
        var rmed = new RMedProbePlugin().MetricsFor(new HyperparameterValues(new RMedProbePlugin().Hyperparameters), model.Parameters);
        Assert.AreEqual(2 * 6, rmed.Count(m => !m.TraceOnly), "six gauges per weight tensor");
        Assert.AreEqual(12 + 8, rmed.Count(m => m.TraceOnly), "H_ii samples: min(200, size) per layer, trace only");
    }

    [TestMethod]
    public void EveryProbeMeasuresOnlyDeclaredMetricsWithAPreconditionedOptimizer()
    {
        using var model = new TinyMlp(seed: 3);
        var ps = model.Parameters.Select(p => p.Tensor).ToList();
        var p = ps.Select(t => Enumerable.Range(0, (int)t.numel()).Select(i => 0.5 + 0.01 * i).ToArray()).ToList();
        using var opt = new FixedPreconditionerOptimizer(ps, 0.05, p, MomentumKind.Ema, 0.9);
        var shared = new Dictionary<string, object>();
        var gen = new torch.Generator(9);
        var update = ps.Select(t => torch.randn(t.shape, dtype: t.dtype, generator: gen) * 0.01).ToList();
        var before = ps.Select(t => torch.randn(t.shape, dtype: t.dtype, generator: gen) * 0.01).ToList();
        foreach (var plugin in AllProbes())
        {
            var r = Measure(plugin, null, Context(model, opt, step: 3, shared: shared, previousUpdate: update, before: before), out var declared);
            if (plugin.Name != "accuracy") Assert.IsTrue(r.Count > 0, $"{plugin.Name} measured nothing");
            foreach (var (k, v) in r)
                Assert.IsFalse(double.IsNaN(v), $"{plugin.Name}: {k} is NaN");
        }
    }

    private static PluginCatalog Catalog()
    {
        var catalog = PluginCatalog.Load(Paths.PluginArtifacts);
        Assert.IsTrue(catalog.Probes.ContainsKey("rmed"), "built-in probe plugins not found in " + Paths.PluginArtifacts);
        return catalog;
    }

    private const string Matrix = """
        name: probe-schedule
        dtype: float64
        models:
          - name: quadratic
            hyperparameters: { dim: 6, rotated: true, lambda_max: 4 }
        optimizers:
          - name: gd
            hyperparameters: { lr: 0.2 }
        training:
          steps: 40
          probe_budget: 0.9
        probes:
          - name: sharpness
            every: 10
            windows: [ { from: 3, to: 6 }, [30, 33] ]
            bursts: { steps: 2, on: [crossing], loss_spike_factor: 3 }
            hyperparameters: { max_iterations: 6, tolerance: 1e-8 }
          - name: update_geometry
            every: 1
        """;

    [TestMethod]
    public void MatrixFilesDeclareWindowsBurstsAndBudget()
    {
        var spec = new MatrixParser(Catalog()).Parse(Matrix, "m.yaml");
        Assert.AreEqual(0.9, spec.Training.ProbeBudget);
        var s = spec.Probes[0];
        CollectionAssert.AreEqual(new[] { new ProbeWindow(3, 6), new ProbeWindow(30, 33) }, s.Windows.ToArray());
        Assert.AreEqual(new ProbeBurst(2, OnCrossing: true, OnLossSpike: false, LossSpikeFactor: 3), s.Burst);
        var cell = MatrixExpander.Expand(spec)[0];
        StringAssert.Contains(cell.CanonicalConfiguration, "\"probe_budget\":0.9");
        StringAssert.Contains(cell.CanonicalConfiguration, "\"windows\":[{\"from\":3,\"to\":6,\"every\":1}");

        var bad = Assert.ThrowsExactly<MatrixValidationException>(() => new MatrixParser(Catalog()).Parse(
            Matrix.Replace("probe_budget: 0.9", "probe_budget: 1.5").Replace("[30, 33]", "[33, 30]").Replace("on: [crossing]", "on: [crossings]"), "m.yaml"));
        var keys = bad.Errors.Select(e => e.Key).ToList();
        CollectionAssert.Contains(keys, "training.probe_budget");
        CollectionAssert.Contains(keys, "probes[0].windows[1]");
        CollectionAssert.Contains(keys, "probes[0].bursts.on");
    }

    [TestMethod]
    public void RunExecutorFollowsTheScheduleAndWritesCostColumns()
    {
        var catalog = Catalog();
        // No budget here: a budget makes the schedule depend on measured time, which a unit test must not.
        var spec = new MatrixParser(catalog).Parse(Matrix.Replace("  probe_budget: 0.9\n", ""), "m.yaml");
        Assert.IsNull(spec.Training.ProbeBudget);
        var cell = MatrixExpander.Expand(spec)[0];
        var dir = Paths.NewTempDirectory("probe-sched");
        try
        {
            using var metrics = new HarnessMetrics();
            var manifest = new RunExecutor(catalog, metrics, NullLogger.Instance).Execute(cell, dir, new NoProgress(), CancellationToken.None);
            Assert.AreEqual(Harness.Host.Output.RunStatus.Completed, manifest.Status, manifest.Reason);
            var columns = ReadTrace(Path.Combine(dir, "trace.parquet"));
            var steps = columns["step"];
            var sharp = columns["sharpness"];
            var measured = steps.Where((_, i) => sharp[i] is not null).Select(s => (long)s!.Value).ToList();
            // every 10 from the last measurement, dense in [3, 6) and [30, 33), final row 40.
            var expected = new List<long> { 0, 3, 4, 5, 15, 25, 30, 31, 32, 40 };
            if (measured.SequenceEqual(expected) is false)
                Assert.Fail($"sharpness measured at {string.Join(",", measured)}; expected {string.Join(",", expected)} (stretch {string.Join(",", columns["probe_stretch"].Distinct())})");
            Assert.IsTrue(columns["update_norm"].Skip(1).Take(39).All(v => v is not null), "update_geometry every step");
            Assert.IsTrue(columns["update_cos_prev"].Skip(2).Take(38).All(v => v is not null), "u_{t−1} available from step 2");
            for (int i = 0; i < steps.Count; i++)
                if (sharp[i] is not null)
                {
                    Assert.AreEqual(columns["sharpness_iterations"][i]!.Value, columns["probe_sharpness_hvps"][i]!.Value, "HVPs counted by the host = Lanczos iterations");
                    Assert.AreEqual(1.0, columns["probe_sharpness_grad_evals"][i]!.Value, "one gradient graph");
                    Assert.IsTrue(columns["probe_sharpness_seconds"][i] > 0);
                    AreClose(4, sharp[i]!.Value, 1e-9, "λ1 of the quadratic");
                }
            Assert.IsTrue(columns["probe_time_fraction"].All(v => v is >= 0 and <= 1));
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    /// <summary>The trace's columns by name (rows ordered by step), read with DuckDB — an independent Parquet reader.</summary>
    private static Dictionary<string, List<double?>> ReadTrace(string path)
    {
        using var conn = new DuckDB.NET.Data.DuckDBConnection("DataSource=:memory:");
        conn.Open();
        using var cmd = conn.CreateCommand();
        cmd.CommandText = $"SELECT * EXCLUDE (matrix, run_id) FROM read_parquet('{path.Replace("'", "''")}') ORDER BY step";
        using var reader = cmd.ExecuteReader();
        var result = new Dictionary<string, List<double?>>();
        for (int c = 0; c < reader.FieldCount; c++) result[reader.GetName(c)] = new List<double?>();
        while (reader.Read())
            for (int c = 0; c < reader.FieldCount; c++)
                result[reader.GetName(c)].Add(reader.IsDBNull(c) ? null : Convert.ToDouble(reader.GetValue(c)));
        return result;
    }

    private const string AllProbesMatrix = """
        name: all-probes
        models:
          - name: fashion_mlp
            hyperparameters: { depth: 1, width: 8, train_size: 40, test_size: 20, loss: mse }
        optimizers:
          - name: adam
            hyperparameters: { lr: 0.001 }
        training:
          steps: 3
        probe_set:
          size: 30
        probes:
          - { name: sharpness, every: 1, hyperparameters: { top_k: 2, smallest: true } }
          - { name: precond_sharpness, every: 1, hyperparameters: { smallest: true } }
          - { name: coherence, every: 1, hyperparameters: { top_k: 2 } }
          - { name: hessian_trace, every: 1, hyperparameters: { samples: 5 } }
          - { name: rmed, every: 1, hyperparameters: { coordinates: 5 } }
          - { name: diag_dominance, every: 1, hyperparameters: { max_size: 100 } }
          - { name: implicit_bias, every: 1 }
          - { name: fisher, every: 1, hyperparameters: { samples: 4 } }
          - { name: sam, every: 1 }
          - { name: update_geometry, every: 1 }
          - { name: preconditioner, every: 1 }
          - { name: accuracy, every: 1 }
          - { name: parameters, every: 1 }
        """;

    [TestMethod]
    public void EveryProbeRunsFromAMatrixFileWithoutFailing()
    {
        var catalog = Catalog();
        Assert.AreEqual(0, catalog.Errors.Count, string.Join("; ", catalog.Errors));
        var spec = new MatrixParser(catalog).Parse(AllProbesMatrix, "all.yaml");
        CollectionAssert.AreEquivalent(AllProbes().Select(p => p.Name).ToArray(), spec.Probes.Select(p => p.Name).ToArray(), "the matrix lists every built-in probe");
        var cell = MatrixExpander.Expand(spec)[0];
        var dir = Paths.NewTempDirectory("all-probes");
        var logger = new RecordingLogger();
        try
        {
            using var metrics = new HarnessMetrics();
            var manifest = new RunExecutor(catalog, metrics, logger).Execute(cell, dir, new NoProgress(), CancellationToken.None);
            Assert.AreEqual(Harness.Host.Output.RunStatus.Completed, manifest.Status, manifest.Reason);
            Assert.AreEqual(0, logger.Warnings.Count, string.Join(Environment.NewLine, logger.Warnings));
            var trace = ReadTrace(Path.Combine(dir, "trace.parquet"));
            int row = 2;   // step 2: both earlier updates exist
            foreach (var probe in spec.Probes)
            {
                var plugin = catalog.Probes[probe.Name].Plugin;
                var declared = plugin.MetricsFor(new HyperparameterValues(plugin.Hyperparameters, probe.Hyperparameters), new[]
                {
                    new ModelParameter("layer0.weight", zeros(8, 784), true), new ModelParameter("layer0.bias", zeros(8), false),
                    new ModelParameter("layer1.weight", zeros(10, 8), true), new ModelParameter("layer1.bias", zeros(10), false),
                });
                var nonNull = declared.Where(m => trace[m.Name][row] is not null).Select(m => m.Name).ToList();
                var missing = declared.Select(m => m.Name).Except(nonNull)
                    .Except(["edge_ratio", "edge_crossing"])   // Adam is preconditioned: its edge ratio is precond_edge_ratio
                    .ToList();
                Assert.AreEqual(0, missing.Count, $"{probe.Name}: no value for {string.Join(", ", missing)}");
                Assert.IsTrue(trace[$"probe_{probe.Name}_seconds"][row] > 0);
            }
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    private sealed class RecordingLogger : Microsoft.Extensions.Logging.ILogger
    {
        public List<string> Warnings { get; } = new();
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel level) => true;
        public void Log<TState>(Microsoft.Extensions.Logging.LogLevel level, Microsoft.Extensions.Logging.EventId id, TState state, Exception? e,
            Func<TState, Exception?, string> formatter)
        {
            if (level >= Microsoft.Extensions.Logging.LogLevel.Warning) Warnings.Add(formatter(state, e));
        }
    }

    private sealed class NoProgress : IRunProgress { }
}
