using Harness.Tests.Service;

namespace Harness.Tests.Integration;

/// <summary><c>harness run</c> executes the runs of a matrix in one worker process in turn (they share its start-up);
/// a worker that crashes fails only its run, and a fresh worker takes the rest.</summary>
[TestClass]
public sealed class WorkerReuseTests
{
    [TestMethod]
    public void RunsShareAWorkerAndACrashFailsOnlyItsRun()
    {
        var work = Paths.NewTempDirectory("worker-reuse");
        var plugins = Path.Combine(work, "plugins");
        Paths.CopyDirectory(Paths.PluginArtifacts, plugins);
        Paths.CopyDirectory(ServiceProcess.AbortingPlugin, Path.Combine(plugins, "AbortingOptimizer"));
        var file = Path.Combine(work, "reuse.yaml");
        File.WriteAllText(file, """
            name: reuse
            models:
              - name: quadratic
                hyperparameters: { dim: 4 }
            optimizers:
              - name: gd
                hyperparameters: { lr: [0.1, 0.2] }
              - name: abort_gd
                hyperparameters: { lr: 0.1, abort_at_step: 3 }
              - name: heavy_ball
                hyperparameters: { lr: 0.1 }
            training: { steps: 50 }
            """);
        var results = Path.Combine(work, "results");
        using var p = HarnessProcess.Run(work, TimeSpan.FromSeconds(180),
            ["run", file, "--plugins", plugins, "--results", results, "--metrics-url", "none", "--threads", "1", "--no-progress"]);
        Assert.AreEqual(1, p.ExitCode, "a failed run makes the matrix exit 1\n" + p.Output);

        var summary = DuckDb.Query($"SELECT run_id, status, reason FROM read_parquet({DuckDb.Quote(Path.Combine(results, "reuse", "summary.parquet"))})");
        Assert.HasCount(4, summary, p.Output);
        var aborted = summary.Single(r => ((string)r["run_id"]!).StartsWith("abort_gd-"));
        Assert.AreEqual("failed", aborted["status"], p.Output);
        StringAssert.Contains((string)aborted["reason"]!, "SIGABRT");
        foreach (var r in summary.Where(r => r != aborted)) Assert.AreEqual("completed", r["status"], p.Output);

        // gd 0.1 starts the worker, gd 0.2 and abort_gd reuse it, the crash ends it, heavy_ball gets a new one.
        string log = p.StdOut + p.StdErr;
        Assert.AreEqual(2, Count(log, "started in new worker"), p.Output);
        Assert.AreEqual(2, Count(log, "started in reused worker"), p.Output);
    }

    private static int Count(string text, string what)
    {
        int n = 0;
        for (int i = text.IndexOf(what, StringComparison.Ordinal); i >= 0; i = text.IndexOf(what, i + 1, StringComparison.Ordinal)) n++;
        return n;
    }
}
