using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Harness.Abstractions;
using Harness.Host.Matrix;
using Harness.Host.Plugins;
using Harness.Host.Training;
using Harness.Host.Workers;
using Parquet;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Host.Cli.Bench;

/// <summary>
/// <c>harness bench peer</c>: the same work done by the harness and by a plain PyTorch script the project ships
/// (bench/peer/peer.py, Debian's python3-torch + python3-scipy, installed by scripts/install-peer.sh), on the demo
/// network (fashion_mlp, 3 hidden tanh layers, MSE, 2000 examples, full batch, float32). The script reads the
/// harness's data and initial weights from .npy files, so both start from bit-identical weights. Repetitions are
/// interleaved (harness, PyTorch, harness, …) and both sides use the same thread count (HARNESS_BENCH_THREADS,
/// default 1). Figures: time from process start to the end of the first training step, peak RSS and minor page
/// faults of the process that trains, time per training step without probes at widths 100/400/1000 (the bench's
/// bare loop, a real worker with trace/metrics/progress, PyTorch), λ1 at the same θ (a state file of a real run)
/// agreeing to 1e-5, time and HVPs of one λ1 measurement at the demo's tolerance, the whole demo, and a matrix of
/// 8 short runs. Prints each figure for both sides and their ratio (harness / PyTorch; below 1 = harness ahead).
/// </summary>
public sealed class PeerBenchmark : IBenchmark
{
    public string Name => "peer";
    public string Description => "Harness against a plain PyTorch script doing the same work (start-up, step, λ1, demo, 8-run matrix, memory).";

    public const string ThreadsVariable = "HARNESS_BENCH_THREADS";
    public const string PythonVariable = "HARNESS_PEER_PYTHON";
    private const double Lr = 0.05, WideLr = 0.01;
    private static readonly int[] Widths = [100, 400, 1000];

    private static string F(double x, string f = "F3") => BenchTable.F(x, f);

    private sealed record Side(double FirstStep, double StepSeconds, long PeakRss, long MinorFaults);

    private readonly List<(string figure, string harness, string peer, double ratio, string target)> _table = new();
    private string _plugins = "";
    private int _threads = 1;
    private string _python = "/usr/bin/python3";
    private string _script = "";

    public int Run(BenchContext context, TextWriter output)
    {
        _plugins = Path.GetFullPath(context.PluginDirectory);
        _threads = int.TryParse(Environment.GetEnvironmentVariable(ThreadsVariable), out var th) && th > 0 ? th : 1;
        _python = Environment.GetEnvironmentVariable(PythonVariable) ?? "/usr/bin/python3";
        _script = Path.Combine(AppContext.BaseDirectory, "bench", "peer", "peer.py");
        if (!File.Exists(_script)) { output.WriteLine($"error: the reference script {_script} is missing from this build"); return 1; }
        var info = Python(["info"], null, out _, out string err);
        if (info is null)
        {
            output.WriteLine($"skipped: the PyTorch reference cannot run ({_python} {_script} info: {err.Trim().Split('\n').LastOrDefault()}); " +
                             "install it with scripts/install-peer.sh (python3-torch, python3-scipy, OpenBLAS; for this benchmark only)");
            return 0;
        }
        var catalog = PluginCatalog.Load(_plugins);
        if (!catalog.Models.ContainsKey("fashion_mlp")) { output.WriteLine($"error: the built-in plugins were not found in {_plugins}"); return 1; }
        torch.set_num_threads(_threads);
        Posix.RetainFreedMemory();   // as in workers, so the bare loop is the same process set-up
        bool quick = context.Quick;
        string load = File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Trim() : "n/a";
        output.WriteLine($"threads {_threads} on both sides (harness libtorch {torch.__version__}, PyTorch {info["torch"]} BLAS {info["blas"]}, scipy {info["scipy"]}); " +
                         $"cores {Environment.ProcessorCount}; load average at start: {load}{(quick ? "; --quick: fewer steps and repetitions" : "")}");
        var root = Path.Combine(Path.GetTempPath(), $"harness-peer-{Environment.ProcessId}");
        Directory.CreateDirectory(root);
        try
        {
            Steps(catalog, root, quick, output);
            Sharpness(catalog, root, quick, output);
            Demo(catalog, root, quick, output);
            Matrix(catalog, root, quick, output);
        }
        finally { Directory.Delete(root, recursive: true); }
        string loadEnd = File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Trim() : "n/a";
        output.WriteLine();
        var table = new BenchTable("figure", "harness", "pytorch", "ratio", "target").LeftAligned(4);
        foreach (var (figure, h, p, ratio, target) in _table) table.Add(figure, h, p, F(ratio, "F2"), target);
        table.Print(output);
        output.WriteLine($"load average at start: {load}; at end: {loadEnd} (wall-time ratios on a shared machine are noisy; counted figures are not)");
        return 0;
    }

