using Harness.Host.Matrix;
using Harness.Host.Output;
using Harness.Host.Plugins;
using Harness.Host.Telemetry;
using Harness.Host.Training;
using Harness.Tests.Service;
using Microsoft.Extensions.Logging.Abstractions;

namespace Harness.Tests.Reliability;

/// <summary>Crash safety of checkpoint resume: probes fire at the steps of an uninterrupted run (the scheduler's state
/// is in the checkpoint), a process killed in the resume window (previous trace already moved to attempts/, new one
/// incomplete) still resumes, a truncated checkpoint is discarded (and the run starts over instead of failing on
/// every re-run), and an unreadable manifest is reported by the summary.</summary>
[TestClass]
public sealed class ResumeSafetyTests
{
    // Probe intervals (3, 7) that are not divisors of checkpoint_every (10), so a resumed scheduler that forgot when
    // each probe last ran measures at other steps.
    private const string Yaml = """
        name: resume
        dtype: float64
        models:
          - name: quadratic
            hyperparameters: { dim: 12, lambda_max: 4, lambda_min: 0.1 }
        optimizers:
          - name: heavy_ball
            hyperparameters: { lr: 0.2, momentum: 0.5 }
        training: { steps: 40, checkpoint_every: 10 }
        probes:
          - name: update_geometry
            every: 3
          - name: hessian_trace
            every: 7
        """;

    // Warm-started Lanczos probes: a resumed run that forgot the previous top vectors starts cold and needs other
    // Hessian-vector products (and gets other bits) at its first measurements after the checkpoint.
    private static readonly string WarmYaml = Yaml
        .Replace("name: resume", "name: resume-warm")
        .Replace("dim: 12", "dim: 80")
        .Replace("""
              - name: hessian_trace
                every: 7
            """, """
              - name: sharpness
                every: 3
                hyperparameters: { top_k: 2 }
              - name: coherence
                every: 7
            """);

    private sealed class CancelAt(long step, CancellationTokenSource? cts) : IRunProgress
    {
        public void RunStep(RunCell cell, long s, double loss, IReadOnlyDictionary<string, double> probes) { if (s == step) cts?.Cancel(); }
    }

    private static (PluginCatalog, RunCell) Cell(string yaml = Yaml)
    {
        var catalog = PluginCatalog.Load(Paths.PluginArtifacts);
        return (catalog, MatrixExpander.Expand(new MatrixParser(catalog).Parse(yaml, "resume.yaml")).Single());
    }

    private static RunManifest Run(PluginCatalog catalog, RunCell cell, string dir, long cancelAt = -1)
    {
        using var metrics = new HarnessMetrics();
        using var cts = new CancellationTokenSource();
        return new RunExecutor(catalog, metrics, NullLogger.Instance).Execute(cell, dir, new CancelAt(cancelAt, cts), cts.Token);
    }

