using System.Diagnostics;
using System.Globalization;
using Harness.Abstractions;
using Harness.Host.Matrix;
using Harness.Host.Output;
using Harness.Host.Plugins;
using Harness.Host.Telemetry;
using Harness.Host.Training;
using Harness.Host.Workers;
using Microsoft.Extensions.Logging.Abstractions;
using TorchSharp;
using static Harness.Host.Cli.Bench.BenchTable;
using static TorchSharp.torch;

namespace Harness.Host.Cli.Bench;

/// <summary>
/// <c>harness bench overhead</c>: a training step inside a run (RunExecutor as a worker executes it: trace.parquet,
/// metrics, progress events serialised as the worker writes them) against the bench's bare loop (the host's
/// objective and the gd plugin, nothing else), on the demo network at widths 100, 400 and 1000 (GD, full batch of
/// 2000, float32, no probes), in this process, interleaved, HARNESS_BENCH_THREADS threads (default 1). Both sides are
/// timed between the same steps (after step 1 to after step n−1: no warm-up, no final row): wall time and this
/// process's CPU time (all threads: the trace writer's and timers' work counts; on a shared machine the wall time
/// also waits for a core, the CPU time does not). Target: run / bare ≤ 1.03.
/// </summary>
public sealed class RunOverheadBenchmark : IBenchmark
{
    public string Name => "overhead";
    public string Description => "Per-step cost inside a run (Parquet, metrics, progress) against the bare loop, widths 100/400/1000.";

    private static readonly int[] Widths = [100, 400, 1000];

    public int Run(BenchContext context, TextWriter output)
    {
        var catalog = PluginCatalog.Load(Path.GetFullPath(context.PluginDirectory));
        if (!catalog.Models.ContainsKey("fashion_mlp")) { output.WriteLine($"error: the built-in plugins were not found in {context.PluginDirectory}"); return 1; }
        int threads = int.TryParse(Environment.GetEnvironmentVariable(PeerBenchmark.ThreadsVariable), out var th) && th > 0 ? th : 1;
        torch.set_num_threads(threads);
        Posix.RetainFreedMemory();   // as in workers
        int reps = context.Quick ? 1 : 3;
        string load = LoadAverage();
        output.WriteLine($"threads {threads}; {reps} interleaved repetition(s) per width; cores {Environment.ProcessorCount}; load average at start: {load}");
        var root = Path.Combine(Path.GetTempPath(), $"harness-overhead-{Environment.ProcessId}");
        Directory.CreateDirectory(root);
        var table = new BenchTable("width", "steps", "bare ms", "run ms", "run/bare wall", "bare cpu ms", "run cpu ms", "run/bare cpu");
        try
        {
            // Warm-up (untimed): the run's per-step code (trace writer, JSON events, metrics) is compiled again at
            // tier 1 after ~30 calls, on a background thread; that is a fixed cost of a run, not a per-step one.
            foreach (int width in Widths) Warm(catalog, root, width);
            Thread.Sleep(1000);
            foreach (int width in Widths)
            {
                int steps = context.Quick ? width switch { 100 => 20, 400 => 8, _ => 5 } : width switch { 100 => 120, 400 => 30, _ => 12 };
                var cell = Cell(catalog, root, width, steps);
                double lr = width == 100 ? 0.05 : 0.01;
                var bare = new List<Span>();
                var run = new List<Span>();
                for (int r = 0; r < reps; r++)
                {
                    bare.Add(Bare(catalog, width, steps, lr));
                    run.Add(InRun(catalog, cell, Path.Combine(root, $"w{width}-{r}")));
                }
                double bw = Median(bare.Select(s => s.Wall)), rw = Median(run.Select(s => s.Wall));
                double bc = Median(bare.Select(s => s.Cpu)), rc = Median(run.Select(s => s.Cpu));
                table.Add(width.ToString(CultureInfo.InvariantCulture), steps.ToString(CultureInfo.InvariantCulture), F(bw * 1e3, "F2"), F(rw * 1e3, "F2"), F(rw / bw, "F3"),
                    F(bc * 1e3, "F2"), F(rc * 1e3, "F2"), F(rc / bc, "F3"));
            }
        }
        finally { Directory.Delete(root, recursive: true); }
        table.Print(output);
        output.WriteLine($"per step, median of the repetitions; target run/bare ≤ 1.03; load average at start: {load}, at end: {LoadAverage()}");
        return 0;
    }