    private void Row(string figure, string harness, string peer, double ratio, string target) => _table.Add((figure, harness, peer, ratio, target));

    // ---- time per step, time to first step, memory ----

    /// <summary>The GEMM rate this process reaches (float32, 2000×784 · 784×1000, the largest product of a step), in FLOP/s.</summary>
    private static double GemmPeak(bool quick)
    {
        using var scope = NewDisposeScope();
        var a = randn(2000, 784, generator: new torch.Generator(1));
        var b = randn(784, 1000, generator: new torch.Generator(2));
        var best = double.MaxValue;
        for (int i = 0; i < (quick ? 3 : 10); i++)
        {
            using var s = NewDisposeScope();
            var clock = Stopwatch.StartNew();
            using var c = a.matmul(b);
            best = Math.Min(best, clock.Elapsed.TotalSeconds);
        }
        return 2.0 * 2000 * 784 * 1000 / best;
    }

    private void Steps(PluginCatalog catalog, string root, bool quick, TextWriter output)
    {
        int reps = quick ? 1 : 3;
        double peak = GemmPeak(quick);
        output.WriteLine($"-- GEMM rate of this process (float32 2000×784·784×1000, best of repetitions): {F(peak / 1e9, "F1")} GFLOP/s");
        // The same product in PyTorch: whether the step's gap is the BLAS (libtorch's bundled MKL against Debian's
        // OpenBLAS) rather than the harness's own work.
        var gemm = Python(["gemm", "--reps", quick ? "3" : "10"], null, out _, out _);
        if (gemm?["gemm_flops"] is { } g && (double)g > 0)
        {
            double peer = (double)g;
            output.WriteLine($"   the same product in PyTorch: {F(peer / 1e9, "F1")} GFLOP/s; time ratio harness/PyTorch {F(peer / peak, "F2")}");
            Row("GEMM 2000×784·784×1000 float32 (libtorch's BLAS against PyTorch's)", $"{F(peak / 1e9, "F1")} GFLOP/s", $"{F(peer / 1e9, "F1")} GFLOP/s", peer / peak, "evidence (time ratio)");
        }
        output.WriteLine($"-- training step without probes (GD, full batch of 2000; η = {Lr} at width 100, {WideLr} wider, where {Lr} diverges), {reps} interleaved repetition(s)");
        output.WriteLine($"{"width",6} {"params",8} {"steps",6} {"bare_ms",9} {"run_ms",9} {"torch_ms",9} {"run/bare",9} {"bare/torch",10} {"run/torch",10} " +
                         $"{"first_s",8} {"torch_1st",9} {"rss_MiB",8} {"torch_MiB",9} {"faults/1k",10} {"torch_f/1k",10}");
        foreach (int width in Widths)
        {
            int steps = quick ? 20 : width switch { 100 => 300, 400 => 100, _ => 40 };
            var dir = Path.Combine(root, $"w{width}");
            var (model, parameters) = Export(catalog, width, dir);
            using var disposeModel = model;
            double lr = width == 100 ? Lr : WideLr;
            var matrix = WriteMatrix(root, $"steps-w{width}", width, [lr], steps, probes: null, seeds: 1);
            var bare = new List<double>();
            var run = new List<Side>();
            var peer = new List<Side>();
            for (int r = 0; r < reps; r++)
            {
                bare.Add(BareLoop(catalog, model, steps, lr));
                run.Add(Worker(matrix, Path.Combine(root, $"run-w{width}-{r}")));
                var js = Python(["steps", "--data", dir, "--steps", steps.ToString(), "--lr", F(lr, "R")], null, out double first, out _)
                         ?? throw new InvalidOperationException("the PyTorch reference failed (steps)");
                peer.Add(new Side(first, (double)js["step_seconds"]!, (long)js["peak_rss_bytes"]!, (long)js["minor_faults"]! - (long)js["first_step_minor_faults"]!));
            }
            // The GEMM rate again next to this width's steps (the best seen so far: on a shared machine one
            // measurement may catch a busy moment).
            peak = Math.Max(peak, GemmPeak(quick));
            double b = Median(bare), h = Median(run.Select(x => x.StepSeconds)), p = Median(peer.Select(x => x.StepSeconds));
            double hFirst = Median(run.Select(x => x.FirstStep)), pFirst = Median(peer.Select(x => x.FirstStep));
            long hRss = run.Max(x => x.PeakRss), pRss = peer.Max(x => x.PeakRss);
            // faults after the first step (start-up excluded), per 1000 steps
            double hFaults = run.Average(x => (double)x.MinorFaults) / (steps - 1) * 1000, pFaults = peer.Average(x => (double)x.MinorFaults) / (steps - 1) * 1000;
            output.WriteLine($"{width,6} {parameters,8} {steps,6} {F(b * 1e3, "F2"),9} {F(h * 1e3, "F2"),9} {F(p * 1e3, "F2"),9} {F(h / b, "F3"),9} {F(b / p, "F3"),10} {F(h / p, "F3"),10} " +
                             $"{F(hFirst, "F2"),8} {F(pFirst, "F2"),9} {hRss >> 20,8} {pRss >> 20,9} {F(hFaults, "F0"),10} {F(pFaults, "F0"),10}");
            // A full-batch step of the MLP: forward 2·N·W FLOPs per weight matrix, backward twice that (inputs and
            // weights; none for the data), so about 6·N·(weights) in matrix products.
            double flops = 6.0 * 2000 * model.Parameters.Where(q => q.Tensor.dim() == 2).Sum(q => (double)q.Tensor.numel());
            output.WriteLine($"       width {width}: {F(flops / 1e9, "F2")} GFLOP per step in matrix products; bare loop {F(flops / b / 1e9, "F1")} GFLOP/s = " +
                             $"{F(100 * flops / b / peak, "F0")}% of the best GEMM rate so far ({F(peak / 1e9, "F1")} GFLOP/s), harness run {F(100 * flops / h / peak, "F0")}%, PyTorch {F(100 * flops / p / peak, "F0")}%");
            Row($"step time, width {width} (harness run)", $"{F(h * 1e3, "F2")} ms", $"{F(p * 1e3, "F2")} ms", h / p, "≤ 1.0");
            Row($"step time, width {width}: run / bare loop", $"{F(h * 1e3, "F2")} ms", $"bare {F(b * 1e3, "F2")}", h / b, "≤ 1.03");
            Row($"peak RSS, width {width}", $"{hRss >> 20} MiB", $"{pRss >> 20} MiB", (double)hRss / pRss, "≤ 1.3");
            Row($"minor faults per 1000 steps, width {width}", F(hFaults, "F0"), F(pFaults, "F0"), hFaults / pFaults, "");
            if (width == 100) Row("time to first step (process start)", $"{F(hFirst, "F2")} s", $"{F(pFirst, "F2")} s", hFirst / pFirst, "≤ 1.0, harness ≤ 1.5 s");
        }
    }

