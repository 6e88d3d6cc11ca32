using System.Text.Json.Nodes;
using Harness.Abstractions;
using Harness.Host.Matrix;
using Harness.Host.Output;
using Harness.Host.Plugins;
using Harness.Host.Training;
using Harness.Plugins.Models;
using Harness.Plugins.Tuners;
using Harness.Tests.Integration;
using Harness.Tests.Optimizers;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Tests.Tuners;

/// <summary>Tuners from the plugin folder, in matrix files (grid, run id, located errors) and through RunExecutor
/// (tuner_* columns, η·λ1 next to the sharpness probe).</summary>
[TestClass]
public sealed class TunerMatrixTests
{
    private static readonly string[] BuiltIns = ["armijo", "cdat", "constant", "exact_sharpness", "greedy", "hypergradient", "polyak"];

    private const string Head = """
        name: tuned
        dtype: float64
        models:
          - name: quadratic
            hyperparameters: { dim: 6, lambda_max: 2.0, lambda_min: 0.1, rotated: true }
        """;

    [TestMethod]
    public void TunersLoadFromThePluginFolderAndAreDocumented()
    {
        var catalog = HostFixture.Catalog;
        CollectionAssert.AreEquivalent(BuiltIns, catalog.Tuners.Keys.ToList());
        Assert.IsTrue(catalog.Tuners.Values.All(t => t.Origin.AssemblyName == "Harness.Plugins.Tuners"));
        var docs = File.ReadAllText(Path.Combine(Paths.RepoRoot, "docs", "tuners.md"));
        foreach (var (name, loaded) in catalog.Tuners)
        {
            Assert.Contains($"`{name}`", docs, $"docs/tuners.md must document tuner {name}");
            var hp = new HyperparameterValues(loaded.Plugin.Hyperparameters);
            foreach (var s in loaded.Plugin.Hyperparameters) Assert.Contains($"`{s.Name}`", docs, $"{name}.{s.Name}");
            var metrics = loaded.Plugin.MetricsFor(hp);
            Assert.AreEqual("eta", metrics[0].Name, name);
            foreach (var m in metrics) Assert.Contains($"`tuner_{m.Name}`", docs, $"{name}: column tuner_{m.Name}");
        }
    }

    [TestMethod]
    public void MatrixErrorsAreLocated()
    {
        var dir = Paths.NewTempDirectory("tuner-errors");
        IReadOnlyList<MatrixError> Errors(string tuner) => HostFixture.Errors($"""
            {Head}
            optimizers:
              - name: gd
                tuner: {tuner}
            training:
              steps: 3
            """, dir);
        var unknown = Errors("{ name: nope }").Single();
        Assert.AreEqual("optimizers[0].tuner.name", unknown.Key);
        Assert.Contains("unknown tuner 'nope'", unknown.Message);
        Assert.Contains("cdat", unknown.Message);
        Assert.AreEqual(8, unknown.Location.Line, "the line of the tuner's name");
        var hp = Errors("{ name: cdat, hyperparameters: { gamma: 1 } }").Single();
        Assert.AreEqual("optimizers[0].tuner.hyperparameters.gamma", hp.Key);
        var range = Errors("{ name: cdat, hyperparameters: { sigma: [1, -2] } }").Single();
        Assert.AreEqual("optimizers[0].tuner.hyperparameters.sigma[1]", range.Key);
        var shape = Errors("cdat").Single();
        Assert.AreEqual("optimizers[0].tuner", shape.Key);
        var key = Errors("{ name: cdat, sigma: 2 }").Single();
        Assert.Contains("sigma", key.Key + key.Message);
    }

