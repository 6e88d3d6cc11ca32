using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using Harness.Abstractions;
using Harness.Abstractions.Numerics;
using Harness.Host.Matrix;
using Harness.Host.Plugins;
using Harness.Host.Telemetry;
using Harness.Host.Training;
using Microsoft.Extensions.Logging.Abstractions;
using Parquet;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Host.Cli.Bench;

/// <summary>
/// <c>harness bench probe-cost</c>: on the demo network (experiments/demo.yaml's fashion_mlp, its probe set),
/// (1) each built-in probe's cost per measurement in seconds, counted HVPs and gradient evaluations, and in
/// gradient-evaluation equivalents (its seconds / the seconds of one probe-set gradient); (2) Lanczos iterations from a
/// warm start (previous top vector) versus a cold random start along the demo's GD run; (3) the measured probe share
/// of wall time of a real run (RunExecutor) under a probe budget, from the scheduler's accounting and independently
/// from the trace's timestamps.
/// </summary>
public sealed class ProbeCostBenchmark : IBenchmark
{
    public string Name => "probe-cost";
    public string Description => "Each probe's cost in gradient evaluations on the demo network, Lanczos warm-start saving, probe-time fraction under a budget.";

    private static string F(double x, string f = "F3") => BenchTable.F(x, f);

    public int Run(BenchContext context, TextWriter output)
    {
        var catalog = PluginCatalog.Load(context.PluginDirectory);
        if (!catalog.Models.ContainsKey("fashion_mlp") || catalog.Probes.Count == 0)
        {
            output.WriteLine($"error: the built-in plugins were not found in {context.PluginDirectory}");
            return 1;
        }
        string demoText;
        using (var s = Assembly.GetExecutingAssembly().GetManifestResourceStream("demo.yaml")
                       ?? throw new InvalidOperationException("demo.yaml is not embedded in this build"))
        using (var r = new StreamReader(s)) demoText = r.ReadToEnd();
        var demo = new MatrixParser(catalog).Parse(demoText, "demo.yaml");
        var cell = MatrixExpander.Expand(demo)[0];
        var dtype = demo.DType == "float64" ? ScalarType.Float64 : ScalarType.Float32;
        var modelPlugin = catalog.Models[cell.Model].Plugin;
        output.WriteLine($"demo network: {cell.Model} {string.Join(" ", cell.ModelHyperparameters.OrderBy(k => k.Key).Select(kv => $"{kv.Key}={RunCell.Format(kv.Value)}"))}, " +
                         $"probe set {demo.ProbeSetSize}, {demo.DType}, {torch.get_num_threads()} threads");

        using var model = modelPlugin.Create(new ModelContext(new HyperparameterValues(modelPlugin.Hyperparameters, cell.ModelHyperparameters),
            cell.InitSeed, cell.DataSeed, dtype, CPU, demo.DataDirectory));
        output.WriteLine($"parameters p = {model.Parameters.Sum(p => p.Tensor.numel())}");
        var probeSet = RunExecutor.ProbeSet(model.Train, demo.ProbeSetSize, demo.ProbeSetSeed);

        CostPerProbe(catalog, model, probeSet, context.Quick, output);
        WarmStart(catalog, model, probeSet, cell, context.Quick, output);
        BudgetFraction(catalog, demoText, context.Quick, output);
        return 0;
    }

    private static double Median(List<double> xs) => BenchTable.Median(xs);