    /// <summary>The bench's bare loop: full-batch GD through the host's objective and the gd plugin, nothing else.</summary>
    private double BareLoop(PluginCatalog catalog, IModel model, int steps, double lr)
    {
        var saved = model.Parameters.Select(p => p.Tensor.detach().clone()).ToList();
        var gd = catalog.Optimizers["gd"].Plugin;
        using var optimizer = gd.Create(model.Parameters.Select(p => p.Tensor).ToList(),
            new HyperparameterValues(gd.Hyperparameters, new Dictionary<string, object> { ["lr"] = lr }));
        var clock = new Stopwatch();
        for (int t = 0; t < steps; t++)
        {
            if (t == 1) clock.Start();   // step 0 is the warm-up, as on the other sides
            using var scope = NewDisposeScope();
            optimizer.Step(new TorchObjective(model, model.Train));
        }
        double perStep = clock.Elapsed.TotalSeconds / Math.Max(1, steps - 1);
        using (no_grad())
            for (int i = 0; i < saved.Count; i++) { model.Parameters[i].Tensor.copy_(saved[i]); saved[i].Dispose(); }
        return perStep;
    }

    /// <summary>Builds the demo network at <paramref name="width"/> (init_seed = data_seed = 0, float32, test_size 0) and
    /// writes its training data and initial weights as .npy files for the reference script.</summary>
    private static (IModel model, long parameters) Export(PluginCatalog catalog, int width, string dir, Dictionary<string, double[]>? weights = null)
    {
        Directory.CreateDirectory(dir);
        var plugin = catalog.Models["fashion_mlp"].Plugin;
        var model = plugin.Create(new ModelContext(new HyperparameterValues(plugin.Hyperparameters, ModelHp(width, test: 0)), 0, 0, ScalarType.Float32, CPU, null));
        Npy.Write(Path.Combine(dir, "x.npy"), model.Train.Inputs!.data<float>().ToArray(), model.Train.Inputs!.shape);
        Npy.Write(Path.Combine(dir, "y.npy"), model.Train.Targets!.data<long>().ToArray(), model.Train.Targets!.shape);
        WriteWeights(model, dir);
        return (model, model.Parameters.Sum(p => p.Tensor.numel()));
    }