    private sealed class PlainOptimizerPlugin : IOptimizerPlugin
    {
        public string Name => "plain";
        public string Description => "not directional";
        public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } = [HyperparameterSpec.Real("lr", 0.1, "η")];
        public IOptimizer Create(IReadOnlyList<Tensor> parameters, HyperparameterValues hp) => new Plain();
        private sealed class Plain : IOptimizer
        {
            public StepResult Step(IObjective objective) => new(objective.Evaluate().Loss);
            public double LearningRate { get; set; } = 0.1;
            public IReadOnlyList<Tensor>? Preconditioner => null;
            public MomentumKind Momentum => MomentumKind.None;
            public double MomentumCoefficient => 0;
            public double StabilityThreshold => 2 / LearningRate;
            public OptimizerState ExportState() => new();
            public void ImportState(OptimizerState state) { }
            public void Dispose() { }
        }
    }

    [TestMethod]
    public void AnOptimizerWithoutTheDirectionContractCannotBeWrapped()
    {
        var catalog = PluginCatalog.FromInstances([new PlainOptimizerPlugin(), new QuadraticPlugin(), new CdatPlugin()]);
        var e = Assert.ThrowsExactly<MatrixValidationException>(() => new MatrixParser(catalog).Parse($"""
            {Head}
            optimizers:
              - name: plain
                tuner: {"{"} name: cdat {"}"}
            training:
              steps: 3
            """, "m.yaml"));
        var error = e.Errors.Single();
        Assert.AreEqual("optimizers[0].tuner", error.Key);
        Assert.Contains("IDirectionalOptimizer", error.Message);
    }

    [TestMethod]
    public void TunedRunsWriteTunerColumnsAndEtaLambda1NextToTheSharpness()
    {
        var dir = Paths.NewTempDirectory("tuned-run");
        var yaml = $"""
            {Head}
            optimizers:
              - name: gd
                hyperparameters: {"{"} lr: 0.1 {"}"}
              - name: gd
                hyperparameters: {"{"} lr: 0.1 {"}"}
                tuner: {"{"} name: cdat, hyperparameters: {"{"} sigma: [1, 2] {"}"} {"}"}
            training:
              steps: 12
            probes:
              - name: sharpness
                every: 1
                hyperparameters: {"{"} max_iterations: 6, tolerance: 1e-10 {"}"}
            """;
        var (spec, outcome) = HostFixture.Run(yaml, dir);
        Assert.HasCount(3, outcome.Runs);
        var plain = outcome.Runs.Single(r => r.Configuration["optimizer"]!["tuner"] is null);
        Assert.IsFalse(plain.RunId.Contains("cdat"));
        Assert.IsFalse(DuckDb.Describe(Path.Combine(outcome.Directory, plain.RunId, "trace.parquet")).Any(c => c.Name.StartsWith("tuner_")));
        foreach (var sigma in new[] { 1.0, 2.0 })
        {
            var run = outcome.Runs.Single(r => r.Configuration["optimizer"]!["tuner"]?["hyperparameters"]?["sigma"]?.GetValue<double>() == sigma);
            Assert.AreEqual(RunStatus.Completed, run.Status, run.Reason);
            Assert.StartsWith("gd-cdat-", run.RunId);
            Assert.AreEqual("cdat", (string)run.Configuration["optimizer"]!["tuner"]!["name"]!);
            Assert.IsTrue(run.Plugins.Any(p => p.Kind == "tuner" && p.Name == "cdat"));
            var rows = DuckDb.ReadParquet(Path.Combine(outcome.Directory, run.RunId, "trace.parquet"), "step");
            Assert.HasCount(13, rows);
            double firstLoss = DuckDb.Double(rows[0]["train_loss"])!.Value;
            foreach (var row in rows.Take(12))
            {
                double eta = DuckDb.Double(row["tuner_eta"])!.Value;
                Assert.AreEqual(eta, DuckDb.Double(row["lr"])!.Value, "the lr column holds η_t");
                Assert.AreEqual(2 / eta, DuckDb.Double(row["threshold"])!.Value, 1e-12 / eta, "threshold at η_t");
                double n = DuckDb.Double(row["tuner_n"])!.Value, d = DuckDb.Double(row["tuner_d"])!.Value;
                Assert.AreEqual(sigma * n / d, eta, 1e-12 * eta);
                double lambda1 = DuckDb.Double(row["sharpness"])!.Value;
                Assert.AreEqual(2.0, lambda1, 1e-6, "λ1(A) = lambda_max");
                double etaLambda = DuckDb.Double(row["tuner_eta_lambda1"])!.Value;
                Assert.AreEqual(eta * lambda1, etaLambda, 1e-12 * etaLambda);
                Assert.IsGreaterThanOrEqualTo(sigma * (1 - 1e-6), etaLambda, "GD + CDAT(β = 0): η·λ1 ≥ σ");
                if (sigma == 2) Assert.AreEqual(firstLoss, DuckDb.Double(row["train_loss"])!.Value, 1e-10 * firstLoss, "σ = 2 leaves a quadratic's loss unchanged");
            }
            Assert.IsNull(rows[12]["tuner_eta"], "the final row has no step");
            Assert.IsTrue(rows.All(r => r["tuner_eta_precond_lambda1"] is null), "no precond_sharpness probe in this matrix");
            if (sigma == 1)
                for (int i = 0; i < 12; i++)
                    Assert.IsLessThan(DuckDb.Double(rows[i]["train_loss"])!.Value, DuckDb.Double(rows[i + 1]["train_loss"])!.Value, "greedy decreases the loss");
        }
    }
}