    private static void CostPerProbe(PluginCatalog catalog, IModel model, Dataset probeSet, bool quick, TextWriter output)
    {
        int reps = quick ? 1 : 5;
        // Adam for a few steps so that P is a real preconditioner (the preconditioned probes then do their full work).
        var adamPlugin = catalog.Optimizers["adam"].Plugin;
        using var adam = adamPlugin.Create(model.Parameters.Select(p => p.Tensor).ToList(),
            new HyperparameterValues(adamPlugin.Hyperparameters, new Dictionary<string, object> { ["lr"] = 1e-3 }));
        var initial = model.Parameters.Select(p => p.Tensor.detach().clone().DetachFromDisposeScope()).ToList();
        List<Tensor>? last = null, before = null;
        for (int t = 0; t < 10; t++)
        {
            using var scope = NewDisposeScope();
            var old = model.Parameters.Select(p => p.Tensor.detach().clone()).ToList();
            adam.Step(new TorchObjective(model, model.Train));
            foreach (var u in before ?? []) u.Dispose();
            before = last;
            last = model.Parameters.Select((p, i) => (p.Tensor.detach() - old[i]).DetachFromDisposeScope()).ToList();
        }

        // Minimum times: on a shared machine the minimum over repetitions is the best estimate of the intrinsic cost.
        var gradTimes = new List<double>();
        var hvpTimes = new List<double>();
        void TimeGradientAndHvp()
        {
            for (int r = 0; r < 3; r++)
            {
                using var scope = NewDisposeScope();
                var o = new TorchObjective(model, probeSet);
                var w = Stopwatch.StartNew();
                o.Evaluate();
                gradTimes.Add(w.Elapsed.TotalSeconds);
                using var h = o.Hessian();
                var v = randn(h.Dimension, dtype: model.Parameters[0].Tensor.dtype);
                h.Multiply(v);
                for (int k = 0; k < 3; k++)
                {
                    w.Restart();
                    h.Multiply(v);
                    hvpTimes.Add(w.Elapsed.TotalSeconds);
                }
            }
        }
        TimeGradientAndHvp();
        var rows = new List<(string Name, int Hvps, int Grads, double Seconds, string Convergence)>();
        var shared = new Dictionary<string, object>(StringComparer.Ordinal);
        try
        {
            foreach (var (name, loaded) in catalog.Probes.OrderBy(kv => Order(kv.Key)).ThenBy(kv => kv.Key, StringComparer.Ordinal))
            {
                var values = new HyperparameterValues(loaded.Plugin.Hyperparameters);
                double best = double.PositiveInfinity;
                int hvps = 0, grads = 0;
                IReadOnlyDictionary<string, double> m = new Dictionary<string, double>();
                for (int r = 0; r < reps; r++)
                {
                    // A new probe each time: a cold measurement (no warm start from the same point; see below for that).
                    using var probe = loaded.Plugin.Create(values);
                    using var scope = NewDisposeScope();
                    var o = new TorchObjective(model, probeSet);
                    var w = Stopwatch.StartNew();
                    m = probe.Measure(new ProbeContext(o, adam, model, 10, initial, last, shared) { UpdateBeforePrevious = before });
                    best = Math.Min(best, w.Elapsed.TotalSeconds);
                    hvps = o.HessianProducts;
                    grads = o.GradientEvaluations;
                }
                string conv = string.Join(" ", m.Where(kv => kv.Key.EndsWith("_iterations") || kv.Key.EndsWith("_residual") || kv.Key.EndsWith("_samples"))
                    .Select(kv => $"{kv.Key}={F(kv.Value, "G3")}"));
                rows.Add((name, hvps, grads, best, conv));
            }
            TimeGradientAndHvp();
            double tGrad = gradTimes.Min(), tHvp = hvpTimes.Min(), ratio = tHvp / tGrad;
            output.WriteLine();
            output.WriteLine($"-- cost per measurement (Adam lr 1e-3 after 10 steps, default hyperparameters, cold start, fastest of {reps})");
            output.WriteLine($"one probe-set gradient: {F(tGrad * 1e3, "F1")} ms; one HVP on a built graph: {F(tHvp * 1e3, "F1")} ms = {F(ratio, "F2")} gradient evaluations (fastest of {gradTimes.Count} / {hvpTimes.Count})");
            output.WriteLine("counted = gradient evaluations + HVPs × the HVP/gradient time ratio (per-sample gradients count as full ones: an upper bound);");
            output.WriteLine("timed = the measurement's seconds / one probe-set gradient's seconds");
            var table = new BenchTable("probe", "HVPs", "grads", "counted", "seconds", "timed", "convergence").LeftAligned(6);
            foreach (var r in rows)
                table.Add(r.Name, r.Hvps.ToString(CultureInfo.InvariantCulture), r.Grads.ToString(CultureInfo.InvariantCulture),
                    F(r.Grads + r.Hvps * ratio, "F1"), F(r.Seconds), F(r.Seconds / tGrad, "F1"), r.Convergence);
            table.Print(output);
        }
        finally
        {
            foreach (var x in initial) x.Dispose();
            foreach (var u in (last ?? []).Concat(before ?? [])) u.Dispose();
        }
    }

    /// <summary>Probes that publish on the blackboard first (as a matrix would list them).</summary>
    private static int Order(string name) => name switch { "sharpness" => 0, "precond_sharpness" => 1, _ => 2 };

    /// <summary>GD's learning rate for the trajectories here: demo.yaml's 0.03–0.08 exceed 2/λ1(θ0) of the demo network
    /// (λ1 ≈ 107 at initialisation), so those runs start with a catapult; 0.01 (2/η = 200) gives a smooth trajectory.</summary>
    private const double StableLr = 0.01;

