using System.Diagnostics.Metrics;
using Harness.Abstractions;
using Harness.Host.Matrix;
using Harness.Host.Plugins;
using Harness.Host.Telemetry;
using Harness.Plugins.Models;
using Harness.Plugins.Optimizers;

namespace Harness.Tests.Host;

[TestClass]
public sealed class HostGuardTests
{
    /// <summary>A probe whose metric names collide with a fixed trace column.</summary>
    private sealed class ClashingProbePlugin : IProbePlugin
    {
        public string Name => "clash";
        public string Description => "emits train_loss";
        public IReadOnlyList<HyperparameterSpec> Hyperparameters => [];
        public IReadOnlyList<MetricSpec> MetricsFor(HyperparameterValues hp) => [new("train_loss", "collides")];
        public IProbe Create(HyperparameterValues hp) => throw new NotSupportedException();
    }

    private static readonly string Yaml = """
        name: guard
        models: [{ name: quadratic }]
        optimizers: [{ name: gd }]
        training: { steps: 5 }
        probes:
          - { name: clash, every: 1 }
        """;

    [TestMethod]
    public void ProbeMetricThatCollidesWithAFixedColumnIsALocatedError()
    {
        var catalog = PluginCatalog.FromInstances([new QuadraticPlugin(), new GradientDescentPlugin(), new ClashingProbePlugin()]);
        var e = Assert.ThrowsExactly<MatrixValidationException>(() => new MatrixParser(catalog).Parse(Yaml, "guard.yaml"));
        Assert.AreEqual(1, e.Errors.Count);
        Assert.AreEqual("probes[0].name", e.Errors[0].Key);
        Assert.AreEqual(6L, e.Errors[0].Location.Line);
        StringAssert.Contains(e.Errors[0].Message, "'train_loss', already used by the trace's fixed columns");
    }

    [TestMethod]
    public void AbsurdStepCountsAreRejected()
    {
        var catalog = PluginCatalog.FromInstances([new QuadraticPlugin(), new GradientDescentPlugin()]);
        var e = Assert.ThrowsExactly<MatrixValidationException>(() => new MatrixParser(catalog).Parse(
            "name: big\nmodels: [{ name: quadratic }]\noptimizers: [{ name: gd }]\ntraining: { steps: 1e30 }\n", "big.yaml"));
        Assert.AreEqual("training.steps", e.Errors.Single().Key);
        StringAssert.Contains(e.Errors[0].Message, "above the maximum");
    }

    [TestMethod]
    public void EndedRunsStopReportingAfterTheRetention()
    {
        var catalog = PluginCatalog.FromInstances([new QuadraticPlugin(), new GradientDescentPlugin()]);
        var spec = new MatrixParser(catalog).Parse("name: r\nmodels: [{ name: quadratic }]\noptimizers: [{ name: gd, hyperparameters: { lr: [0.1, 0.2] } }]\ntraining: { steps: 5 }\n", "r.yaml");
        var cells = MatrixExpander.Expand(spec);
        using var metrics = new HarnessMetrics(TimeSpan.Zero);
        var a = metrics.StartRun(cells[0], []);
        var b = metrics.StartRun(cells[1], []);
        a.Loss = 1; b.Loss = 2;
        CollectionAssert.AreEquivalent(new[] { cells[0].RunId, cells[1].RunId }, ObservedRuns("harness.train_loss"));
        metrics.EndRun(a, "completed");
        metrics.Prune();
        CollectionAssert.AreEquivalent(new[] { cells[1].RunId }, ObservedRuns("harness.train_loss"));
    }

    private static List<string> ObservedRuns(string instrument)
    {
        var runs = new List<string>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (inst, l) => { if (inst.Meter.Name == HarnessMetrics.MeterName && inst.Name == instrument) l.EnableMeasurementEvents(inst); };
        listener.SetMeasurementEventCallback<double>((inst, value, tags, state) =>
        {
            foreach (var t in tags) if (t.Key == "run") runs.Add((string)t.Value!);
        });
        listener.Start();
        listener.RecordObservableInstruments();
        return runs;
    }
}