    /// <summary>Every deterministic column (not wall time) of the trace, row by row, as text.</summary>
    private static List<string> Deterministic(string runDir)
    {
        string trace = ParquetQuery.Q(Path.Combine(runDir, "trace.parquet"));
        var columns = ParquetQuery.Rows($"SELECT column_name FROM (DESCRIBE SELECT * FROM read_parquet({trace}))")
            .Select(r => (string)r[0]!).Where(c => !c.EndsWith("_seconds") && c is not "time_s" and not "probe_time_fraction" and not "probe_stretch").ToList();
        return ParquetQuery.Rows($"SELECT {string.Join(", ", columns.Select(c => $"\"{c}\""))} FROM read_parquet({trace}) ORDER BY step")
            .Select(r => string.Join(" | ", r.Select((v, i) => $"{columns[i]}={v ?? "null"}"))).ToList();
    }

    [TestMethod]
    public void AResumedRunHasTheUninterruptedTraceProbeRowsIncluded() => ResumedTraceEqualsUninterrupted(Yaml);

    [TestMethod]
    public void AResumedRunKeepsTheWarmStartOfItsEigenvalueProbes()
    {
        Assert.AreNotEqual(Yaml, WarmYaml, "the warm-start matrix must differ from the base one");
        ResumedTraceEqualsUninterrupted(WarmYaml);
    }

    private static void ResumedTraceEqualsUninterrupted(string yaml)
    {
        var (catalog, cell) = Cell(yaml);
        string root = Paths.NewTempDirectory("resume-probes");
        try
        {
            string a = Path.Combine(root, "a"), b = Path.Combine(root, "b");
            Assert.AreEqual(RunStatus.Completed, Run(catalog, cell, a).Status);
            Assert.AreEqual(RunStatus.Interrupted, Run(catalog, cell, b, cancelAt: 25).Status);
            Assert.AreEqual(20L, RunCheckpoint.TryLoad(b)!.Step);
            Assert.AreEqual(RunStatus.Completed, Run(catalog, cell, b).Status);
            var ta = Deterministic(a);
            var tb = Deterministic(b);
            Assert.HasCount(41, tb);
            for (int i = 0; i < ta.Count; i++) Assert.AreEqual(ta[i], tb[i], $"step {i}");
        }
        finally { Directory.Delete(root, true); }
    }

    [TestMethod]
    public void AKillInTheResumeWindowStillResumesFromTheCheckpoint()
    {
        var (catalog, cell) = Cell();
        string root = Paths.NewTempDirectory("resume-window");
        try
        {
            string a = Path.Combine(root, "a"), b = Path.Combine(root, "b");
            Assert.AreEqual(RunStatus.Completed, Run(catalog, cell, a).Status);
            Assert.AreEqual(RunStatus.Interrupted, Run(catalog, cell, b, cancelAt: 25).Status);
            // The state a process killed in the resume window leaves: the checkpointed attempt's trace already moved
            // to attempts/, the new trace holding only part of the copied rows (parts of a writer never disposed).
            string attempts = Path.Combine(b, "attempts");
            Directory.CreateDirectory(attempts);
            string moved = Path.Combine(attempts, "trace.20000101T000000000.parquet");
            File.Move(Path.Combine(b, "trace.parquet"), moved);
            string partial = Path.Combine(root, "partial.parquet");
            File.Copy(moved, partial);
            var columns = ParquetQuery.Rows($"SELECT column_name FROM (DESCRIBE SELECT * FROM read_parquet({ParquetQuery.Q(moved)}))")
                .Select(r => (string)r[0]!).Where(c => c is not ("step" or "matrix" or "run_id")).ToList();
            var half = new TraceWriter(Path.Combine(b, "trace.parquet"), TraceSchema.OfDoubles("m", "r", columns)) { FlushRows = 5, FlushInterval = TimeSpan.FromDays(1) };
            foreach (var r in ParquetQuery.Rows($"SELECT * EXCLUDE (matrix, run_id) FROM read_parquet({ParquetQuery.Q(partial)}) WHERE step < 7 ORDER BY step"))
                half.Append(Convert.ToInt64(r[0]), r.Skip(1).Select(v => v is null ? (double?)null : Convert.ToDouble(v)).ToArray());

            var resumed = Run(catalog, cell, b);
            Assert.AreEqual(RunStatus.Completed, resumed.Status, resumed.Reason);
            var copied = ParquetQuery.Rows($"SELECT count(*) FROM read_parquet({ParquetQuery.Q(moved)}) o JOIN read_parquet({ParquetQuery.Q(Path.Combine(b, "trace.parquet"))}) n " +
                "ON o.step = n.step AND o.time_s = n.time_s");
            Assert.AreEqual(20L, Convert.ToInt64(copied[0][0]), "steps 0..19 come from the checkpointed attempt: the run resumed, it did not start over");
            var ta = Deterministic(a);
            var tb = Deterministic(b);
            for (int i = 0; i < ta.Count; i++) Assert.AreEqual(ta[i], tb[i], $"step {i}");
        }
        finally { Directory.Delete(root, true); }
    }

    [TestMethod]
    [DataRow("params.bin")]
    [DataRow("optimizer.json")]
    public void ATruncatedCheckpointIsDiscardedAndTheRunStartsOver(string file)
    {
        var (catalog, cell) = Cell();
        string root = Paths.NewTempDirectory("resume-truncated");
        try
        {
            string a = Path.Combine(root, "a"), b = Path.Combine(root, "b");
            Assert.AreEqual(RunStatus.Completed, Run(catalog, cell, a).Status);
            Assert.AreEqual(RunStatus.Interrupted, Run(catalog, cell, b, cancelAt: 25).Status);
            string victim = Path.Combine(b, RunCheckpoint.Folder, file);
            var bytes = File.ReadAllBytes(victim);
            File.WriteAllBytes(victim, bytes[..(bytes.Length / 2)]);

            Assert.IsNull(RunCheckpoint.TryLoad(b, out var why));
            StringAssert.Contains(why, file);
            var again = Run(catalog, cell, b);
            Assert.AreEqual(RunStatus.Completed, again.Status, again.Reason);
            CollectionAssert.AreEqual(Deterministic(a), Deterministic(b), "started over and ran like an uninterrupted run");
        }
        finally { Directory.Delete(root, true); }
    }

    [TestMethod]
    public void TheSummaryReportsAnUnreadableManifest()
    {
        string root = Paths.NewTempDirectory("summary-unreadable");
        try
        {
            var good = new RunManifest { RunId = "good", Matrix = "m", Label = "good", Optimizer = "gd", Model = "quadratic", Configuration = new System.Text.Json.Nodes.JsonObject(), Status = RunStatus.Completed };
            Directory.CreateDirectory(Path.Combine(root, "good"));
            good.Save(Path.Combine(root, "good", "manifest.json"));
            Directory.CreateDirectory(Path.Combine(root, "bad"));
            string bad = Path.Combine(root, "bad", "manifest.json");
            File.WriteAllText(bad, "{\"run_id\": \"bad\", \"sta");
            var unreadable = new List<string>();
            Assert.AreEqual(1, SummaryWriter.Write(root, unreadable: unreadable));
            Assert.HasCount(1, unreadable);
            StringAssert.Contains(unreadable[0], bad);
        }
        finally { Directory.Delete(root, true); }
    }
}
