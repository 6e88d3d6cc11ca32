using System.Diagnostics.Metrics;
using Harness.Host.Matrix;
using Harness.Host.Plugins;
using Harness.Host.Telemetry;

namespace Harness.Tests.Host;

/// <summary>Labels from the swept values only (terminal and harness_run_info): hyperparameters whose value differs
/// between the cells of the matrix, never defaults every cell shares.</summary>
[TestClass]
public sealed class SweptParametersTests
{
    private const string Yaml = """
        name: swept
        models:
          - name: quadratic
            hyperparameters: { dim: 4 }
        optimizers:
          - name: gd
            hyperparameters: { lr: [0.1, 0.2] }
          - name: adam
            hyperparameters: { lr: 0.0003 }
        seeds: { init: [0, 1], data: [0] }
        training: { steps: 5 }
        """;

    private static IReadOnlyList<RunCell> Cells(string yaml) =>
        MatrixExpander.Expand(new MatrixParser(PluginCatalog.Load(Paths.PluginArtifacts)).Parse(yaml, "swept.yaml"));

    [TestMethod]
    public void LabelsNameOnlyTheValuesThatDifferBetweenRuns()
    {
        var cells = Cells(Yaml);
        var swept = SweptParameters.Of(cells[0].Matrix);
        CollectionAssert.AreEquivalent(
            new[] { "gd lr=0.1 | init=0", "gd lr=0.1 | init=1", "gd lr=0.2 | init=0", "gd lr=0.2 | init=1", "adam lr=0.0003 | init=0", "adam lr=0.0003 | init=1" },
            cells.Select(swept.Label).ToArray());
        var adam = cells.First(c => c.Optimizer == "adam");
        CollectionAssert.AreEqual(new[] { "optimizer.lr=0.0003", "seed.init=" + adam.InitSeed },
            swept.For(adam).Select(kv => $"{kv.Key}={kv.Value}").ToArray(), "beta1, eps, weight_decay … are defaults every adam run shares");

        // Several models: the model is named, with its swept hyperparameters; a single run has only its optimizer.
        var models = Cells(Yaml.Replace("hyperparameters: { dim: 4 }", "hyperparameters: { dim: [4, 8] }")
            .Replace("seeds: { init: [0, 1], data: [0] }", ""));
        Assert.AreEqual("gd lr=0.1 | quadratic dim=4", SweptParameters.Of(models[0].Matrix).Label(models[0]));
        var single = Cells(Yaml.Replace("lr: [0.1, 0.2]", "lr: 0.1").Replace("init: [0, 1]", "init: [0]")
            .Replace("  - name: adam\n    hyperparameters: { lr: 0.0003 }\n", ""));
        Assert.AreEqual("gd", SweptParameters.Of(single.Single().Matrix).Label(single.Single()));
        Assert.AreEqual("optimizer_lr", SweptParameters.LabelName("optimizer.lr"));
        Assert.AreEqual("model_a_b", SweptParameters.LabelName("model.a-b"));
    }

    [TestMethod]
    public void RunInfoIsOneWithTheSweptValuesAsLabels()
    {
        var cells = Cells(Yaml);
        using var metrics = new HarnessMetrics();
        foreach (var c in cells) metrics.StartRun(c, []);
        var seen = new List<(double value, Dictionary<string, string> tags)>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (i, l) => { if (i.Meter.Name == HarnessMetrics.MeterName && i.Name == "harness.run_info") l.EnableMeasurementEvents(i); };
        listener.SetMeasurementEventCallback<double>((_, v, tags, _) =>
            seen.Add((v, tags.ToArray().ToDictionary(t => t.Key, t => Convert.ToString(t.Value, System.Globalization.CultureInfo.InvariantCulture)!))));
        listener.Start();
        listener.RecordObservableInstruments();

        Assert.HasCount(cells.Count, seen);
        Assert.IsTrue(seen.All(s => s.value == 1));
        var gd = cells.First(c => c.Optimizer == "gd");
        var tags = seen.Single(s => s.tags["run"] == gd.RunId).tags;
        CollectionAssert.AreEquivalent(new[] { "matrix", "run", "optimizer", "model", "config", "optimizer_lr", "seed_init" }, tags.Keys.ToArray());
        Assert.AreEqual($"gd lr=0.1 | init={gd.InitSeed}", tags["config"]);
        Assert.AreEqual("0.1", tags["optimizer_lr"]);
    }
}
