using Harness.Tests.Integration;

namespace Harness.Tests.Reports;

/// <summary>Traces and summary are tidy and typed, as DuckDB (an independent reader) sees them.</summary>
[TestClass]
public sealed class TypedResultsTests
{
    private static string Dir => ReportFixture.MatrixDirectory;
    private static string Traces => DuckDb.Quote(Path.Combine(Dir, "**", "trace.parquet"));
    private static string Summary => DuckDb.Quote(Path.Combine(Dir, "summary.parquet"));

    [TestMethod]
    public void TraceColumnsHaveTheirTypes()
    {
        var trace = Directory.GetFiles(Dir, "trace.parquet", SearchOption.AllDirectories).First(f => f.Contains("gd-"));
        var types = DuckDb.Describe(trace).ToDictionary(c => c.Name, c => c.Type);
        var expected = new Dictionary<string, string>
        {
            ["step"] = "BIGINT", ["matrix"] = "VARCHAR", ["run_id"] = "VARCHAR", ["train_loss"] = "DOUBLE", ["lr"] = "DOUBLE",
            ["sharpness"] = "DOUBLE", ["sharpness_iterations"] = "BIGINT", ["sharpness_converged"] = "BOOLEAN", ["edge_crossing"] = "BOOLEAN",
            ["precond_sharpness_iterations"] = "BIGINT", ["precond_sharpness_converged"] = "BOOLEAN", ["precond_edge_crossing"] = "BOOLEAN",
            ["probe_sharpness_hvps"] = "BIGINT", ["probe_sharpness_grad_evals"] = "BIGINT", ["probe_sharpness_interval"] = "BIGINT",
            ["probe_sharpness_seconds"] = "DOUBLE", ["probe_event"] = "BIGINT", ["probe_time_fraction"] = "DOUBLE",
        };
        foreach (var (name, type) in expected) Assert.AreEqual(type, types.GetValueOrDefault(name), $"column {name}");
        // matrix and run_id are dictionary-encoded (one dictionary entry per row group, not a string per row)
        var encodings = DuckDb.Query($"SELECT path_in_schema, encodings FROM parquet_metadata({DuckDb.Quote(trace)}) WHERE path_in_schema IN ('matrix', 'run_id')");
        Assert.IsTrue(encodings.Count >= 2);
        foreach (var e in encodings) StringAssert.Contains((string)e["encodings"]!, "DICTIONARY", $"{e["path_in_schema"]}: {e["encodings"]}");
    }

    [TestMethod]
    public void SummaryHasTypedHyperparameterAndTargetColumns()
    {
        var types = DuckDb.Describe(Path.Combine(Dir, "summary.parquet")).ToDictionary(c => c.Name, c => c.Type);
        var expected = new Dictionary<string, string>
        {
            ["run_id"] = "VARCHAR", ["optimizer.lr"] = "DOUBLE", ["optimizer.beta1"] = "DOUBLE", ["optimizer.bias_correction"] = "BOOLEAN",
            ["optimizer.freeze_at_step"] = "BIGINT", ["model.dim"] = "BIGINT", ["model.rotated"] = "BOOLEAN", ["model.spectrum"] = "VARCHAR",
            ["model.lambda_max"] = "DOUBLE", ["probe.sharpness.max_iterations"] = "BIGINT", ["target_loss"] = "DOUBLE",
            ["steps_to_target"] = "BIGINT", ["seconds_to_target"] = "DOUBLE", ["final_train_loss"] = "DOUBLE", ["best_train_loss"] = "DOUBLE",
            ["init_seed"] = "BIGINT",
        };
        foreach (var (name, type) in expected) Assert.AreEqual(type, types.GetValueOrDefault(name), $"column {name}");
        var gd = DuckDb.Query($"SELECT \"optimizer.lr\" AS lr, \"optimizer.beta1\" AS b1 FROM {Summary} WHERE optimizer = 'gd' ORDER BY 1");
        Assert.AreEqual(0.5, DuckDb.Double(gd[0]["lr"]));
        Assert.IsNull(gd[0]["b1"], "GD has no beta1: null, not a string");
    }

    [TestMethod]
    public void TraceJoinsSummaryOnRunIdWithoutStringParsing()
    {
        // Per optimizer and learning rate: runs, and the first step where the loss reached the target, from the traces
        // alone; it must equal the summary's steps_to_target and best_train_loss of every run.
        var rows = DuckDb.Query($"""
            SELECT s.run_id, s.optimizer, s."optimizer.lr" AS lr, s.steps_to_target, s.best_train_loss, s.status,
                   min(t.step) FILTER (WHERE t.train_loss <= {ReportFixture.TargetLoss}) AS first_step,
                   min(t.train_loss) FILTER (WHERE isfinite(t.train_loss)) AS best, count(*) AS rows, any_value(t.matrix) AS matrix
            FROM read_parquet({Traces}) t JOIN {Summary} s USING (run_id)
            GROUP BY ALL ORDER BY s.run_id
            """);
        Assert.AreEqual(9, rows.Count, "3 configurations x 3 seeds");
        foreach (var r in rows)
        {
            Assert.AreEqual(ReportFixture.Matrix, r["matrix"]);
            Assert.AreEqual(r["first_step"] is null ? null : DuckDb.Long(r["first_step"]), r["steps_to_target"] is null ? null : (long?)DuckDb.Long(r["steps_to_target"]), $"{r["run_id"]}");
            Assert.AreEqual(DuckDb.Double(r["best"])!.Value, DuckDb.Double(r["best_train_loss"])!.Value, 0, $"{r["run_id"]}");
        }
        Assert.IsTrue(rows.Any(r => (string)r["status"]! == "diverged" && DuckDb.Double(r["lr"]) == 1.3), "lr 1.3 > 2/lambda_max diverges");
        Assert.IsTrue(rows.Where(r => DuckDb.Double(r["lr"]) == 0.5).All(r => r["steps_to_target"] is not null));
    }
}
