using System.Text.Json.Nodes;

namespace Harness.Tests.Integration;

/// <summary>A small matrix through the real <c>harness</c> executable; its Parquet outputs read back with DuckDB.</summary>
[TestClass]
public sealed class EndToEndTests
{
    public TestContext TestContext { get; set; } = null!;

    private const long Steps = 30;
    private const double QuadraticLambdaMax = 4;

    // 2 models × 2 learning rates = 4 runs. The quadratic's sharpness is exactly lambda_max; the MLP is tiny.
    private const string Matrix = """
        name: e2e
        dtype: float64
        models:
          - name: quadratic
            hyperparameters: { dim: 8, lambda_max: 4, lambda_min: 0.5, rotated: true }
          - name: fashion_mlp
            hyperparameters: { depth: 1, width: 16, train_size: 200, test_size: 100 }
        optimizers:
          - name: gd
            hyperparameters:
              lr: [0.05, 0.1]
        training:
          steps: 30
        probe_set:
          size: 100
        probes:
          - name: sharpness
            every: 5
            hyperparameters: { max_iterations: 20, tolerance: 0.000001 }
          - name: accuracy
            every: 10
        """;

    [TestMethod]
    public void MatrixRunsEndToEndWritesParquetAndSkipsFinishedRunsOnRerun()
    {
        var work = Paths.NewTempDirectory("e2e");
        var results = Path.Combine(work, "results");
        var matrixFile = Path.Combine(work, "e2e.yaml");
        File.WriteAllText(matrixFile, Matrix);

        using (var first = HarnessProcess.Run(work, TimeSpan.FromSeconds(120), ["run", matrixFile, .. HarnessProcess.RunOptions(results)]))
            Assert.AreEqual(0, first.ExitCode, first.Output);

        string matrixDir = Path.Combine(results, "e2e");
        // Beside the run folders: report/ (docs/reports.md), written at the end of the run.
        Assert.IsTrue(File.Exists(Path.Combine(matrixDir, "report", "report.html")), "the run ends by writing the report");
        var runDirs = Directory.GetDirectories(matrixDir).Select(Path.GetFileName).Where(d => d != "report").Order(StringComparer.Ordinal).ToList();
        Assert.HasCount(4, runDirs, string.Join(", ", runDirs));

        foreach (var runId in runDirs)
        {
            var manifest = JsonNode.Parse(File.ReadAllText(Path.Combine(matrixDir, runId!, "manifest.json")))!;
            Assert.AreEqual(runId, (string?)manifest["run_id"]);
            Assert.AreEqual("completed", (string?)manifest["status"], manifest.ToJsonString());
            string model = (string)manifest["model"]!;
            double lr = (double)manifest["configuration"]!["optimizer"]!["hyperparameters"]!["lr"]!;
            CheckTrace(Path.Combine(matrixDir, runId!, "trace.parquet"), model, lr);
        }

        var summaryPath = Path.Combine(matrixDir, "summary.parquet");
        var summary = DuckDb.ReadParquet(summaryPath, "run_id");
        Assert.HasCount(4, summary);
        CollectionAssert.AreEqual(runDirs, summary.Select(r => (string?)r["run_id"]).ToList());
        foreach (var row in summary)
        {
            Assert.AreEqual("e2e", row["matrix"]);
            Assert.AreEqual("gd", row["optimizer"]);
            Assert.AreEqual("completed", row["status"]);
            Assert.AreEqual(Steps, DuckDb.Long(row["steps_completed"]));
            Assert.AreEqual(0L, DuckDb.Long(row["init_seed"]));
            var trace = DuckDb.ReadParquet(Path.Combine(matrixDir, (string)row["run_id"]!, "trace.parquet"), "step");
            var last = trace[^1];
            Assert.AreEqual(DuckDb.Double(last["train_loss"]), DuckDb.Double(row["final_train_loss"]), "final_train_loss = the trace's last train_loss");
            Assert.AreEqual(DuckDb.Double(last["sharpness"]), DuckDb.Double(row["final_sharpness"]), "final_sharpness = the trace's last sharpness");
            Assert.IsTrue(row["model"] is "quadratic" or "fashion_mlp", $"model {row["model"]}");
            if ((string)row["model"]! == "quadratic")
                Assert.IsNull(row["final_train_accuracy"], "the quadratic is not a classifier");
            else
                Assert.IsNotNull(row["final_test_accuracy"]);
        }
        var summarySchema = DuckDb.Schema(summaryPath);
        foreach (var c in new[] { "run_id", "matrix", "label", "optimizer", "model", "status", "reason" })
            Assert.AreEqual("BYTE_ARRAY", summarySchema[c].Type, c);
        foreach (var c in new[] { "init_seed", "data_seed", "steps_completed" })
            Assert.AreEqual(("INT64", "REQUIRED"), (summarySchema[c].Type, summarySchema[c].Repetition), c);
        Assert.AreEqual(("DOUBLE", "OPTIONAL"), (summarySchema["final_sharpness"].Type, summarySchema["final_sharpness"].Repetition));

        // Re-running the same matrix skips every finished run: no trace is rewritten, no attempt is set aside.
        var traceTimes = runDirs.ToDictionary(r => r!, r => File.GetLastWriteTimeUtc(Path.Combine(matrixDir, r!, "trace.parquet")));
        var traceBytes = runDirs.ToDictionary(r => r!, r => File.ReadAllBytes(Path.Combine(matrixDir, r!, "trace.parquet")));
        using (var second = HarnessProcess.Run(work, TimeSpan.FromSeconds(120), ["run", matrixFile, .. HarnessProcess.RunOptions(results)]))
        {
            Assert.AreEqual(0, second.ExitCode, second.Output);
            foreach (var runId in runDirs)
                StringAssert.Contains(second.StdErr, $"run {runId} (", second.Output);
            Assert.AreEqual(4, second.StdErr.Split('\n').Count(l => l.Contains("already completed: skipped", StringComparison.Ordinal)), second.Output);
            Assert.IsFalse(second.StdErr.Contains(" started: ", StringComparison.Ordinal), "a finished run was started again\n" + second.Output);
        }
        foreach (var runId in runDirs)
        {
            var trace = Path.Combine(matrixDir, runId!, "trace.parquet");
            Assert.AreEqual(traceTimes[runId!], File.GetLastWriteTimeUtc(trace), $"{runId}: trace rewritten by the re-run");
            CollectionAssert.AreEqual(traceBytes[runId!], File.ReadAllBytes(trace), $"{runId}: trace changed by the re-run");
            Assert.IsFalse(Directory.Exists(Path.Combine(matrixDir, runId!, "attempts")), $"{runId}: re-run set an attempt aside");
        }
        Assert.HasCount(4, DuckDb.ReadParquet(summaryPath));
        Directory.Delete(work, true);
    }

