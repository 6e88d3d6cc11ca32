using System.Text.Json.Nodes;

namespace Harness.Tests.Service;

/// <summary>Restart safety: the host killed with SIGKILL mid-matrix, or stopped with SIGTERM, resumes the matrix on
/// its next start; every run id appears once in the summary and no trace has a duplicate step.</summary>
[TestClass]
public sealed class ServiceRestartTests
{
    private const string Matrix = """
        name: restart
        models:
          - name: quadratic
            hyperparameters: { dim: 8 }
        optimizers:
          - name: gd
            hyperparameters: { lr: [0.01, 0.02, 0.03] }
        training: { steps: 15000, checkpoint_every: 1000 }
        """;

    private static JsonObject? Running(JsonObject matrix, long past = 600) =>
        matrix["runs"]!.AsArray().Select(r => r!.AsObject()).FirstOrDefault(r => (string?)r["status"] == "running" && (long)r["step"]! > past);

    [TestMethod]
    public void KillDashNineMidMatrixThenRestartCompletesEachRunOnce()
    {
        using var svc = new ServiceProcess("svc-kill9", withAbortingPlugin: false);
        svc.Start();
        svc.WaitReady();
        svc.Submit(Matrix);
        // Mid-matrix: one run finished, the next one well under way (its trace has flushed row groups).
        JsonObject? victim = null;
        svc.Until(() =>
        {
            var m = svc.Matrix("restart");
            victim = Running(m, past: 1500);
            return victim is not null && (int?)m["runs_by_status"]!["completed"] >= 1;
        }, TimeSpan.FromSeconds(240), "one run completed and another past step 1500 (a checkpoint at 1000)");
        string victimId = (string)victim!["run_id"]!;

        svc.Process!.Kill(); // SIGKILL, the host only
        svc.Process.WaitForExit(10_000);
        // Its worker notices (stdin closed) and ends itself.
        svc.Until(() => svc.WorkerPids().Count == 0, TimeSpan.FromSeconds(30), "orphaned workers gone");
        var killedManifest = JsonNode.Parse(File.ReadAllText(Path.Combine(svc.Results, "restart", victimId, "manifest.json")))!;
        Assert.AreEqual("running", (string?)killedManifest["status"], "the killed run never ended cleanly");

        svc.Start();
        svc.WaitReady();
        var done = svc.WaitMatrix("restart", "completed", TimeSpan.FromSeconds(300));
        Assert.AreEqual(3, (int)done["runs_by_status"]!["completed"]!, done.ToJsonString());
        AssertEachRunOnceWithoutDuplicateSteps(svc, 3, 15000);
        var attempts = Directory.GetFiles(Path.Combine(svc.Results, "restart", victimId, "attempts"));
        Assert.AreEqual(1, attempts.Length, "the interrupted attempt's trace is kept aside");
        // The restarted run resumed from its checkpoint: the rows before it are the old attempt's (same time stamps).
        var copied = ParquetQuery.Rows($"SELECT count(*) FROM read_parquet({ParquetQuery.Q(attempts[0])}) o JOIN " +
            $"read_parquet({ParquetQuery.Q(Path.Combine(svc.Results, "restart", victimId, "trace.parquet"))}) n ON o.step = n.step AND o.time_s = n.time_s");
        Assert.IsTrue(Convert.ToInt64(copied[0][0]) >= 1000, $"rows copied from the checkpointed attempt: {copied[0][0]}");
    }

    [TestMethod]
    public void SigtermInterruptsGracefullyAndTheNextStartResumes()
    {
        using var svc = new ServiceProcess("svc-sigterm", withAbortingPlugin: false);
        svc.Start("--grace", "30");
        svc.WaitReady();
        svc.Submit(Matrix);
        JsonObject? victim = null;
        svc.Until(() => (victim = Running(svc.Matrix("restart"))) is not null, TimeSpan.FromSeconds(240), "a run past step 600");
        string victimId = (string)victim!["run_id"]!;
        svc.Terminate();
        Assert.IsTrue(svc.Process!.WaitForExit(60_000), "the host exits within its grace period\n" + svc.Log);
        Assert.AreEqual(0, svc.Process.ExitCode, svc.Log);
        Assert.AreEqual(0, svc.WorkerPids().Count, "no worker outlives the host");
        var m = JsonNode.Parse(File.ReadAllText(Path.Combine(svc.Results, "restart", victimId, "manifest.json")))!;
        Assert.AreEqual("interrupted", (string?)m["status"], m.ToJsonString());
        var state = JsonNode.Parse(File.ReadAllText(Path.Combine(svc.Results, "restart", "service.json")))!;
        Assert.AreEqual("interrupted", (string?)state["state"]);

        svc.Start();
        svc.WaitReady();
        svc.WaitMatrix("restart", "completed", TimeSpan.FromSeconds(300));
        AssertEachRunOnceWithoutDuplicateSteps(svc, 3, 15000);
    }

    private static void AssertEachRunOnceWithoutDuplicateSteps(ServiceProcess svc, int runs, long steps)
    {
        string dir = Path.Combine(svc.Results, "restart");
        var ids = ParquetQuery.Rows($"SELECT run_id, status FROM read_parquet({ParquetQuery.Q(Path.Combine(dir, "summary.parquet"))})");
        Assert.AreEqual(runs, ids.Count);
        Assert.AreEqual(runs, ids.Select(r => (string)r[0]!).Distinct().Count(), "every run id exactly once");
        Assert.IsTrue(ids.All(r => (string)r[1]! == "completed"));
        foreach (var id in ids.Select(r => (string)r[0]!))
        {
            var t = ParquetQuery.Rows($"SELECT count(*), count(DISTINCT step), min(step), max(step) FROM read_parquet({ParquetQuery.Q(Path.Combine(dir, id, "trace.parquet"))})")[0];
            Assert.AreEqual(Convert.ToInt64(t[0]), Convert.ToInt64(t[1]), $"{id}: duplicate steps");
            Assert.AreEqual(0L, Convert.ToInt64(t[2]));
            Assert.AreEqual(steps, Convert.ToInt64(t[3]));
            Assert.AreEqual(steps + 1, Convert.ToInt64(t[0]));
        }
    }
}