    private static void WriteWeights(IModel model, string dir)
    {
        for (int l = 0; ; l++)
        {
            var w = model.Parameters.FirstOrDefault(p => p.Name == $"layer{l}.weight");
            var b = model.Parameters.FirstOrDefault(p => p.Name == $"layer{l}.bias");
            if (w is null || b is null) break;
            Npy.Write(Path.Combine(dir, $"w{l}.npy"), w.Tensor.data<float>().ToArray(), w.Tensor.shape);
            Npy.Write(Path.Combine(dir, $"b{l}.npy"), b.Tensor.data<float>().ToArray(), b.Tensor.shape);
        }
    }

    private static Dictionary<string, object> ModelHp(int width, int test) => new()
    {
        ["depth"] = 3L, ["width"] = (long)width, ["train_size"] = 2000L, ["test_size"] = (long)test, ["loss"] = "mse",
    };

    // ---- λ1 at the same θ ----

    private void Sharpness(PluginCatalog catalog, string root, bool quick, TextWriter output)
    {
        int at = quick ? 50 : 500, reps = quick ? 1 : 3;
        output.WriteLine($"-- λ1 at θ_{at} of GD η = {Lr} (width 100; θ from the run's state file, training.save_state_at), {reps} repetition(s)");
        var matrix = WriteMatrix(root, "state", 100, [Lr], at + 1, probes: null, seeds: 1, saveAt: at);
        var runDir = Path.Combine(root, "state-run");
        Worker(matrix, runDir);
        var state = OptimizerStateFile.Load(Path.Combine(runDir, RunCell.StateFileName(at)));
        var dir = Path.Combine(root, "state");
        var (model, _) = Export(catalog, 100, dir);
        using var _m = model;
        using (no_grad())
            for (int i = 0; i < model.Parameters.Count; i++)
            {
                using var src = tensor(state.Parameters![i], dtype: ScalarType.Float64);
                model.Parameters[i].Tensor.copy_(src.reshape(model.Parameters[i].Tensor.shape));
            }
        WriteWeights(model, dir);

        var probePlugin = catalog.Probes["sharpness"].Plugin;
        var gd = catalog.Optimizers["gd"].Plugin;
        using var optimizer = gd.Create(model.Parameters.Select(p => p.Tensor).ToList(),
            new HyperparameterValues(gd.Hyperparameters, new Dictionary<string, object> { ["lr"] = Lr }));
        (double lambda, int hvps, double seconds) Measure(double tolerance, int maxIterations)
        {
            using var scope = NewDisposeScope();
            using var probe = probePlugin.Create(new HyperparameterValues(probePlugin.Hyperparameters,
                new Dictionary<string, object> { ["tolerance"] = tolerance, ["max_iterations"] = (long)maxIterations }));
            var objective = new TorchObjective(model, model.Train);
            var clock = Stopwatch.StartNew();
            var values = probe.Measure(new ProbeContext(objective, optimizer, model, at, model.Parameters.Select(p => p.Tensor).ToList(), null,
                new Dictionary<string, object>()));
            return (values["sharpness"], objective.HessianProducts, clock.Elapsed.TotalSeconds);
        }

        var h = new List<(double lambda, int hvps, double seconds)>();
        var p = new List<(double lambda, int hvps, double seconds)>();
        JsonObject? last = null;
        for (int r = 0; r < reps; r++)
        {
            h.Add(Measure(1e-3, 20));
            last = Python(["sharpness", "--data", dir, "--tol", "1e-3", "--reps", "1", "--check-tol", "1e-10"], null, out _, out _)
                   ?? throw new InvalidOperationException("the PyTorch reference failed (sharpness)");
            p.Add(((double)last["lambda1"]!, (int)last["hvps"]!, (double)last["seconds"]!));
        }
        var tight = Measure(1e-7, 300);
        double exact = (double)last!["lambda1_tight"]!;
        double rel = Math.Abs(tight.lambda - exact) / Math.Abs(exact);
        output.WriteLine($"λ1 tight (harness tolerance 1e-7: {F(tight.lambda, "R")} in {tight.hvps} HVPs; eigsh tol 1e-10: {F(exact, "R")} in {last["hvps_tight"]} HVPs): " +
                         $"relative difference {F(rel, "E2")} {(rel <= 1e-5 ? "≤ 1e-5: agree" : "> 1e-5: DISAGREE")}");
        double hs = Median(h.Select(x => x.seconds)), ps = Median(p.Select(x => x.seconds));
        output.WriteLine($"one measurement at tolerance 1e-3, cold start: harness {F(hs * 1e3, "F1")} ms, {h[0].hvps} HVPs, λ1 {F(h[0].lambda, "F4")} " +
                         $"(rel. error {F(Math.Abs(h[0].lambda - exact) / exact, "E1")}); eigsh {F(ps * 1e3, "F1")} ms, {p[0].hvps} HVPs, λ1 {F(p[0].lambda, "F4")} " +
                         $"(rel. error {F(Math.Abs(p[0].lambda - exact) / exact, "E1")})");
        Row("λ1 agreement at θ from a state file", F(tight.lambda, "F6"), F(exact, "F6"), rel, "≤ 1e-5 relative");
        Row("λ1 measurement, cold, tolerance 1e-3", $"{F(hs * 1e3, "F1")} ms", $"{F(ps * 1e3, "F1")} ms", hs / ps, "≤ 1.0");
        Row("λ1 measurement: HVPs (cold)", h[0].hvps.ToString(), p[0].hvps.ToString(), (double)h[0].hvps / p[0].hvps, "");
    }

