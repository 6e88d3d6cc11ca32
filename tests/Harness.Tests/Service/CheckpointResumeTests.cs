using Harness.Host.Matrix;
using Harness.Host.Output;
using Harness.Host.Plugins;
using Harness.Host.Telemetry;
using Harness.Host.Training;
using Microsoft.Extensions.Logging.Abstractions;

namespace Harness.Tests.Service;

/// <summary>training.checkpoint_every: a run interrupted after a checkpoint resumes from it and produces exactly
/// the trace of an uninterrupted run (mini-batches are a pure function of the step; optimizer state and parameters
/// are restored bit for bit), with no duplicate step; the interrupted attempt's trace is kept aside.</summary>
[TestClass]
public sealed class CheckpointResumeTests
{
    private const string Yaml = """
        name: ckpt
        models:
          - name: fashion_mlp
            hyperparameters: { depth: 1, width: 16, train_size: 200, test_size: 10 }
        optimizers:
          - name: heavy_ball
            hyperparameters: { lr: 0.05, momentum: 0.9 }
        training: { steps: 40, batch_size: 32, checkpoint_every: 10 }
        """;

    private sealed class CancelAt(long step, CancellationTokenSource cts) : IRunProgress
    {
        public void RunStep(RunCell cell, long s, double loss, IReadOnlyDictionary<string, double> probes) { if (s == step) cts.Cancel(); }
    }

    private static List<(long step, double loss)> Trace(string runDir) =>
        ParquetQuery.Rows($"SELECT step, train_loss FROM read_parquet({ParquetQuery.Q(Path.Combine(runDir, "trace.parquet"))}) ORDER BY step")
            .Select(r => (Convert.ToInt64(r[0]), Convert.ToDouble(r[1]))).ToList();

    [TestMethod]
    public void InterruptedRunResumesFromItsCheckpointExactly()
    {
        var catalog = PluginCatalog.Load(Paths.PluginArtifacts);
        var cell = MatrixExpander.Expand(new MatrixParser(catalog).Parse(Yaml, "ckpt.yaml")).Single();
        string root = Paths.NewTempDirectory("ckpt");
        try
        {
            using var metrics = new HarnessMetrics();
            string a = Path.Combine(root, "a"), b = Path.Combine(root, "b");
            var full = new RunExecutor(catalog, metrics, NullLogger.Instance).Execute(cell, a, new CancelAt(-1, new()), CancellationToken.None);
            Assert.AreEqual(RunStatus.Completed, full.Status, full.Reason);
            Assert.IsFalse(Directory.Exists(Path.Combine(a, RunCheckpoint.Folder)), "a finished run drops its checkpoint");

            using (var cts = new CancellationTokenSource())
            {
                var cut = new RunExecutor(catalog, metrics, NullLogger.Instance).Execute(cell, b, new CancelAt(25, cts), cts.Token);
                Assert.AreEqual(RunStatus.Interrupted, cut.Status);
            }
            Assert.AreEqual(20L, RunCheckpoint.TryLoad(b)!.Step, "the last checkpoint before step 25");

            var resumed = new RunExecutor(catalog, metrics, NullLogger.Instance).Execute(cell, b, new CancelAt(-1, new()), CancellationToken.None);
            Assert.AreEqual(RunStatus.Completed, resumed.Status, resumed.Reason);
            Assert.AreEqual(1, Directory.GetFiles(Path.Combine(b, "attempts")).Length, "the interrupted trace is kept aside");

            // Rows before the checkpoint were copied from the interrupted attempt (same wall-clock stamps), not recomputed.
            string attempt = Directory.GetFiles(Path.Combine(b, "attempts")).Single();
            var copied = ParquetQuery.Rows($"SELECT count(*) FROM read_parquet({ParquetQuery.Q(attempt)}) o JOIN read_parquet({ParquetQuery.Q(Path.Combine(b, "trace.parquet"))}) n " +
                "ON o.step = n.step AND o.time_s = n.time_s");
            Assert.AreEqual(20L, Convert.ToInt64(copied[0][0]), "steps 0..19 come from the checkpointed attempt, later ones are new");

            var ta = Trace(a);
            var tb = Trace(b);
            CollectionAssert.AreEqual(Enumerable.Range(0, 41).Select(i => (long)i).ToList(), tb.Select(r => r.step).ToList(), "steps 0..40 once each");
            for (int i = 0; i < ta.Count; i++)
                Assert.AreEqual(ta[i].loss, tb[i].loss, 0.0, $"step {i}: the resumed run's loss differs from the uninterrupted run's");
            Assert.AreEqual(full.Final["train_loss"], resumed.Final["train_loss"], 0.0);
        }
        finally { Directory.Delete(root, recursive: true); }
    }
}