    private static RunCell Cell(PluginCatalog catalog, string root, int width, int steps)
    {
        double lr = width == 100 ? 0.05 : 0.01;
        var matrixFile = Path.Combine(root, $"w{width}-{steps}.yaml");
        File.WriteAllText(matrixFile, string.Create(CultureInfo.InvariantCulture, $$"""
            name: overhead-w{{width}}-{{steps}}
            models:
              - name: fashion_mlp
                hyperparameters: { depth: 3, width: {{width}}, train_size: 2000, test_size: 0, loss: mse }
            optimizers:
              - name: gd
                hyperparameters: { lr: {{lr:R}} }
            training: { steps: {{steps}}, batch_size: full }
            probe_set: { size: 2000 }
            """));
        return MatrixExpander.Expand(MatrixParser.ParseFile(matrixFile, catalog))[0];
    }

    private static void Warm(PluginCatalog catalog, string root, int width)
    {
        int steps = width == 100 ? 60 : 3;
        InRun(catalog, Cell(catalog, root, width, steps), Path.Combine(root, $"warm-w{width}"));
        Bare(catalog, width, steps, width == 100 ? 0.05 : 0.01);
    }

    /// <summary>Seconds per step between two marks: wall and this process's CPU time.</summary>
    private readonly record struct Span(double Wall, double Cpu);

    private sealed class Marks
    {
        private readonly Stopwatch _wall = new();
        private TimeSpan _cpu0;
        public Span Result { get; private set; }
        public void Start() { _cpu0 = Process.GetCurrentProcess().TotalProcessorTime; _wall.Restart(); }
        public void Stop(int steps)
        {
            double wall = _wall.Elapsed.TotalSeconds;
            double cpu = (Process.GetCurrentProcess().TotalProcessorTime - _cpu0).TotalSeconds;
            Result = new Span(wall / steps, cpu / steps);
        }
    }

    /// <summary>The bare loop: full-batch GD through the host's objective and the gd plugin, timed from after step 1
    /// to after step n−1 (the run's updates 1..n−2, as <see cref="InRun"/> times them).</summary>
    private static Span Bare(PluginCatalog catalog, int width, int steps, double lr)
    {
        var plugin = catalog.Models["fashion_mlp"].Plugin;
        using var model = plugin.Create(new ModelContext(new HyperparameterValues(plugin.Hyperparameters, new Dictionary<string, object>
        {
            ["depth"] = 3L, ["width"] = (long)width, ["train_size"] = 2000L, ["test_size"] = 0L, ["loss"] = "mse",
        }), 0, 0, ScalarType.Float32, CPU, null));
        var gd = catalog.Optimizers["gd"].Plugin;
        using var optimizer = gd.Create(model.Parameters.Select(p => p.Tensor).ToList(),
            new HyperparameterValues(gd.Hyperparameters, new Dictionary<string, object> { ["lr"] = lr }));
        var marks = new Marks();
        for (int t = 0; t < steps; t++)
        {
            if (t == 1) marks.Start();
            if (t == steps - 1) marks.Stop(steps - 2);
            using var scope = NewDisposeScope();
            optimizer.Step(new TorchObjective(model, model.Train));
        }
        return marks.Result;
    }

    /// <summary>The cell executed as a worker executes it (trace, metrics, progress events written as JSON lines, here
    /// to a null stream), timed between the step events of steps 1 and n−1.</summary>
    private static Span InRun(PluginCatalog catalog, RunCell cell, string runDir)
    {
        using var metrics = new HarnessMetrics();
        using var events = new JsonLinesProgress(new StreamWriter(Stream.Null));
        var marks = new Marks();
        long steps = cell.Matrix.Training.Steps;
        var sink = new CompositeProgress(events, new StepMarks(marks, steps));
        var manifest = new RunExecutor(catalog, metrics, NullLogger.Instance).Execute(cell, runDir, sink, CancellationToken.None);
        if (manifest.Status != RunStatus.Completed) throw new InvalidOperationException($"the run ended {manifest.Status}: {manifest.Reason}");
        return marks.Result;
    }

    private sealed class StepMarks(Marks marks, long steps) : IRunProgress
    {
        public void RunStepReport(RunCell cell, StepReport report)
        {
            if (report.Step == 1) marks.Start();
            else if (report.Step == steps - 1) marks.Stop((int)steps - 2);
        }
    }
}
