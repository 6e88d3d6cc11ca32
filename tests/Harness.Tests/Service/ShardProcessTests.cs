using System.Diagnostics;

namespace Harness.Tests.Service;

/// <summary>Four <c>harness run --shard i/4</c> processes at once into one results tree produce exactly the runs
/// of one unsharded <c>harness run</c> (each run in its worker process, the default).</summary>
[TestClass]
public sealed class ShardProcessTests
{
    private const string Yaml = """
        name: shards
        models:
          - name: quadratic
            hyperparameters: { dim: 4 }
        optimizers:
          - name: gd
            hyperparameters: { lr: [0.1, 0.2, 0.3] }
          - name: heavy_ball
            hyperparameters: { lr: [0.1, 0.2] }
        seeds: { init: [0, 1], data: [0] }
        training: { steps: 20 }
        """;

    private static Process Run(string root, string results, params string[] extra)
    {
        var psi = new ProcessStartInfo(ServiceProcess.HostExecutable)
        {
            WorkingDirectory = root, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        foreach (var a in new[] { "run", Path.Combine(root, "shards.yaml"), "--plugins", Paths.PluginArtifacts, "--results", results,
                     "--metrics-url", "none", "--no-progress", "--threads", "1" }.Concat(extra))
            psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return p;
    }

    private static void Wait(Process p, string what)
    {
        if (!p.WaitForExit(300_000)) { p.Kill(true); Assert.Fail($"{what} did not finish in 300 s"); }
        Assert.AreEqual(0, p.ExitCode, $"{what} exit code");
    }

    private static List<string> SummaryIds(string matrixDir)
    {
        var summarize = Process.Start(new ProcessStartInfo(ServiceProcess.HostExecutable, ["summary", matrixDir]) { RedirectStandardOutput = true })!;
        Wait(summarize, "harness summary");
        return ParquetQuery.Rows($"SELECT run_id, status FROM read_parquet({ParquetQuery.Q(Path.Combine(matrixDir, "summary.parquet"))}) ORDER BY run_id")
            .Select(r => $"{r[0]} {r[1]}").ToList();
    }

    [TestMethod]
    public void FourShardProcessesProduceExactlyTheRunsOfOneUnshardedProcess()
    {
        string root = Paths.NewTempDirectory("shards");
        var procs = new List<Process>();
        try
        {
            File.WriteAllText(Path.Combine(root, "shards.yaml"), Yaml);
            string sharded = Path.Combine(root, "sharded"), whole = Path.Combine(root, "whole");
            procs.AddRange(Enumerable.Range(0, 4).Select(i => Run(root, sharded, "--shard", $"{i}/4")));
            for (int i = 0; i < 4; i++) Wait(procs[i], $"shard {i}/4");
            procs.Add(Run(root, whole));
            Wait(procs[4], "unsharded run");

            var a = SummaryIds(Path.Combine(sharded, "shards"));
            var b = SummaryIds(Path.Combine(whole, "shards"));
            Assert.AreEqual(10, b.Count);
            CollectionAssert.AreEqual(b, a, "same run ids, each once, same statuses");
            Assert.IsTrue(a.All(x => x.EndsWith(" completed")));
        }
        finally
        {
            foreach (var p in procs) try { if (!p.HasExited) p.Kill(true); } catch (InvalidOperationException) { }
            Directory.Delete(root, recursive: true);
        }
    }
}