    private static void WarmStart(PluginCatalog catalog, IModel model, Dataset probeSet, RunCell demoCell, bool quick, TextWriter output)
    {
        // GD at StableLr on the demo network, from a fresh model with the demo's seeds.
        var modelPlugin = catalog.Models[demoCell.Model].Plugin;
        using var fresh = modelPlugin.Create(new ModelContext(new HyperparameterValues(modelPlugin.Hyperparameters, demoCell.ModelHyperparameters),
            demoCell.InitSeed, demoCell.DataSeed, model.Parameters[0].Tensor.dtype, CPU, demoCell.Matrix.DataDirectory));
        var freshProbeSet = RunExecutor.ProbeSet(fresh.Train, demoCell.Matrix.ProbeSetSize, demoCell.Matrix.ProbeSetSeed);
        var gdPlugin = catalog.Optimizers["gd"].Plugin;
        using var gd = gdPlugin.Create(fresh.Parameters.Select(p => p.Tensor).ToList(),
            new HyperparameterValues(gdPlugin.Hyperparameters, new Dictionary<string, object> { ["lr"] = StableLr }));
        int steps = quick ? 100 : 600, every = 25;
        var options = new LanczosOptions(100, 1e-3);
        var dtype = fresh.Parameters[0].Tensor.dtype;
        Tensor? previous = null;
        var cold = new List<int>();
        var warm = new List<int>();
        double maxRelDiff = 0, initialSharpness = 0, finalSharpness = 0;
        int coldUnconverged = 0, warmUnconverged = 0;
        try
        {
            for (int t = 0; t <= steps; t++)
            {
                using var scope = NewDisposeScope();
                if (t % every == 0)
                {
                    var o = new TorchObjective(fresh, freshProbeSet);
                    using var h = o.Hessian();
                    var c = Lanczos.Run(h, options, null, seed: t, dtype: dtype);
                    cold.Add(c.Iterations);
                    if (t == 0) initialSharpness = c.Top[0].Value;
                    finalSharpness = c.Top[0].Value;
                    if (!c.Converged) coldUnconverged++;
                    if (previous is not null)
                    {
                        var wr = Lanczos.Run(h, options, previous, seed: t, dtype: dtype);
                        warm.Add(wr.Iterations);
                        if (!wr.Converged) warmUnconverged++;
                        maxRelDiff = Math.Max(maxRelDiff, Math.Abs(wr.Top[0].Value - c.Top[0].Value) / Math.Abs(c.Top[0].Value));
                        previous.Dispose();
                        previous = wr.Top[0].Vector.detach().clone().DetachFromDisposeScope();
                    }
                    else previous = c.Top[0].Vector.detach().clone().DetachFromDisposeScope();
                }
                if (t < steps) gd.Step(new TorchObjective(fresh, fresh.Train));
            }
        }
        finally { previous?.Dispose(); }
        // Compare on the measurements that have both (the first has no previous vector).
        double coldMean = cold.Skip(1).Average(), warmMean = warm.Average();
        output.WriteLine();
        output.WriteLine($"-- Lanczos warm start (demo network, GD lr {StableLr}, {steps} steps, every {every}, tolerance 1e-3, at most 100 iterations, {warm.Count} measurements)");
        output.WriteLine($"λ1(H) {F(initialSharpness, "F1")} at step 0 → {F(finalSharpness, "F1")} at step {steps} (2/η = {F(2 / StableLr, "F0")})");
        output.WriteLine($"cold start: {F(coldMean, "F1")} iterations (HVPs) per measurement ({coldUnconverged} of {cold.Count} not converged)");
        output.WriteLine($"warm start: {F(warmMean, "F1")} iterations (HVPs) per measurement ({warmUnconverged} of {warm.Count} not converged)");
        output.WriteLine($"saving: {F(100 * (1 - warmMean / coldMean), "F1")} % of the HVPs; largest |λ1(warm) − λ1(cold)|/λ1 = {F(maxRelDiff, "E2")}");
    }

