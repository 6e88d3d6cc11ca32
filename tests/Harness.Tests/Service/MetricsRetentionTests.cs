using System.Net;
using System.Text.RegularExpressions;

namespace Harness.Tests.Service;

/// <summary>/metrics of a real <c>harness serve</c> in a service that runs for weeks: ended runs' series go away after
/// the retention (counters and histograms included), and runs are told apart by matrix and run id.</summary>
[TestClass]
public sealed class MetricsRetentionTests
{
    private static string Matrix(string name, int runs) => $$"""
        name: {{name}}
        models: [ { name: quadratic, hyperparameters: { dim: 3 } } ]
        optimizers: [ { name: gd, hyperparameters: { lr: [{{string.Join(", ", Enumerable.Range(1, runs).Select(i => $"0.0{i}"))}}] } } ]
        training: { steps: 5 }
        """;

    private static List<string> RunSamples(string metrics) =>
        metrics.Split('\n').Where(l => l.StartsWith("harness_", StringComparison.Ordinal) && l.Contains("run=\"", StringComparison.Ordinal)).ToList();

    [TestMethod]
    public void EndedRunsSeriesDisappearAfterTheRetention()
    {
        using var svc = new ServiceProcess("svc-retention", withAbortingPlugin: false);
        svc.Start("--metrics-retention", "2", "--workers", "2");
        svc.WaitReady();
        svc.Submit(Matrix("many", 8));
        svc.WaitMatrix("many", "completed", TimeSpan.FromMinutes(4));
        string right = svc.Get("/metrics").Content.ReadAsStringAsync().Result;
        // Bounded wait: the retention (2 s) plus one pruning period; then nothing of the 8 ended runs is left.
        List<string> left = [];
        svc.Until(() =>
        {
            left = RunSamples(svc.Get("/metrics").Content.ReadAsStringAsync().Result);
            return left.Count == 0;
        }, TimeSpan.FromSeconds(30), "no series of ended runs in /metrics");
        Assert.IsEmpty(left, string.Join("\n", left));
        // Still served, and new runs are reported again after the instruments were replaced.
        svc.Submit(Matrix("again", 1));
        svc.WaitMatrix("again", "completed", TimeSpan.FromMinutes(2));
        var again = RunSamples(svc.Get("/metrics").Content.ReadAsStringAsync().Result);
        Assert.IsTrue(again.Any(l => l.StartsWith("harness_steps_total{", StringComparison.Ordinal) && l.Contains("matrix=\"again\"") && l.EndsWith(" 5")),
            "the new run's step counter after a rotation:\n" + string.Join("\n", again) + "\nbefore:\n" + right);
    }

    [TestMethod]
    public void TwoMatricesWithTheSameConfigurationAreBothVisible()
    {
        using var svc = new ServiceProcess("svc-samerun", withAbortingPlugin: false);
        svc.Start();
        svc.WaitReady();
        svc.Submit(Matrix("first", 1));
        svc.WaitMatrix("first", "completed", TimeSpan.FromMinutes(2));
        svc.Submit(Matrix("second", 1));
        svc.WaitMatrix("second", "completed", TimeSpan.FromMinutes(2));
        string runId = (string)svc.Matrix("first")["runs"]![0]!["run_id"]!;
        Assert.AreEqual(runId, (string)svc.Matrix("second")["runs"]![0]!["run_id"]!, "identical configurations share the run id");

        var samples = RunSamples(svc.Get("/metrics").Content.ReadAsStringAsync().Result);
        foreach (var matrix in new[] { "first", "second" })
        {
            var status = samples.Where(l => l.StartsWith("harness_run_status{", StringComparison.Ordinal) && l.Contains($"matrix=\"{matrix}\"")
                && l.Contains($"run=\"{runId}\"") && l.Contains("status=\"completed\"")).ToList();
            Assert.HasCount(1, status, $"{matrix}:\n" + string.Join("\n", samples));
            Assert.IsTrue(samples.Any(l => Regex.IsMatch(l, $"^harness_steps_total\\{{.*matrix=\"{matrix}\".*\\}} 5$")), $"{matrix} steps:\n" + string.Join("\n", samples));

            var r = svc.Get($"/api/matrices/{matrix}/runs/{runId}");
            Assert.AreEqual(HttpStatusCode.OK, r.StatusCode);
            var run = svc.Json(r);
            Assert.AreEqual(matrix, (string)run["matrix"]!);
            Assert.AreEqual("completed", (string)run["status"]!);
        }
        Assert.AreEqual(HttpStatusCode.NotFound, svc.Get($"/api/matrices/third/runs/{runId}").StatusCode);
    }
}