    // ---- whole demo and an 8-run matrix ----

    private void Demo(PluginCatalog catalog, string root, bool quick, TextWriter output)
    {
        int steps = quick ? 100 : 2500;
        double[] lrs = [0.03, 0.05, 0.08];
        output.WriteLine($"-- the demo's work: {lrs.Length} runs × {steps} steps, λ1 every 25 (tolerance 1e-3, ≤ 20 iterations), accuracy every 250" +
                         " (PyTorch: eigsh with the previous eigenvector as v0)");
        var dir = Path.Combine(root, "demo");
        var (model, _) = Export(catalog, 100, dir);
        model.Dispose();
        ExportTest(catalog, dir);
        var matrix = WriteMatrix(root, "demo", 100, lrs, steps, probes: "sharpness", seeds: 1, test: 1000);
        var clock = Stopwatch.StartNew();
        var harness = HarnessRun(matrix, Path.Combine(root, "demo-results"));
        double hWall = clock.Elapsed.TotalSeconds;
        var trace = ReadTrace(Path.Combine(root, "demo-results", "peer-demo", harness[0], "trace.parquet"));
        double hvps = trace["probe_sharpness_hvps"].Where(x => x is not null).Average(x => x!.Value);
        double hSec = trace["probe_sharpness_seconds"].Where(x => x is not null).Average(x => x!.Value);
        clock.Restart();
        var js = Python(["demo", "--data", dir, "--steps", steps.ToString(), "--every", "25", "--tol", "1e-3", "--warm", "--lrs", .. lrs.Select(l => F(l, "R"))], null, out _, out _)
                 ?? throw new InvalidOperationException("the PyTorch reference failed (demo)");
        double pWall = clock.Elapsed.TotalSeconds;
        var runs = js["runs"]!.AsArray();
        double pHvps = runs.Sum(r => (double)r!["hvps"]!) / runs.Sum(r => (double)r!["measurements"]!);
        double pMeasure = runs.Sum(r => (double)r!["sharpness_seconds"]!) / runs.Sum(r => (double)r!["measurements"]!);
        output.WriteLine($"harness: {F(hWall, "F1")} s (harness run, worker processes), λ1 {F(hSec * 1e3, "F1")} ms and {F(hvps, "F1")} HVPs per measurement (run 1); " +
                         $"PyTorch: {F(pWall, "F1")} s, λ1 {F(pMeasure * 1e3, "F1")} ms and {F(pHvps, "F1")} HVPs per measurement");
        Row($"whole demo ({lrs.Length} × {steps} steps)", $"{F(hWall, "F1")} s", $"{F(pWall, "F1")} s", hWall / pWall, "≤ 1.0");
        Row("λ1 measurement along the demo", $"{F(hSec * 1e3, "F1")} ms", $"{F(pMeasure * 1e3, "F1")} ms", hSec / pMeasure, "≤ 1.0");
        Row("λ1 measurement along the demo: HVPs", F(hvps, "F1"), F(pHvps, "F1"), hvps / pHvps, "");
    }

