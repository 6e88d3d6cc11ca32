using System.Net;
using System.Text.Json.Nodes;

namespace Harness.Tests.Service;

/// <summary>Runs execute in supervised worker processes: a plugin that crashes natively or eats memory fails only
/// its own run; the matrix completes the rest; the service answers health checks throughout.</summary>
[TestClass]
public sealed class ServiceIsolationTests
{
    [TestMethod]
    public void NativeAbortMemoryHogAndTimeLimitFailOnlyTheirRuns()
    {
        using var svc = new ServiceProcess("svc-isolation", withAbortingPlugin: true);
        svc.Start("--run-memory-limit", "1500", "--run-time-limit", "25");
        svc.WaitReady();
        var submitted = svc.Submit("""
            name: isolation
            models:
              - name: quadratic
                hyperparameters: { dim: 4 }
            optimizers:
              - name: gd
                hyperparameters: { lr: [0.1, 0.2] }
              - name: abort_gd
                hyperparameters: { lr: 0.1, abort_at_step: 3 }
              - name: abort_gd
                hyperparameters: { lr: 0.05, hog_at_step: 0 }
              - name: abort_gd
                hyperparameters: { lr: 0.02, sleep_ms: 200 }
              - name: abort_gd
                hyperparameters: { lr: 0.03, overflow_at_step: 2 }
            training: { steps: 300 }
            """);
        Assert.AreEqual(6, submitted["runs"]!.AsArray().Count);

        var matrix = svc.WaitMatrix("isolation", "completed", TimeSpan.FromSeconds(240));
        var runs = matrix["runs"]!.AsArray().Select(r => r!.AsObject()).ToList();
        var gd = runs.Where(r => ((string)r["run_id"]!).StartsWith("gd-")).ToList();
        Assert.AreEqual(2, gd.Count);
        foreach (var r in gd) Assert.AreEqual("completed", (string?)r["status"], r.ToJsonString());

        var aborted = runs.Single(r => ((string)r["label"]!).Contains("abort_at_step=3"));
        Assert.AreEqual("failed", (string?)aborted["status"]);
        StringAssert.Contains((string)aborted["reason"]!, "SIGABRT");
        StringAssert.Contains((string)aborted["reason"]!, "exit code 134");

        var hog = runs.Single(r => ((string)r["label"]!).Contains("hog_at_step=0"));
        Assert.AreEqual("failed", (string?)hog["status"]);
        StringAssert.Contains((string)hog["reason"]!, "memory limit");

        // A .NET stack overflow ends the worker with SIGABRT; the runtime's message is in the recorded stderr tail.
        var overflow = runs.Single(r => ((string)r["label"]!).Contains("overflow_at_step=2"));
        Assert.AreEqual("failed", (string?)overflow["status"]);
        StringAssert.Contains((string)overflow["reason"]!, "SIGABRT");
        string overflowStderr = Path.Combine(svc.Results, "isolation", (string)overflow["run_id"]!, "worker-stderr.txt");
        StringAssert.Contains(File.ReadAllText(overflowStderr), "Stack overflow");
        Assert.IsTrue(new FileInfo(overflowStderr).Length <= 4096, "only the tail is kept");

        var slow = runs.Single(r => ((string)r["label"]!).Contains("sleep_ms=200"));
        Assert.AreEqual("failed", (string?)slow["status"]);
        StringAssert.Contains((string)slow["reason"]!, "time limit");

        // The run's details point at the recorded stderr tail; the manifest on disk says the same.
        var details = svc.Json(svc.Get("/api/runs/" + (string)aborted["run_id"]!));
        Assert.IsNotNull((string?)details["worker_stderr"], details.ToJsonString());
        Assert.IsTrue(File.Exists((string)details["worker_stderr"]!));
        Assert.AreEqual("failed", (string?)details["manifest_content"]!["status"]);

        // Summary: every run exactly once with its status.
        string summary = Path.Combine(svc.Results, "isolation", "summary.parquet");
        var statuses = ParquetQuery.Rows($"SELECT status, count(*) FROM read_parquet({ParquetQuery.Q(summary)}) GROUP BY status ORDER BY status")
            .ToDictionary(r => (string)r[0]!, r => Convert.ToInt64(r[1]));
        Assert.AreEqual(2L, statuses["completed"]);
        Assert.AreEqual(4L, statuses["failed"]);

        // The service is still up and takes more work after the crashes, also from the inbox (the same queue).
        Assert.AreEqual(HttpStatusCode.OK, svc.Get("/healthz").StatusCode);
        File.WriteAllText(Path.Combine(svc.Root, "inbox", "after-crash.yaml"), """
            name: after-crash
            models: [ { name: quadratic } ]
            optimizers: [ { name: gd } ]
            training: { steps: 5 }
            """);
        svc.Until(() => svc.Get("/api/matrices/after-crash").StatusCode == HttpStatusCode.OK, TimeSpan.FromSeconds(30), "the inbox file queued");
        var after = svc.WaitMatrix("after-crash", "completed", TimeSpan.FromSeconds(120));
        Assert.AreEqual(1, (int)after["runs_by_status"]!["completed"]!);
        Assert.IsTrue(File.Exists(Path.Combine(svc.Root, "inbox", "done", "after-crash.yaml")));
    }
}
