using System.Text.Json.Nodes;

namespace Harness.Tests.Integration;

/// <summary>SIGKILL in the middle of a run leaves trace parts that DuckDB reads as one trace: a prefix of the steps,
/// without gaps or duplicates (each flush is a new part file, written under a .tmp name and renamed); the next attempt
/// compacts them into the killed attempt's trace.parquet, kept aside with the same rows.</summary>
[TestClass]
public sealed class KillTests
{
    // Long enough never to finish while the test watches it (it is killed after a few flushes).
    private const string Matrix = """
        name: killed
        dtype: float64
        models:
          - name: quadratic
            hyperparameters: { dim: 16, lambda_max: 10, lambda_min: 0.1 }
        optimizers:
          - name: gd
            hyperparameters: { lr: 0.1 }
        training:
          steps: 10000000
        probes:
          - name: sharpness
            every: 50
        """;

    [TestMethod]
    public void KilledRunLeavesAReadableTraceWithAPrefixOfTheSteps()
    {
        var work = Paths.NewTempDirectory("kill");
        var results = Path.Combine(work, "results");
        var file = Path.Combine(work, "killed.yaml");
        File.WriteAllText(file, Matrix);
        string matrixDir = Path.Combine(results, "killed");

        long rowsBeforeKill;
        string parts;
        using (var p = HarnessProcess.Start(work, ["run", file, .. HarnessProcess.RunOptions(results)]))
        {
            string? found = null;
            p.WaitUntil(() => (found = Directory.Exists(matrixDir)
                    ? Directory.GetDirectories(matrixDir, "trace.parts", SearchOption.AllDirectories).FirstOrDefault(d => Directory.GetFiles(d, "*.parquet").Length > 0) : null) is not null,
                TimeSpan.FromSeconds(60), "the first trace flush");
            parts = found!;
            // Let a few more row groups land (one every 2 s), then kill while it keeps appending.
            long Rows() { try { return DuckDb.Long(DuckDb.Query($"SELECT count(*) AS n FROM read_parquet({DuckDb.Quote(Path.Combine(parts, "*.parquet"))})")[0]["n"]); } catch { return 0; } }
            long firstRows = Rows();
            p.WaitUntil(() => Rows() > firstRows, TimeSpan.FromSeconds(60), "a second trace flush");
            Thread.Sleep(1300);
            rowsBeforeKill = Rows();
            p.Kill();
            Assert.IsTrue(p.HasExited);
            Assert.AreEqual(137, p.ExitCode, "killed by SIGKILL (128 + 9)");
        }

        string trace = Path.Combine(parts, "*.parquet");
        var steps = DuckDb.Query($"SELECT step, train_loss, lr FROM read_parquet({DuckDb.Quote(trace)}) ORDER BY step")
            .Select(r => DuckDb.Long(r["step"])).ToList();
        Assert.IsGreaterThanOrEqualTo(rowsBeforeKill, (long)steps.Count, "the kill lost rows that were already flushed");
        CollectionAssert.AreEqual(Enumerable.Range(0, steps.Count).Select(i => (long)i).ToList(), steps,
            "the trace holds steps 0..n-1 exactly once each");
        var inFileOrder = DuckDb.Query($"SELECT step FROM read_parquet({DuckDb.Quote(trace)}, filename = true, file_row_number = true) ORDER BY filename, file_row_number").Select(r => DuckDb.Long(r["step"])).ToList();
        CollectionAssert.AreEqual(steps, inFileOrder, "rows are stored in step order (parts in name order)");
        Assert.IsFalse(steps.Count == 0);

        // The manifest says the run never finished, so a re-run of the matrix would run it again.
        string runDir = Path.GetDirectoryName(parts)!;
        var manifest = JsonNode.Parse(File.ReadAllText(Path.Combine(runDir, "manifest.json")))!;
        Assert.AreEqual("running", (string?)manifest["status"]);

        // Re-running the matrix runs the unfinished run again and keeps the killed attempt's trace aside, unchanged.
        string attempts = Path.Combine(runDir, "attempts");
        using (var again = HarnessProcess.Start(work, ["run", file, .. HarnessProcess.RunOptions(results)]))
        {
            again.WaitUntil(() => again.StdErr.Contains(" started: ", StringComparison.Ordinal), TimeSpan.FromSeconds(60), "the unfinished run to start again");
            Assert.IsFalse(again.StdErr.Contains("skipped", StringComparison.Ordinal), again.Output);
            var aside = Directory.GetFiles(attempts, "trace.*.parquet");
            Assert.HasCount(1, aside);
            var kept = DuckDb.Query($"SELECT step FROM read_parquet({DuckDb.Quote(aside[0])}) ORDER BY step").Select(r => DuckDb.Long(r["step"])).ToList();
            CollectionAssert.AreEqual(steps, kept, "the killed attempt's rows are kept aside, compacted into one file");
        }
        Directory.Delete(work, true);
    }
}