    private void Matrix(PluginCatalog catalog, string root, bool quick, TextWriter output)
    {
        int runs = 8, steps = quick ? 30 : 300, reps = quick ? 1 : 2;
        output.WriteLine($"-- a matrix of {runs} short runs × {steps} steps (width 100, no probes), {reps} interleaved repetition(s)");
        var dir = Path.Combine(root, "matrix");
        var (model, _) = Export(catalog, 100, dir);
        model.Dispose();
        double[] lrs = [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08];
        var h = new List<double>();
        var p = new List<double>();
        for (int r = 0; r < reps; r++)
        {
            var matrix = WriteMatrix(root, $"matrix{r}", 100, lrs, steps, probes: null, seeds: 1);
            var clock = Stopwatch.StartNew();
            HarnessRun(matrix, Path.Combine(root, $"matrix-results{r}"));
            h.Add(clock.Elapsed.TotalSeconds);
            clock.Restart();
            _ = Python(["matrix", "--data", dir, "--steps", steps.ToString(), "--runs", runs.ToString(), "--lrs", .. lrs.Select(l => F(l, "R"))], null, out _, out _)
                ?? throw new InvalidOperationException("the PyTorch reference failed (matrix)");
            p.Add(clock.Elapsed.TotalSeconds);
        }
        double hm = Median(h), pm = Median(p);
        output.WriteLine($"harness run: {F(hm, "F2")} s; PyTorch loop over the runs: {F(pm, "F2")} s");
        Row($"matrix of {runs} runs × {steps} steps", $"{F(hm, "F2")} s", $"{F(pm, "F2")} s", hm / pm, "≤ 1.0");
    }

    private static void ExportTest(PluginCatalog catalog, string dir)
    {
        var plugin = catalog.Models["fashion_mlp"].Plugin;
        using var model = plugin.Create(new ModelContext(new HyperparameterValues(plugin.Hyperparameters, ModelHp(100, test: 1000)), 0, 0, ScalarType.Float32, CPU, null));
        Npy.Write(Path.Combine(dir, "xt.npy"), model.Test!.Inputs!.data<float>().ToArray(), model.Test.Inputs!.shape);
        Npy.Write(Path.Combine(dir, "yt.npy"), model.Test.Targets!.data<long>().ToArray(), model.Test.Targets!.shape);
    }

    // ---- processes ----

