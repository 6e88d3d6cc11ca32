using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Harness.Host.Matrix;
using Harness.Host.Plugins;
using Harness.Tests.Service;

namespace Harness.Tests.Integration;

/// <summary>
/// deploy/slurm/array.sbatch, unchanged, on a real single-node Slurm (see <see cref="SlurmCluster"/>):
/// <c>sbatch --array=0-3</c> of a small matrix; one task is cancelled with scancel mid-run (after a checkpoint,
/// with a finished run before it) and the array is resubmitted; then the union of the shards' runs is exactly the runs
/// of one unsharded <c>harness run</c> of the same matrix — same run ids, same statuses, bit-identical step data
/// (every trace column except the wall-time ones: time_s, *_seconds, probe_time_fraction) — and each task's log names its shard. While the tasks run, each
/// one's Prometheus file_sd target file names a port that serves its /metrics.
/// </summary>
[TestClass]
public sealed class SlurmArrayTests
{
    public TestContext TestContext { get; set; } = null!;

    // Six runs over four shards: some shard has at least two, so a cancelled task has a finished run to skip and an
    // interrupted one to resume. checkpoint_every makes the interrupted run resume from its checkpoint.
    private const string Yaml = """
        name: slurm-array
        dtype: float64
        models:
          - name: quadratic
            hyperparameters: { dim: 8, lambda_max: 10 }
        optimizers:
          - name: gd
            hyperparameters: { lr: [0.05, 0.1, 0.15] }
        seeds: { init: [0, 1] }
        training: { steps: 3000, checkpoint_every: 200 }
        probes:
          - name: sharpness
            every: 100
            # Two limits of resuming with probes, kept out of this test (they are not Slurm's): the probe schedule restarts
            # at the resume step (so checkpoint_every is a multiple of every here), and warm-started Lanczos starts cold
            # (the start vector is not in the checkpoint), which changes the first measurement's iteration count.
            hyperparameters: { warm_start: false }
        """;

    private const int Tasks = 4;

    private static string ReleaseHost => Path.Combine(Paths.RepoRoot, "Host", "bin", "Release", "net10.0", "harness");