    private static void BudgetFraction(PluginCatalog catalog, string demoText, bool quick, TextWriter output)
    {
        const double budget = 0.2;
        int steps = quick ? 300 : 1500;
        // The demo matrix at the stable lr, with probes that ask for far more than the budget (sharpness every step).
        string text = string.Join('\n', demoText.Split('\n').Where(l => !l.TrimStart().StartsWith('#'))) ;
        text = System.Text.RegularExpressions.Regex.Replace(text, @"(?m)^(\s+)lr: \[[^\]]*\]", $"$1lr: {StableLr.ToString(CultureInfo.InvariantCulture)}");
        text = System.Text.RegularExpressions.Regex.Replace(text, @"(?m)^(\s+)steps: \d+", $"$1steps: {steps}\n$1probe_budget: {F(budget, "F2")}");
        int probesAt = text.IndexOf("probes:", StringComparison.Ordinal);
        text = text[..probesAt] + """
            probes:
              - name: sharpness
                every: 1
                hyperparameters: { max_iterations: 20, tolerance: 0.001 }
              - name: hessian_trace
                every: 5
                hyperparameters: { samples: 10, min_samples: 10 }
              - name: update_geometry
                every: 1
            """.Replace("\r", "");
        text = text.Replace("name: demo", "name: bench-probe-budget");
        var spec = new MatrixParser(catalog).Parse(text, "bench-probe-budget.yaml");
        var cell = MatrixExpander.Expand(spec)[0];
        // demo.yaml changes over time: refuse to report a fraction for a run that is not the one described above.
        if (spec.Training.ProbeBudget != budget || spec.Training.Steps != steps || (double)cell.OptimizerHyperparameters["lr"] != StableLr)
            throw new InvalidOperationException("the budget run could not be derived from demo.yaml (its lr list or training.steps line changed shape)");
        var dir = Path.Combine(Path.GetTempPath(), $"harness-bench-budget-{Environment.ProcessId}");
        if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        try
        {
            using var metrics = new HarnessMetrics();
            var manifest = new RunExecutor(catalog, metrics, NullLogger.Instance).Execute(cell, dir, new Silent(), CancellationToken.None);
            var trace = ReadTrace(Path.Combine(dir, "trace.parquet"));
            var time = trace["time_s"];
            int n = time.Length;
            var probeNames = spec.Probes.Select(p => p.Id).ToList();
            double Probe(int i) => probeNames.Sum(p => trace[$"probe_{p}_seconds"][i] ?? 0);
            // Independently of the scheduler: probe seconds from the trace over the loop's wall time from the timestamps
            // (time_s is taken after each iteration; iteration 0's own duration is its probe seconds + its step seconds).
            double probeSum = 0;
            for (int i = 0; i < n; i++) probeSum += Probe(i);
            double wall = time[n - 1]!.Value - time[0]!.Value + Probe(0) + (trace["step_seconds"][0] ?? 0);
            double gatedProbe = 0;
            for (int i = 1; i < n - 1; i++) gatedProbe += Probe(i);
            double gatedWall = time[n - 2]!.Value - time[0]!.Value;
            output.WriteLine();
            output.WriteLine($"-- probe budget {F(budget, "F2")} on the demo run (GD lr {StableLr}, {steps} steps; sharpness every 1, hessian_trace every 5, update_geometry every 1): {manifest.Status}");
            foreach (var p in probeNames)
            {
                var secs = trace[$"probe_{p}_seconds"];
                int count = secs.Count(x => x is not null);
                output.WriteLine($"{p,-18} measured {count,4} times, {F(secs.Where(x => x is not null).Average(x => x!.Value) * 1e3, "F1")} ms each, " +
                                 $"last interval {F(trace[$"probe_{p}_interval"].Last(x => x is not null)!.Value, "F0")}");
            }
            output.WriteLine($"stretch at the end: {F(trace["probe_stretch"][n - 1]!.Value, "F1")}");
            output.WriteLine($"scheduler accounting (all rows, incl. bootstrap and final): probe fraction {F(trace["probe_time_fraction"][n - 1]!.Value)}");
            output.WriteLine($"measured from the trace timestamps, whole loop: probe seconds {F(probeSum, "F2")} / wall {F(wall, "F2")} = {F(probeSum / wall)} (budget {F(budget, "F2")})");
            output.WriteLine($"measured, iterations 1..{n - 2} (without the ungated first and final measurements): {F(gatedProbe, "F2")} / {F(gatedWall, "F2")} = {F(gatedProbe / gatedWall)}");
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true); }
    }

    private static Dictionary<string, double?[]> ReadTrace(string path)
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
                    if (!columns.TryGetValue(field.Name, out var list)) columns[field.Name] = list = new List<double?>();
                    if (field.Name == "step")
                    {
                        var steps = new long[rg.RowCount];
                        rg.ReadAsync<long>(field, steps.AsMemory()).AsTask().GetAwaiter().GetResult();
                        list.AddRange(steps.Select(s => (double?)s));
                    }
                    else
                    {
                        var values = new double?[rg.RowCount];
                        rg.ReadAsync<double>(field, values.AsMemory()).AsTask().GetAwaiter().GetResult();
                        list.AddRange(values);
                    }
                }
            }
        }
        finally { reader.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
        return columns.ToDictionary(kv => kv.Key, kv => kv.Value.ToArray());
    }

    private sealed class Silent : IRunProgress { }
}