    private string WriteMatrix(string root, string name, int width, double[] lrs, int steps, string? probes, int seeds, long? saveAt = null, int test = 0)
    {
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"name: peer-{name}");
        sb.AppendLine("models:");
        sb.AppendLine("  - name: fashion_mlp");
        sb.AppendLine(CultureInfo.InvariantCulture, $"    hyperparameters: {{ depth: 3, width: {width}, train_size: 2000, test_size: {test}, loss: mse }}");
        sb.AppendLine("optimizers:");
        sb.AppendLine("  - name: gd");
        sb.AppendLine(CultureInfo.InvariantCulture, $"    hyperparameters: {{ lr: [{string.Join(", ", lrs.Select(l => F(l, "R")))}] }}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"seeds: {{ init: [{string.Join(", ", Enumerable.Range(0, seeds))}], data: [0] }}");
        sb.AppendLine("training:");
        sb.AppendLine(CultureInfo.InvariantCulture, $"  steps: {steps}");
        sb.AppendLine("  batch_size: full");
        if (saveAt is { } s) sb.AppendLine(CultureInfo.InvariantCulture, $"  save_state_at: [{s}]");
        sb.AppendLine("probe_set: { size: 2000 }");
        if (probes is not null)
        {
            sb.AppendLine("probes:");
            sb.AppendLine("  - name: sharpness");
            sb.AppendLine("    every: 25");
            sb.AppendLine("    hyperparameters: { max_iterations: 20, tolerance: 0.001 }");
            sb.AppendLine("  - name: accuracy");
            sb.AppendLine("    every: 250");
        }
        var path = Path.Combine(root, $"{name}.yaml");
        File.WriteAllText(path, sb.ToString());
        return path;
    }

    /// <summary>Executes the matrix's single cell in a real worker process (<c>harness worker</c>, as <c>harness run</c>
    /// starts it): time from process start to its first step event, its self-reported peak RSS and faults, and the
    /// time per step from the trace's timestamps (rows 1..n-1: everything the run does per step).</summary>
    private Side Worker(string matrixFile, string runDir)
    {
        var catalog = PluginCatalog.Load(_plugins);
        var cell = MatrixExpander.Expand(MatrixParser.ParseFile(matrixFile, catalog))[0];
        var psi = new ProcessStartInfo(WorkerPool.Executable()) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        foreach (var a in new[] { "worker", "--matrix", matrixFile, "--run-id", cell.RunId, "--run-dir", runDir, "--plugins", _plugins, "--threads", _threads.ToString() })
            psi.ArgumentList.Add(a);
        WorkerPool.WorkerEnvironment(psi);
        var clock = Stopwatch.StartNew();
        using var process = Process.Start(psi)!;
        double first = double.NaN;
        var stderr = process.StandardError.ReadToEndAsync();
        while (process.StandardOutput.ReadLine() is { } line)
            if (double.IsNaN(first) && line.StartsWith(WorkerProtocol.Prefix + "{\"e\":\"step\"", StringComparison.Ordinal)) first = clock.Elapsed.TotalSeconds;
        process.WaitForExit();
        string err = stderr.Result;
        if (process.ExitCode != 0) throw new InvalidOperationException($"worker failed ({process.ExitCode}): {err}");
        var usage = WorkerCommand.ParseResources(err) ?? throw new InvalidOperationException("the worker did not report its resources");
        var atFirst = WorkerCommand.ParseResources(err, atFirstStep: true) ?? usage;
        var time = ReadTrace(Path.Combine(runDir, "trace.parquet"))["time_s"];
        int n = time.Length - 1;  // the last row is the final point (no update)
        double perStep = (time[n - 1]!.Value - time[0]!.Value) / Math.Max(1, n - 1);
        return new Side(first, perStep, usage.PeakRss, usage.MinorFaults - atFirst.MinorFaults);
    }

