using System.Text.Json.Nodes;
using Harness.Abstractions;
using Harness.Host.Matrix;
using Harness.Host.Output;
using Harness.Host.Training;
using Harness.Plugins.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Tests.Optimizers;

/// <summary>The catalogue in matrix files: every optimizer runs from the plugin folder and its manifest records every
/// option; a cell takes its static P from another run's saved state (save_state_at, preconditioner_from).</summary>
[TestClass]
public sealed class MatrixTests
{
    private const string Model = """
        models:
          - name: quadratic
            hyperparameters: { dim: 6, lambda_max: 2.0, lambda_min: 0.1, rotated: true }
        """;

    [TestMethod]
    public void EveryOptimizerRunsInAMatrixAndItsManifestRecordsTheOptions()
    {
        var names = HostFixture.Catalog.Optimizers.Keys.Where(OptimizerTestKit.Plugins.ContainsKey).Order(StringComparer.Ordinal).ToList();
        Assert.HasCount(OptimizerTestKit.Plugins.Count, names);
        var dir = Paths.NewTempDirectory("all-optimizers");
        var yaml = $"""
            name: catalogue
            dtype: float64
            {Model}
            optimizers:
            {string.Join("\n", names.Select(n => $"  - name: {n}"))}
              - name: adam
                hyperparameters: {"{"} lr: 0.01, bias_correction: false, eps_inside_sqrt: true {"}"}
                schedule: {"{"} kind: linear_warmup, warmup_steps: 4 {"}"}
            training:
              steps: 8
            """;
        var (_, outcome) = HostFixture.Run(yaml, dir);
        Assert.HasCount(names.Count + 1, outcome.Runs);
        foreach (var run in outcome.Runs)
        {
            Assert.AreEqual(RunStatus.Completed, run.Status, $"{run.Label}: {run.Reason}");
            var hp = (JsonObject)run.Configuration["optimizer"]!["hyperparameters"]!;
            var schema = HostFixture.Catalog.Optimizers[run.Optimizer].Plugin.Hyperparameters;
            CollectionAssert.AreEquivalent(schema.Select(s => s.Name).ToList(), hp.Select(kv => kv.Key).ToList(), $"{run.Optimizer}: the manifest must record every option");
            // A threshold for every optimizer that has a linear one; none (null, not invented) for the sign-based ones.
            Assert.AreEqual(run.ThresholdRule != ThresholdRule.None, run.Final.ContainsKey("threshold"), $"{run.Label}: threshold rule {run.ThresholdRule}");
        }
        var custom = outcome.Runs.Single(r => r.Optimizer == "adam" && (bool)r.Configuration["optimizer"]!["hyperparameters"]!["eps_inside_sqrt"]!);
        Assert.IsFalse((bool)custom.Configuration["optimizer"]!["hyperparameters"]!["bias_correction"]!);
        // The threshold follows η_t: at the last row η = 0.01 (warm-up over), Adam's threshold is 38/η = 3800.
        Assert.AreEqual(3800, custom.Final["threshold"], 1e-9);
    }

    [TestMethod]
    public void ThresholdInTheTraceFollowsTheScheduledLearningRate()
    {
        var dir = Paths.NewTempDirectory("schedule");
        var yaml = $"""
            name: schedule
            dtype: float64
            {Model}
            optimizers:
              - name: ema_nesterov
                hyperparameters: {"{"} lr: 0.01, momentum: 0.9 {"}"}
                schedule: {"{"} kind: cosine, warmup_steps: 3, final_fraction: 0.1 {"}"}
            training:
              steps: 12
            """;
        var (_, outcome) = HostFixture.Run(yaml, dir);
        var run = outcome.Runs.Single();
        Assert.AreEqual(RunStatus.Completed, run.Status, run.Reason);
        using var connection = new DuckDB.NET.Data.DuckDBConnection("DataSource=:memory:");
        connection.Open();
        using var cmd = connection.CreateCommand();
        cmd.CommandText = $"SELECT lr, threshold FROM read_parquet('{Path.Combine(outcome.Directory, run.RunId, "trace.parquet")}') ORDER BY step";
        using var reader = cmd.ExecuteReader();
        int rows = 0;
        var lrs = new HashSet<double>();
        while (reader.Read())
        {
            double lr = reader.GetDouble(0), threshold = reader.GetDouble(1);
            Assert.AreEqual((2 + 2 * 0.9) / (lr * (1 - 0.9) * (1 + 2 * 0.9)), threshold, 1e-9 * threshold, $"row {rows}: η = {lr}");
            lrs.Add(lr);
            rows++;
        }
        Assert.AreEqual(13, rows);
        Assert.IsGreaterThan(5, lrs.Count, "the schedule must vary η");
    }

