using System.Text.RegularExpressions;
using Harness.Tests.Service;

namespace Harness.Tests.Workers;

/// <summary><c>harness serve</c> executes the runs of a matrix in one worker process in turn, as <c>harness run</c>
/// does (they share its start-up), and ends that worker when the matrix ends; a worker that crashes fails only its
/// run and the next run gets a fresh worker.</summary>
[TestClass]
public sealed partial class ServiceWorkerReuseTests
{
    [TestMethod]
    public void RunsOfAMatrixShareOneWorkerAndACrashFailsOnlyItsRun()
    {
        using var svc = new ServiceProcess("svc-reuse", withAbortingPlugin: true);
        svc.Start();
        svc.WaitReady();
        var submitted = svc.Submit("""
            name: reuse
            models:
              - name: quadratic
                hyperparameters: { dim: 4 }
            optimizers:
              - name: gd
                hyperparameters: { lr: [0.1, 0.2, 0.3, 0.4] }
            training: { steps: 5 }
            """);
        Assert.AreEqual(4, submitted["runs"]!.AsArray().Count);
        var matrix = svc.WaitMatrix("reuse", "completed", TimeSpan.FromSeconds(180));
        foreach (var r in matrix["runs"]!.AsArray()) Assert.AreEqual("completed", (string?)r!["status"], r.ToJsonString());

        // Every run names the worker it started in: one new worker, reused by the other three runs.
        var started = StartedIn().Matches(svc.Log).Select(m => (how: m.Groups["how"].Value, pid: m.Groups["pid"].Value)).ToList();
        Assert.HasCount(4, started, svc.Log);
        Assert.AreEqual(1, started.Count(s => s.how == "new"), svc.Log);
        Assert.AreEqual(3, started.Count(s => s.how == "reused"), svc.Log);
        Assert.AreEqual(1, started.Select(s => s.pid).Distinct().Count(), svc.Log);

        // The matrix has ended: its worker is not left idle.
        svc.Until(() => svc.WorkerPids().Count == 0, TimeSpan.FromSeconds(30), "the matrix's worker ended");

        // A crash in a reused worker fails only its run; the run after it starts in a fresh worker.
        int before = StartedIn().Matches(svc.Log).Count;
        svc.Submit("""
            name: crash
            models:
              - name: quadratic
                hyperparameters: { dim: 4 }
            optimizers:
              - name: gd
                hyperparameters: { lr: 0.1 }
              - name: abort_gd
                hyperparameters: { lr: 0.1, abort_at_step: 3 }
              - name: heavy_ball
                hyperparameters: { lr: 0.1 }
            training: { steps: 5 }
            """);
        var crash = svc.WaitMatrix("crash", "completed", TimeSpan.FromSeconds(180));
        var runs = crash["runs"]!.AsArray().Select(r => r!.AsObject()).ToList();
        var aborted = runs.Single(r => ((string)r["run_id"]!).StartsWith("abort_gd-"));
        Assert.AreEqual("failed", (string?)aborted["status"], aborted.ToJsonString());
        StringAssert.Contains((string)aborted["reason"]!, "SIGABRT");
        foreach (var r in runs.Where(r => r != aborted)) Assert.AreEqual("completed", (string?)r["status"], r.ToJsonString());
        var second = StartedIn().Matches(svc.Log).Skip(before).Select(m => (run: m.Groups["run"].Value, how: m.Groups["how"].Value, pid: m.Groups["pid"].Value)).ToList();
        Assert.HasCount(3, second, svc.Log);
        var byRun = second.ToDictionary(s => s.run[..s.run.IndexOf('-')]);
        Assert.AreEqual("new", byRun["gd"].how, svc.Log);
        Assert.AreEqual(("reused", byRun["gd"].pid), (byRun["abort_gd"].how, byRun["abort_gd"].pid), svc.Log);
        Assert.AreEqual("new", byRun["heavy_ball"].how, svc.Log);
        Assert.AreNotEqual(byRun["gd"].pid, byRun["heavy_ball"].pid, svc.Log);
        svc.Until(() => svc.WorkerPids().Count == 0, TimeSpan.FromSeconds(30), "the matrix's workers ended");
    }

    [GeneratedRegex(@"run (?<run>\S+) \(.*?\) started in (?<how>new|reused) worker pid (?<pid>\d+)")]
    private static partial Regex StartedIn();
}
