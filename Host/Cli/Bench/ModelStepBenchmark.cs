using System.Diagnostics;
using System.Globalization;
using Harness.Abstractions;
using Harness.Host.Plugins;
using Harness.Host.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Host.Cli.Bench;

/// <summary><c>harness bench model-step</c>: for every model plugin at its default (scaled-down) hyperparameters, in
/// float32 on the CPU with init_seed = data_seed = 0: parameter count, training examples, the time of one full-batch
/// gradient (forward + backward, through the host's <see cref="TorchObjective"/>; the cost of a full-batch training
/// step up to the optimizer's O(p) update), the time to build the Hessian
/// operator (forward + backward with create_graph) and of one Hessian-vector product on it. Medians over repetitions
/// after one warm-up. Models whose data are missing are reported as skipped.</summary>
public sealed class ModelStepBenchmark : IBenchmark
{
    public string Name => "model-step";
    public string Description => "Full-batch gradient and Hessian-vector product time of every model at its CPU default (float32).";

    public int Run(BenchContext context, TextWriter output)
    {
        var catalog = PluginCatalog.Load(context.PluginDirectory);
        foreach (var e in catalog.Errors) output.WriteLine($"plugin error: {e.File}: {e.Reason}");
        if (catalog.Models.Count == 0) { output.WriteLine($"no model plugins in {catalog.Folder}"); return 1; }
        int reps = context.Quick ? 2 : 7;
        string load = File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Split(' ')[0] : "n/a";
        output.WriteLine($"libtorch threads: {get_num_threads()}, cores: {Environment.ProcessorCount}, load average at start: {load}, repetitions: {reps} (median), dtype float32, device cpu");
        output.WriteLine($"{"model",-18} {"params",10} {"examples",9} {"grad_ms",9} {"grad_min",9} {"hvp_build_ms",13} {"hvp_ms",8} {"hvp/grad",9}");
        int rc = 0;
        foreach (var (name, loaded) in catalog.Models.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            try
            {
                var r = Measure(loaded.Plugin, reps);
                output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{name,-18} {r.Parameters,10} {r.Examples,9} {r.GradMs,9:F1} {r.GradMinMs,9:F1} {r.BuildMs,13:F1} {r.HvpMs,8:F1} {r.HvpMs / r.GradMs,9:F2}"));
            }
            catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or InvalidDataException)
            {
                output.WriteLine($"{name,-18} skipped: {e.Message}");
            }
            catch (Exception e)
            {
                output.WriteLine($"{name,-18} FAILED: {e.GetType().Name}: {e.Message}");
                rc = 1;
            }
        }
        return rc;
    }

    public sealed record Result(long Parameters, long Examples, double GradMs, double GradMinMs, double BuildMs, double HvpMs);

    public static Result Measure(IModelPlugin plugin, int reps)
    {
        using var scope = NewDisposeScope();
        var hp = new HyperparameterValues(plugin.Hyperparameters);
        using var model = plugin.Create(new ModelContext(hp, 0, 0, ScalarType.Float32, CPU, null));
        long p = model.Parameters.Sum(q => q.Tensor.numel());
        var v = randn(p, dtype: ScalarType.Float32, generator: new torch.Generator(1));

        // Interleaved, so that the three figures see the same load on a shared machine; iteration 0 is a warm-up.
        var grad = new List<double>();
        var build = new List<double>();
        var hvp = new List<double>();
        for (int i = 0; i <= reps; i++)
        {
            using var s = NewDisposeScope();
            var clock = Stopwatch.StartNew();
            new TorchObjective(model, model.Train).Evaluate();
            double g = clock.Elapsed.TotalMilliseconds;
            var objective = new TorchObjective(model, model.Train);
            clock.Restart();
            using var op = objective.Hessian();
            double b = clock.Elapsed.TotalMilliseconds;
            op.Multiply(v);                       // first product on a fresh graph
            clock.Restart();
            op.Multiply(v);                       // steady state: the graph is reused (as in Lanczos)
            double h = clock.Elapsed.TotalMilliseconds;
            if (i > 0) { grad.Add(g); build.Add(b); hvp.Add(h); }
        }
        return new Result(p, model.Train.Count, Median(grad), grad.Min(), Median(build), Median(hvp));
    }

    private static double Median(List<double> xs)
    {
        xs.Sort();
        return xs.Count % 2 == 1 ? xs[xs.Count / 2] : (xs[xs.Count / 2 - 1] + xs[xs.Count / 2]) / 2;
    }
}