    private static readonly string DependentMatrix = $"""
        name: deps
        dtype: float64
        {Model}
        optimizers:
          - name: adam
            hyperparameters: {"{"} lr: [0.01, 0.02], beta2: 0.9 {"}"}
          - name: precond_ema_heavy_ball
            hyperparameters: {"{"} lr: 0.01, momentum: 0.9 {"}"}
            preconditioner_from: {"{"} optimizer: 0, step: 5 {"}"}
        training:
          steps: 10
          save_state_at: [3]
        """;

    [TestMethod]
    public void ACellTakesItsPreconditionerFromAnotherRunsSavedState()
    {
        var dir = Paths.NewTempDirectory("deps");
        var (spec, outcome) = HostFixture.Run(DependentMatrix, dir);
        Assert.HasCount(4, outcome.Runs, "two Adam runs and one dependent cell per Adam run");
        Assert.IsTrue(outcome.Runs.All(r => r.Status == RunStatus.Completed), string.Join("; ", outcome.Runs.Select(r => r.Reason)));
        var sources = outcome.Runs.Where(r => r.Optimizer == "adam").ToList();
        var dependents = outcome.Runs.Where(r => r.Optimizer == "precond_ema_heavy_ball").ToList();
        foreach (var dep in dependents)
        {
            var from = dep.Configuration["optimizer"]!["preconditioner_from"]!;
            string sourceId = (string)from["run_id"]!;
            Assert.AreEqual(5L, (long)from["step"]!);
            Assert.IsTrue(sources.Any(s => s.RunId == sourceId), "the source is one of the Adam runs");
            var source = OptimizerStateFile.Load(Path.Combine(outcome.Directory, sourceId, "state-5.json"));
            Assert.AreEqual("adam", source.Optimizer);
            Assert.AreEqual(5, source.Step);
            var mine = OptimizerStateFile.Load(Path.Combine(outcome.Directory, dep.RunId, "state-3.json"));
            var p = mine.State.Buffers["preconditioner"];
            for (int i = 0; i < p.Length; i++)
                CollectionAssert.AreEqual(source.Preconditioner![i], p[i], "the dependent run keeps the source's P at step 5 bit for bit");

            // Replaying the dependent cell by hand from its seeds gives the same θ at step 3.
            var cell = MatrixExpander.Expand(spec).Single(c => c.RunId == dep.RunId);
            var modelPlugin = new QuadraticPlugin();
            using var scope = NewDisposeScope();
            using var model = modelPlugin.Create(new ModelContext(new HyperparameterValues(modelPlugin.Hyperparameters, cell.ModelHyperparameters),
                cell.InitSeed, cell.DataSeed, ScalarType.Float64, CPU, null));
            var parameters = model.Parameters.Select(x => x.Tensor).ToList();
            using var opt = OptimizerTestKit.Create("precond_ema_heavy_ball", parameters, cell.OptimizerHyperparameters);
            opt.ImportState(new OptimizerState { Scalars = { ["step"] = 0, ["lr"] = 0.01 }, Buffers = { ["preconditioner"] = source.Preconditioner!.Select(a => (double[]?)a).ToArray() } });
            for (int t = 0; t < 3; t++) opt.Step(new TorchObjective(model, model.Train));
            CollectionAssert.AreEqual(mine.Parameters![0], ArrayObjective.Read(parameters)[0], "θ at step 3 matches a replay with the source's P");
        }
        foreach (var s in sources)
        {
            Assert.IsTrue(File.Exists(Path.Combine(outcome.Directory, s.RunId, "state-3.json")), "save_state_at applies to every run");
            Assert.IsNotNull(OptimizerStateFile.Load(Path.Combine(outcome.Directory, s.RunId, "state-5.json")).Preconditioner);
        }

        // Re-running skips every finished run; a source whose needed state is gone runs again.
        var (_, again) = HostFixture.Run(DependentMatrix, dir);
        Assert.AreEqual(4, again.Skipped);
        File.Delete(Path.Combine(outcome.Directory, sources[0].RunId, "state-5.json"));
        var (_, third) = HostFixture.Run(DependentMatrix, dir);
        Assert.AreEqual(3, third.Skipped);
        Assert.IsTrue(File.Exists(Path.Combine(outcome.Directory, sources[0].RunId, "state-5.json")));
    }