    private static void CheckTrace(string path, string model, double lr)
    {
        var columns = DuckDb.Describe(path);
        string[] expectedFirst = ["step", "matrix", "run_id", "time_s", "lr", "threshold", "train_loss", "grad_norm", "step_seconds"];
        CollectionAssert.AreEqual(expectedFirst, columns.Take(expectedFirst.Length).Select(c => c.Name).ToList(), path);
        foreach (var c in new[] { "sharpness", "sharpness_residual", "sharpness_iterations", "edge_ratio",
                                  "train_accuracy", "test_loss", "test_accuracy",
                                  "probe_sharpness_seconds", "probe_sharpness_hvps", "probe_accuracy_seconds", "probe_accuracy_hvps" })
            Assert.IsTrue(columns.Any(x => x.Name == c), $"{path}: no column {c} in {string.Join(", ", columns.Select(x => x.Name))}");
        // Counts are integers, flags booleans, the rest doubles (docs/parquet.md; every type is checked in ParquetDocsTests).
        string[] counts = ["step", "sharpness_iterations", "probe_sharpness_hvps", "probe_sharpness_grad_evals", "probe_sharpness_interval",
                           "probe_accuracy_hvps", "probe_accuracy_grad_evals", "probe_accuracy_interval", "probe_event"];
        string[] flags = ["sharpness_converged", "edge_crossing"];
        foreach (var (name, type) in columns)
            Assert.AreEqual(name is "matrix" or "run_id" ? "VARCHAR" : counts.Contains(name) ? "BIGINT" : flags.Contains(name) ? "BOOLEAN" : "DOUBLE", type, $"{path}: {name}");
        var schema = DuckDb.Schema(path);
        foreach (var required in new[] { "step", "matrix", "run_id" }) Assert.AreEqual("REQUIRED", schema[required].Repetition, required);
        Assert.IsTrue(schema.Where(kv => kv.Key is not ("step" or "matrix" or "run_id")).All(kv => kv.Value.Repetition == "OPTIONAL"));

        var rows = DuckDb.ReadParquet(path);
        CollectionAssert.AreEqual(Enumerable.Range(0, (int)Steps + 1).Select(i => (long)i).ToList(),
            rows.Select(r => DuckDb.Long(r["step"])).ToList(), $"{path}: one row per step 0..{Steps}, in order");
        foreach (var r in rows)
        {
            long step = DuckDb.Long(r["step"]);
            string at = $"{path} step {step}";
            Assert.AreEqual(lr, DuckDb.Double(r["lr"]), at);
            Assert.AreEqual(2 / lr, DuckDb.Double(r["threshold"])!.Value, 1e-9, at);
            Assert.IsTrue(double.IsFinite(DuckDb.Double(r["train_loss"])!.Value), at);
            Assert.IsTrue(DuckDb.Double(r["grad_norm"]) >= 0, at);
            Assert.IsNotNull(r["time_s"], at);
            Assert.AreEqual(step == Steps, r["step_seconds"] is null, $"{at}: step_seconds is null on the final row only");

            bool sharpnessStep = step % 5 == 0 || step == Steps;
            foreach (var c in new[] { "sharpness", "sharpness_iterations", "probe_sharpness_seconds", "probe_sharpness_hvps" })
                Assert.AreEqual(sharpnessStep, r[c] is not null, $"{at}: {c} is measured exactly on probe steps");
            bool accuracyStep = step % 10 == 0 || step == Steps;
            Assert.AreEqual(accuracyStep, r["probe_accuracy_seconds"] is not null, $"{at}: probe_accuracy_seconds");
            if (model == "quadratic")
            {
                Assert.IsNull(r["train_accuracy"], $"{at}: the quadratic has no accuracy");
                Assert.IsNull(r["test_loss"], $"{at}: the quadratic has no test set");
                if (sharpnessStep)
                {
                    Assert.AreEqual(QuadraticLambdaMax, DuckDb.Double(r["sharpness"])!.Value, 1e-6, $"{at}: λ1(A)");
                    Assert.AreEqual(QuadraticLambdaMax / (2 / lr), DuckDb.Double(r["edge_ratio"])!.Value, 1e-6, $"{at}: edge ratio");
                }
            }
            else
            {
                Assert.AreEqual(accuracyStep, r["test_accuracy"] is not null, $"{at}: test_accuracy on accuracy steps only");
                if (sharpnessStep) Assert.IsTrue(DuckDb.Double(r["sharpness"]) > 0, $"{at}: sharpness of the MLP is positive");
            }
        }
        // Gradient descent below 2/λ_max decreases the quadratic's loss monotonically.
        if (model == "quadratic")
        {
            var losses = rows.Select(r => DuckDb.Double(r["train_loss"])!.Value).ToList();
            for (int i = 1; i < losses.Count; i++) Assert.IsLessThan(losses[i - 1], losses[i], $"{path}: loss rose at step {i}");
        }
    }
}