    [TestMethod]
    public void TheArrayJobShardsAMatrixOnARealSlurmAndACancelledTaskResumesWhenResubmitted()
    {
        var clock = Stopwatch.StartNew();
        SlurmCluster.EnsureInstalled();
        Assert.IsTrue(File.Exists(ReleaseHost), $"array.sbatch runs {ReleaseHost}: build the solution in Release first");
        var etcSlurm = Snapshot("/etc/slurm");

        var catalog = PluginCatalog.Load(Paths.PluginArtifacts);
        var cells = MatrixExpander.Expand(new MatrixParser(catalog).Parse(Yaml, "slurm-array.yaml"));
        var byShard = Enumerable.Range(0, Tasks).Select(i => cells.Where(new Shard(i, Tasks).Contains).ToList()).ToList();
        int victim = Enumerable.Range(0, Tasks).MaxBy(i => byShard[i].Count);
        Assert.IsTrue(byShard[victim].Count >= 2);
        string finishedFirst = byShard[victim][0].RunId, interrupted = byShard[victim][1].RunId;

        string work = Paths.NewTempDirectory("slurm-array");
        string matrix = Path.Combine(work, "slurm-array.yaml"), sharded = Path.Combine(work, "sharded"), whole = Path.Combine(work, "whole");
        string logs = Path.Combine(work, "logs"), targets = Path.Combine(work, "targets");
        Directory.CreateDirectory(logs);
        File.WriteAllText(matrix, Yaml);
        int portBase = FreePortBase(Tasks);
        var env = new Dictionary<string, string>
        {
            ["HARNESS_RESULTS"] = sharded, ["HARNESS_METRICS_HOST"] = "127.0.0.1", ["HARNESS_METRICS_PORT_BASE"] = portBase.ToString(),
            ["HARNESS_TARGETS_DIR"] = targets, ["OMP_NUM_THREADS"] = "1",
        };
        // The script's own #SBATCH lines stay; the command line adapts them to this 2-CPU node and keeps logs out of the
        // repository (options on the command line override #SBATCH directives).
        string[] Submit(string range) => [$"--array={range}", "--cpus-per-task=1", $"--output={logs}/harness-%A_%a.log",
            Path.Combine("deploy", "slurm", "array.sbatch"), matrix];
        string Log(string job, int task) => File.ReadAllText(Path.Combine(logs, $"harness-{job}_{task}.log"));
        string RunDir(string id) => Path.Combine(sharded, "slurm-array", id);

        try
        {
            using var slurm = new SlurmCluster();
            TestContext.WriteLine($"cluster up after {clock.Elapsed.TotalSeconds:F1}s in {slurm.Root}");

            // 1. The array; the victim task is cancelled once its first run finished and its second has a checkpoint.
            string first = slurm.Submit(Paths.RepoRoot, env, Submit($"0-{Tasks - 1}"));
            var scraped = new HashSet<string>();
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
            bool cancelled = false;
            slurm.Until(() =>
            {
                ScrapeTargets(http, targets, scraped);
                if (!cancelled && Finished(RunDir(finishedFirst)) && Directory.Exists(Path.Combine(RunDir(interrupted), "checkpoint")))
                {
                    Assert.AreEqual(0, slurm.Slurm("scancel", $"{first}_{victim}").code);
                    cancelled = true;
                }
                return !slurm.Active(first);
            }, TimeSpan.FromSeconds(300), $"array job {first}");
            Assert.IsTrue(cancelled, $"task {victim} was cancelled mid-run\n{Log(first, victim)}");
            TestContext.WriteLine($"first array done after {clock.Elapsed.TotalSeconds:F1}s");

            var cut = JsonNode.Parse(File.ReadAllText(Path.Combine(RunDir(interrupted), "manifest.json")))!;
            Assert.AreEqual("interrupted", (string?)cut["status"], $"the cancelled task's run\n{Log(first, victim)}");
            Assert.IsTrue(Directory.Exists(Path.Combine(RunDir(interrupted), "checkpoint")), "the interrupted run kept its checkpoint");
            StringAssert.Contains(Log(first, victim), "CANCELLED");
            for (int i = 0; i < Tasks; i++)
                StringAssert.Contains(Log(first, i), $"run(s) (shard {i}/{Tasks})", $"task {i}'s log names its shard");
            // Every task with runs served /metrics at the port its target file named; the files are gone afterwards.
            for (int i = 0; i < Tasks; i++)
                if (byShard[i].Count > 0) Assert.Contains($"{first}_{i}", scraped, $"task {i}'s /metrics was found through its target file");
            Assert.IsEmpty(Directory.GetFiles(targets), "each task removes its target file when it ends");

            // 2. Resubmitted: finished runs are skipped, the interrupted run resumes from its checkpoint.
            string second = slurm.Submit(Paths.RepoRoot, env, Submit($"0-{Tasks - 1}"));
            slurm.WaitForJob(second, TimeSpan.FromSeconds(300));
            TestContext.WriteLine($"resubmitted array done after {clock.Elapsed.TotalSeconds:F1}s");
            string again = Log(second, victim);
            StringAssert.Contains(again, $"run {finishedFirst} ", again);
            StringAssert.Contains(again, "already completed: skipped", again);
            StringAssert.Contains(again, $"run {interrupted}: resuming from the checkpoint at step", again);
            Assert.AreEqual(1, Directory.GetFiles(Path.Combine(RunDir(interrupted), "attempts")).Length, "the cut attempt's trace is kept aside");
            for (int i = 0; i < Tasks; i++)
            {
                string log = Log(second, i);
                StringAssert.Contains(log, $"run(s) (shard {i}/{Tasks})");
                if (i != victim)
                    Assert.AreEqual(byShard[i].Count, log.Split('\n').Count(l => l.Contains("already completed: skipped")), log);
            }

            var (sacctCode, sacct, sacctErr) = slurm.Slurm("sacct", "-c", "--format=JobID,JobName,State,ExitCode,Start,End,Elapsed,NodeList");
            TestContext.WriteLine("sacct -c:\n" + sacct + sacctErr);
            Assert.AreEqual(0, sacctCode, sacctErr);
            // jobcomp/filetxt records every task with its array job and index (sacct -c prints plain job ids).
            var records = File.ReadAllLines(slurm.JobCompletions).Select(Fields).ToList();
            TestContext.WriteLine("job completions:\n" + string.Join("\n", records.Select(r =>
                $"{r["ArrayJobId"]}_{r["ArrayTaskId"]} (job {r["JobId"]}) {r["JobState"]} exit {r["ExitCode"]} {r["StartTime"]}..{r["EndTime"]}")));
            string States(string job) => string.Join(",", records.Where(r => r["ArrayJobId"] == job)
                .OrderBy(r => int.Parse(r["ArrayTaskId"])).Select(r => $"{r["ArrayTaskId"]}:{r["JobState"]}"));
            Assert.AreEqual(string.Join(",", Enumerable.Range(0, Tasks).Select(i => $"{i}:{(i == victim ? "CANCELLED" : "COMPLETED")}")), States(first));
            Assert.AreEqual(string.Join(",", Enumerable.Range(0, Tasks).Select(i => $"{i}:COMPLETED")), States(second));
        }
        finally
        {
            TestContext.WriteLine($"daemons stopped after {clock.Elapsed.TotalSeconds:F1}s");
        }
        CollectionAssert.AreEqual(etcSlurm, Snapshot("/etc/slurm"), "the machine's /etc/slurm is untouched");

        // 3. One unsharded run of the same matrix, with the same executable and plugins.
        var (code, stdout, stderr) = Exec.Run(ReleaseHost, ["run", matrix, "--results", whole, "--threads", "1", "--metrics-url", "none", "--no-progress"],
            TimeSpan.FromSeconds(300), new() { ["OMP_NUM_THREADS"] = "1" }, work);
        Assert.AreEqual(0, code, stdout + stderr);
        var (sumCode, sumOut, sumErr) = Exec.Run(ReleaseHost, ["summary", Path.Combine(sharded, "slurm-array")], TimeSpan.FromSeconds(120));
        Assert.AreEqual(0, sumCode, sumOut + sumErr);
        TestContext.WriteLine($"unsharded run and summary done after {clock.Elapsed.TotalSeconds:F1}s");

        var a = SummaryRuns(Path.Combine(sharded, "slurm-array"));
        var b = SummaryRuns(Path.Combine(whole, "slurm-array"));
        TestContext.WriteLine("sharded:   " + string.Join(", ", a));
        TestContext.WriteLine("unsharded: " + string.Join(", ", b));
        CollectionAssert.AreEqual(cells.Select(c => c.RunId + " completed 3000").Order(StringComparer.Ordinal).ToList(), b);
        CollectionAssert.AreEqual(b, a, "the shards' runs are exactly the unsharded runs");
        foreach (var cell in cells)
        {
            string ta = Path.Combine(sharded, "slurm-array", cell.RunId, "trace.parquet"), tb = Path.Combine(whole, "slurm-array", cell.RunId, "trace.parquet");
            var (rows, differing) = CompareSteps(ta, tb);
            Assert.AreEqual(3001L, rows, $"{cell.RunId}: one row per step and the final row");
            Assert.AreEqual(0L, differing, $"{cell.RunId}: the sharded trace equals the unsharded one bit for bit (except wall times)");
        }
        TestContext.WriteLine($"wall time {clock.Elapsed.TotalSeconds:F1}s");
        try { Directory.Delete(work, true); } catch (IOException) { }
    }

