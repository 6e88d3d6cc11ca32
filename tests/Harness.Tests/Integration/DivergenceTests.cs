using System.Text.Json.Nodes;

namespace Harness.Tests.Integration;

/// <summary>A run that blows up or produces non-finite values is recorded as <c>diverged</c> and the matrix goes on.
/// Gradient descent on ½θᵀAθ (float64) diverges exactly when lr &gt; 2/λ_max (here λ_max = 10, 2/λ_max = 0.2).</summary>
[TestClass]
public sealed class DivergenceTests
{
    private static string Matrix(string name, string divergingLr) => $"""
        name: {name}
        dtype: float64
        models:
          - name: quadratic
            hyperparameters: {"{"} dim: 6, lambda_max: 10, lambda_min: 1 {"}"}
        optimizers:
          - name: gd
            hyperparameters:
              lr: [{divergingLr}, 0.1]
        training:
          steps: 400
        probes:
          - name: sharpness
            every: 50
        """;

    [TestMethod]
    // lr 0.25: |1 − 0.25·10| = 1.5, the loss grows ×2.25 per step until it exceeds 1000 × the initial loss.
    [DataRow("blowup", "0.25", "exceeds divergence_factor", DisplayName = "loss blow-up past divergence_factor")]
    // lr 1e200: θ_1 ≈ 1e201, the loss overflows to +inf at step 1.
    [DataRow("nonfinite", "1e200", "non-finite loss at step 1", DisplayName = "non-finite loss")]
    public void DivergedRunIsRecordedAndTheMatrixGoesOn(string name, string divergingLr, string reason)
    {
        var work = Paths.NewTempDirectory("diverge");
        var results = Path.Combine(work, "results");
        var file = Path.Combine(work, name + ".yaml");
        // The diverging learning rate comes first, so the completed run is one that ran after the divergence.
        File.WriteAllText(file, Matrix(name, divergingLr));

        using var p = HarnessProcess.Run(work, TimeSpan.FromSeconds(120), ["run", file, .. HarnessProcess.RunOptions(results)]);
        Assert.AreEqual(0, p.ExitCode, "a diverged run is a result, not a failure of the matrix\n" + p.Output);

        var dir = Path.Combine(results, name);
        var summary = DuckDb.Query($"SELECT * FROM read_parquet({DuckDb.Quote(Path.Combine(dir, "summary.parquet"))})");
        Assert.HasCount(2, summary, p.Output);
        var diverged = summary.Single(r => r["label"] is string l && l.Contains("lr=" + (divergingLr == "1e200" ? "1E+200" : divergingLr)));
        var completed = summary.Single(r => r["label"] is string l && l.Contains("lr=0.1"));
        Assert.AreEqual("diverged", diverged["status"], p.Output);
        StringAssert.Contains((string)diverged["reason"]!, reason);
        Assert.AreEqual("completed", completed["status"], p.Output);
        Assert.AreEqual(400L, DuckDb.Long(completed["steps_completed"]));

        long stopped = DuckDb.Long(diverged["steps_completed"]);
        Assert.IsLessThan(400L, stopped, "the diverged run stopped early");
        var manifest = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, (string)diverged["run_id"]!, "manifest.json")))!;
        Assert.AreEqual("diverged", (string?)manifest["status"]);

        // Its trace is complete up to the step where it stopped; the last loss is the one that ended it.
        var trace = DuckDb.Query($"SELECT step, train_loss FROM read_parquet({DuckDb.Quote(Path.Combine(dir, (string)diverged["run_id"]!, "trace.parquet"))}) ORDER BY step");
        CollectionAssert.AreEqual(Enumerable.Range(0, (int)stopped + 1).Select(i => (long)i).ToList(), trace.Select(r => DuckDb.Long(r["step"])).ToList());
        double lastLoss = DuckDb.Double(trace[^1]["train_loss"])!.Value;
        double firstLoss = DuckDb.Double(trace[0]["train_loss"])!.Value;
        if (name == "blowup") Assert.IsGreaterThan(1000 * firstLoss, lastLoss);
        else Assert.IsFalse(double.IsFinite(lastLoss), $"last loss {lastLoss}");
        Directory.Delete(work, true);
    }
}
