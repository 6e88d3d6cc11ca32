namespace Harness.Tests.Integration;

/// <summary><c>harness serve</c> with an inbox: a matrix file dropped into the inbox is queued, moves to inbox/done and runs; an
/// invalid one moves to inbox/failed with a .error.txt that holds its located errors. The service keeps serving.</summary>
[TestClass]
public sealed class ServeInboxTests
{
    private const string Good = """
        name: served
        dtype: float64
        models:
          - name: quadratic
            hyperparameters: { dim: 5, lambda_max: 3, lambda_min: 0.5 }
        optimizers:
          - name: gd
            hyperparameters: { lr: [0.1, 0.2] }
        training:
          steps: 20
        probes:
          - name: sharpness
            every: 10
        """;

    private const string Bad = """
        name: rejected
        models:
          - name: quadratic
        optimizers:
          - name: gd
            hyperparameters: { lr: 0 }
        training:
          steps: 20
        """;

    [TestMethod]
    public void DroppedMatricesRunOrAreRejectedWithTheirErrors()
    {
        var work = Paths.NewTempDirectory("serve");
        var inbox = Path.Combine(work, "inbox");
        var results = Path.Combine(work, "results");
        int port = HarnessProcess.FreePort();
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(5) };
        using var service = HarnessProcess.Start(work, "serve", "--inbox", inbox, "--results", results, "--plugins", Paths.PluginArtifacts,
            "--metrics-url", $"http://127.0.0.1:{port}", "--threads", "1");
        service.WaitUntil(() => Get(http, "/healthz") == "ok" && Directory.Exists(Path.Combine(inbox, "done")),
            TimeSpan.FromSeconds(60), "the service to answer /healthz and create its inbox");

        // Write elsewhere, then move in: the service never sees a half-written file.
        Drop(work, inbox, "good.yaml", Good);
        Drop(work, inbox, "bad.yaml", Bad);

        string done = Path.Combine(inbox, "done", "good.yaml");
        string failed = Path.Combine(inbox, "failed", "bad.yaml");
        service.WaitUntil(() => File.Exists(done) && File.Exists(failed + ".error.txt"), TimeSpan.FromSeconds(90),
            "good.yaml in inbox/done and bad.yaml in inbox/failed");
        Assert.IsTrue(File.Exists(failed), "the invalid matrix itself is kept in inbox/failed");
        Assert.IsFalse(File.Exists(Path.Combine(inbox, "good.yaml")) || File.Exists(Path.Combine(inbox, "bad.yaml")), "files left in the inbox");
        Assert.IsEmpty(Directory.GetFiles(Path.Combine(inbox, "running")));
        Assert.AreEqual(Good, File.ReadAllText(done), "the matrix file is moved unchanged");

        string error = File.ReadAllText(failed + ".error.txt");
        StringAssert.Contains(error, $"{failed}:6:", "the error names the file where it now is");
        StringAssert.Contains(error, "optimizers[0].hyperparameters.lr: value 0 is outside (0, inf]", error);
        Assert.IsFalse(Directory.Exists(Path.Combine(results, "rejected")), "the invalid matrix trained something");

        // inbox/done means "accepted into the queue": wait for the runs themselves to finish.
        string summaryPath = Path.Combine(results, "served", "summary.parquet");
        service.WaitUntil(() => File.Exists(summaryPath) && DuckDb.ReadParquet(summaryPath, "run_id") is { Count: 2 } rows
                                && rows.All(r => (string?)r["status"] != "running"),
            TimeSpan.FromSeconds(120), "both runs of good.yaml finished");
        var summary = DuckDb.ReadParquet(summaryPath, "run_id");
        Assert.HasCount(2, summary);
        Assert.IsTrue(summary.All(r => (string?)r["status"] == "completed"), string.Join("; ", summary.Select(r => r["status"])));

        // The service is still up and exports the finished runs' last values.
        Assert.IsFalse(service.HasExited, service.Output);
        var metrics = Get(http, "/metrics") ?? "";
        foreach (var r in summary)
            StringAssert.Contains(metrics, $"run=\"{r["run_id"]}\"", metrics);
        StringAssert.Contains(metrics, "harness_sharpness{", metrics);
        StringAssert.Contains(metrics, "status=\"completed\"", metrics);
        StringAssert.Contains(metrics, "service_name=\"harness\"", metrics);
        // Duration histograms have second-scale buckets (not OpenTelemetry's millisecond defaults 0, 5, 10, 25, ...).
        StringAssert.Contains(metrics, "harness_step_duration_seconds_bucket{", metrics);
        StringAssert.Contains(metrics, "le=\"0.01\"", metrics);
        service.Kill();
        Directory.Delete(work, true);
    }

    private static void Drop(string work, string inbox, string name, string text)
    {
        var staging = Path.Combine(work, name);
        File.WriteAllText(staging, text);
        File.Move(staging, Path.Combine(inbox, name));
    }

    private static string? Get(HttpClient http, string path)
    {
        try
        {
            using var response = http.GetAsync(path).GetAwaiter().GetResult();
            return response.IsSuccessStatusCode ? response.Content.ReadAsStringAsync().GetAwaiter().GetResult() : null;
        }
        catch (HttpRequestException) { return null; }
        catch (TaskCanceledException) { return null; }
    }
}