    [TestMethod]
    public void APreconditionerFromAStateFileIsRecordedWithItsHash()
    {
        var dir = Paths.NewTempDirectory("deps-file");
        var (_, outcome) = HostFixture.Run(DependentMatrix, dir);
        var source = outcome.Runs.First(r => r.Optimizer == "adam");
        var stateFile = Path.Combine(outcome.Directory, source.RunId, "state-5.json");
        var yaml = $"""
            name: from-file
            dtype: float64
            {Model}
            optimizers:
              - name: precond_heavy_ball
                hyperparameters: {"{"} lr: 0.01 {"}"}
                preconditioner_from: {"{"} file: "{stateFile}" {"}"}
            training:
              steps: 4
              save_state_at: [4]
            """;
        var (_, run) = HostFixture.Run(yaml, Paths.NewTempDirectory("deps-file-2"));
        var m = run.Runs.Single();
        Assert.AreEqual(RunStatus.Completed, m.Status, m.Reason);
        var from = m.Configuration["optimizer"]!["preconditioner_from"]!;
        Assert.AreEqual(stateFile, (string)from["file"]!);
        Assert.AreEqual(64, ((string)from["sha256"]!).Length);
        var saved = OptimizerStateFile.Load(Path.Combine(run.Directory, m.RunId, "state-4.json"));
        CollectionAssert.AreEqual(OptimizerStateFile.Load(stateFile).Preconditioner![0], saved.Preconditioner![0]);
    }

    [TestMethod]
    public void InvalidDependenciesAreReportedBeforeTraining()
    {
        var dir = Paths.NewTempDirectory("deps-invalid");
        string Matrix(string optimizers, int steps = 10) => $"""
            name: bad
            {Model}
            optimizers:
            {optimizers}
            training:
              steps: {steps}
              save_state_at: [20]
            """;
        var errors = HostFixture.Errors(Matrix("""
              - name: precond_gd
                preconditioner_from: { optimizer: 1, step: 5 }
              - name: adam
              - name: adam
                preconditioner_from: { optimizer: 0, step: 50 }
              - name: precond_heavy_ball
                preconditioner_from: { optimizer: nadam, step: 5 }
              - name: precond_heavy_ball
                preconditioner_from: { file: does-not-exist.json }
              - name: gd
              - name: precond_gd
                preconditioner_from: { optimizer: 5, step: 5 }
            """), dir);
        string all = string.Join("\n", errors);
        StringAssert.Contains(all, "optimizers[0].preconditioner_from.optimizer: must refer to an earlier entry");
        StringAssert.Contains(all, "optimizers[2].preconditioner_from: optimizer 'adam' does not take an imported preconditioner");
        StringAssert.Contains(all, "optimizers[2].preconditioner_from.step: step 50 is beyond training.steps (10)");
        StringAssert.Contains(all, "optimizers[3].preconditioner_from.optimizer: no optimizer entry named 'nadam'");
        StringAssert.Contains(all, "optimizers[4].preconditioner_from.file: state file");
        StringAssert.Contains(all, "training.save_state_at: step 20 is beyond training.steps (10)");
        StringAssert.Contains(all, "optimizers[6].preconditioner_from.optimizer: optimizer 'gd' (entry 5) reports no preconditioner to take");
        Assert.HasCount(7, errors, all);
    }
}