    private static bool Finished(string runDir) =>
        File.Exists(Path.Combine(runDir, "manifest.json"))
        && JsonNode.Parse(File.ReadAllText(Path.Combine(runDir, "manifest.json")))?["status"]?.ToString() is "completed";

    /// <summary>Reads every target file present and fetches /metrics from the target it names; records the tasks whose
    /// endpoint answered with this matrix's series.</summary>
    private static void ScrapeTargets(HttpClient http, string targets, HashSet<string> scraped)
    {
        if (!Directory.Exists(targets)) return;
        foreach (var file in Directory.GetFiles(targets, "*.json"))
        {
            JsonArray groups;
            try { groups = JsonNode.Parse(File.ReadAllText(file))!.AsArray(); }
            catch (Exception e) when (e is IOException or System.Text.Json.JsonException) { continue; } // removed meanwhile
            var group = groups.Single()!;
            string task = $"{group["labels"]!["slurm_job"]}_{group["labels"]!["slurm_array_task"]}";
            Assert.AreEqual($"harness-{task}.json", Path.GetFileName(file));
            if (scraped.Contains(task)) continue;
            string target = (string)group["targets"]!.AsArray().Single()!;
            try
            {
                string body = http.GetStringAsync($"http://{target}/metrics").GetAwaiter().GetResult();
                if (body.Contains("matrix=\"slurm-array\"")) scraped.Add(task);
            }
            catch (HttpRequestException) { }
            catch (TaskCanceledException) { }
        }
    }