    /// <summary><c>harness run</c> of a matrix (worker processes, no metrics endpoint); returns the run ids.</summary>
    private List<string> HarnessRun(string matrixFile, string results)
    {
        var psi = new ProcessStartInfo(WorkerPool.Executable()) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "run", matrixFile, "--results", results, "--plugins", _plugins, "--threads", _threads.ToString(), "--no-progress", "--metrics-url", "none" })
            psi.ArgumentList.Add(a);
        using var process = Process.Start(psi)!;
        var err = process.StandardError.ReadToEndAsync();
        var outText = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0) throw new InvalidOperationException($"harness run failed ({process.ExitCode}): {err.Result}{outText}");
        var matrixDir = Directory.GetDirectories(results).Single();
        return Directory.GetDirectories(matrixDir).Select(Path.GetFileName).OrderBy(x => x, StringComparer.Ordinal).ToList()!;
    }

    /// <summary>Runs the reference script; the seconds from process start to its "first-step" line; its JSON result.</summary>
    private JsonObject? Python(string[] args, string? stdin, out double firstStep, out string stderrText)
    {
        var psi = new ProcessStartInfo(_python) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(_script);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.ArgumentList.Add("--threads");
        psi.ArgumentList.Add(_threads.ToString());
        foreach (var v in new[] { "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS" }) psi.Environment[v] = _threads.ToString();
        firstStep = double.NaN;
        Process process;
        var clock = Stopwatch.StartNew();
        try { process = Process.Start(psi)!; }
        catch (System.ComponentModel.Win32Exception e) { stderrText = e.Message; return null; }
        using (process)
        {
            var err = process.StandardError.ReadToEndAsync();
            string? last = null;
            while (process.StandardOutput.ReadLine() is { } line)
            {
                if (line == "first-step") { if (double.IsNaN(firstStep)) firstStep = clock.Elapsed.TotalSeconds; }
                else last = line;
            }
            process.WaitForExit();
            stderrText = err.Result;
            if (process.ExitCode != 0 || last is null) return null;
            return JsonNode.Parse(last) as JsonObject;
        }
    }

    internal static Dictionary<string, double?[]> ReadTrace(string path)
    {
        using var stream = File.OpenRead(path);
        var reader = ParquetReader.CreateAsync(stream).GetAwaiter().GetResult();
        var columns = new Dictionary<string, List<double?>>();
        try
        {
            for (int g = 0; g < reader.RowGroupCount; g++)
            {
                using var rg = reader.OpenRowGroupReader(g);
                foreach (var field in reader.Schema.DataFields)
                {
                    // Numeric columns only (not step, nor the matrix and run_id text columns); counts are int64.
                    if (field.Name == "step" || (field.ClrType != typeof(double) && field.ClrType != typeof(long))) continue;
                    if (!columns.TryGetValue(field.Name, out var list)) columns[field.Name] = list = new List<double?>();
                    if (field.ClrType == typeof(long))
                    {
                        var counts = new long?[rg.RowCount];
                        rg.ReadAsync<long>(field, counts.AsMemory()).AsTask().GetAwaiter().GetResult();
                        list.AddRange(counts.Select(c => (double?)c));
                        continue;
                    }
                    var values = new double?[rg.RowCount];
                    rg.ReadAsync<double>(field, values.AsMemory()).AsTask().GetAwaiter().GetResult();
                    list.AddRange(values);
                }
            }
        }
        finally { reader.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
        return columns.ToDictionary(kv => kv.Key, kv => kv.Value.ToArray());
    }

    private static double Median(IEnumerable<double> values) => BenchTable.Median(values);
}

/// <summary>Writes NumPy .npy files (format 1.0, little-endian, C order) of float32 or int64 arrays.</summary>
public static class Npy
{
    public static void Write(string path, float[] data, long[] shape) => Write(path, "<f4", System.Runtime.InteropServices.MemoryMarshal.AsBytes(data.AsSpan()), shape);
    public static void Write(string path, long[] data, long[] shape) => Write(path, "<i8", System.Runtime.InteropServices.MemoryMarshal.AsBytes(data.AsSpan()), shape);

    private static void Write(string path, string descr, ReadOnlySpan<byte> bytes, long[] shape)
    {
        string dims = shape.Length == 1 ? $"{shape[0]}," : string.Join(", ", shape);
        string header = $"{{'descr': '{descr}', 'fortran_order': False, 'shape': ({dims}), }}";
        int total = 10 + header.Length + 1;
        header = header.PadRight(header.Length + (64 - total % 64) % 64) + "\n";
        using var f = File.Create(path);
        f.Write([0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0]);
        f.Write(BitConverter.GetBytes((ushort)header.Length));
        f.Write(Encoding.ASCII.GetBytes(header));
        f.Write(bytes);
    }
}
