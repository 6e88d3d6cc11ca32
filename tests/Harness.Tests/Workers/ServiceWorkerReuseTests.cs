using System.Text.RegularExpressions;
using Harness.Tests.Service;

namespace Harness.Tests.Workers;

/// <summary><c>harness serve</c> executes the runs of a matrix in one worker process in turn, as <c>harness run</c>
/// does (they share its start-up), and ends that worker when the matrix ends. Crash isolation with reuse in the
/// service (a crashed worker fails only its run; the next run gets a fresh one) is ServiceIsolationTests.</summary>
[TestClass]
public sealed partial class ServiceWorkerReuseTests
{
    [TestMethod]
    public void RunsOfAMatrixShareOneWorker()
    {
        using var svc = new ServiceProcess("svc-reuse", withAbortingPlugin: false);
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
    }

    [GeneratedRegex(@"started in (?<how>new|reused) worker pid (?<pid>\d+)")]
    private static partial Regex StartedIn();
}