    private static int FreePortBase(int count)
    {
        for (int attempt = 0; attempt < 50; attempt++)
        {
            int b = HarnessProcess.FreePort();
            if (b + count >= 65535) continue;
            var listeners = new List<System.Net.Sockets.TcpListener>();
            try
            {
                for (int i = 0; i < count; i++)
                {
                    var l = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, b + i);
                    l.Start();
                    listeners.Add(l);
                }
                return b;
            }
            catch (System.Net.Sockets.SocketException) { }
            finally { foreach (var l in listeners) l.Stop(); }
        }
        Assert.Fail("no free range of ports");
        return 0;
    }

    private static Dictionary<string, string> Fields(string line) =>
        line.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(f => f.Split('=', 2)).Where(f => f.Length == 2)
            .GroupBy(f => f[0]).ToDictionary(g => g.Key, g => g.First()[1]);

    private static List<string> SummaryRuns(string matrixDir) =>
        ParquetQuery.Rows($"SELECT run_id, status, steps_completed FROM read_parquet({ParquetQuery.Q(Path.Combine(matrixDir, "summary.parquet"))}) ORDER BY run_id")
            .Select(r => $"{r[0]} {r[1]} {r[2]}").ToList();

    /// <summary>Rows of <paramref name="a"/>, and rows present in one trace but not in the other (multiset difference
    /// both ways) over every column except wall times (time_s, *_seconds).</summary>
    private static (long rows, long differing) CompareSteps(string a, string b)
    {
        List<string> Columns(string f) => ParquetQuery.Rows($"SELECT column_name FROM (DESCRIBE SELECT * FROM read_parquet({ParquetQuery.Q(f)}))")
            .Select(r => (string)r[0]!).Where(c => !WallTime(c)).ToList();
        var columns = Columns(a);
        var columnsB = Columns(b);
        CollectionAssert.AreEqual(columnsB, columns, "same trace columns");
        Assert.Contains("sharpness", columns);
        string list = string.Join(", ", columns.Select(c => "\"" + c + "\""));
        string qa = $"SELECT {list} FROM read_parquet({ParquetQuery.Q(a)})", qb = $"SELECT {list} FROM read_parquet({ParquetQuery.Q(b)})";
        long rows = Convert.ToInt64(ParquetQuery.Rows($"SELECT count(*) FROM read_parquet({ParquetQuery.Q(a)})")[0][0]);
        long differing = Convert.ToInt64(ParquetQuery.Rows($"SELECT count(*) FROM (({qa} EXCEPT ALL {qb}) UNION ALL ({qb} EXCEPT ALL {qa}))")[0][0]);
        if (differing > 0)
        {
            var which = columns.Where(c => Convert.ToInt64(ParquetQuery.Rows(
                $"SELECT count(*) FROM read_parquet({ParquetQuery.Q(a)}) x JOIN read_parquet({ParquetQuery.Q(b)}) y USING (step) WHERE x.\"{c}\" IS DISTINCT FROM y.\"{c}\"")[0][0]) > 0);
            Assert.Fail($"{a} and {b} differ in {differing} rows, in the columns {string.Join(", ", which)}");
        }
        return (rows, differing);
    }

    /// <summary>Columns that measure wall time (they differ between any two runs): time_s, step_seconds,
    /// probe_&lt;name&gt;_seconds and the probes' share of wall time.</summary>
    private static bool WallTime(string column) =>
        column is "time_s" or "probe_time_fraction" || column.EndsWith("_seconds", StringComparison.Ordinal);

    private static List<string> Snapshot(string dir) =>
        !Directory.Exists(dir) ? [] :
        Directory.GetFileSystemEntries(dir, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal)
            .Select(f => File.Exists(f) ? $"{f} {Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f)))}" : f).ToList();
}
