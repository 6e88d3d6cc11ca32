using System.Diagnostics;
using System.Globalization;
using Harness.Abstractions;
using Harness.Host.Plugins;
using Harness.Host.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Host.Cli.Bench;

/// <summary>
/// <c>harness bench soak</c>: long in-process trainings on the default <c>quadratic</c> under forced GC pressure, to
/// catch native handles (above all implicitly converted Scalars) that the garbage collector can finalize while a
/// native call still uses them. Every optimizer at its defaults, and every tuner around <c>gd</c>, trains in chunks of
/// <see cref="Chunk"/> steps from the same θ0; each chunk's final θ must equal, bit for bit, the same chunk trained
/// once before the pressure starts. Every probe measures once at the end of each chunk. Meanwhile one thread runs
/// GC.Collect + WaitForPendingFinalizers in a loop and another churns allocations. A failure is a chunk that threw
/// or ended at another θ; the report gives the total step count at the first failure.
/// Total steps: HARNESS_SOAK_STEPS (default 5 000 000; 200 000 with --quick).
/// </summary>
public sealed class SoakBenchmark : IBenchmark
{
    public string Name => "soak";
    public string Description => "long quadratic trainings of every optimizer/tuner/probe under forced GC pressure; fails on any error or non-reproduced step";
    public const int Chunk = 5_000;

    private sealed record Config(string Label, Func<IReadOnlyList<Tensor>, IOptimizer> Create);

    public int Run(BenchContext context, TextWriter output)
    {
        long total = long.TryParse(Environment.GetEnvironmentVariable("HARNESS_SOAK_STEPS"), out var n) && n > 0 ? n : context.Quick ? 200_000 : 5_000_000;
        var catalog = PluginCatalog.Load(context.PluginDirectory);
        if (!catalog.Models.TryGetValue("quadratic", out var quadratic)) { output.WriteLine($"no quadratic model in {catalog.Folder}"); return 1; }
        var configs = new List<Config>();
        foreach (var (name, o) in catalog.Optimizers.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            configs.Add(new Config(name, ps => o.Plugin.Create(ps, new HyperparameterValues(o.Plugin.Hyperparameters))));
        if (catalog.Optimizers.TryGetValue("gd", out var gd))
            foreach (var (name, tu) in catalog.Tuners.OrderBy(kv => kv.Key, StringComparer.Ordinal))
                configs.Add(new Config($"gd+{name}", ps => new TunedOptimizer(
                    (IDirectionalOptimizer)gd.Plugin.Create(ps, new HyperparameterValues(gd.Plugin.Hyperparameters)),
                    tu.Plugin.Create(new HyperparameterValues(tu.Plugin.Hyperparameters)))));
        var probes = catalog.Probes.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => kv.Value.Plugin).ToList();
        output.WriteLine($"{configs.Count} configurations ({catalog.Optimizers.Count} optimizers, {catalog.Tuners.Count} tuners around gd), {probes.Count} probes at each chunk's end; " +
                         $"chunks of {Chunk} steps; {total} steps under pressure; libtorch threads {get_num_threads()}");

        // References: each configuration's chunk once, without pressure.
        // A configuration or probe that fails without pressure too (e.g. a probe that needs a classifier) is not
        // what this benchmark looks for: it is left out (configuration) or its error is expected (probe).
        var reference = new Dictionary<string, (byte[] Theta, string ProbeErrors)>();
        foreach (var c in configs.ToList())
        {
            try
            {
                var theta = Train(quadratic.Plugin, c, probes, out var errors);
                reference[c.Label] = (theta, string.Join("\n", errors));
            }
            catch (Exception e)
            {
                output.WriteLine($"{c.Label}: left out, fails without pressure too: {e.GetType().Name}: {FirstLine(e.Message)}");
                configs.Remove(c);
            }
        }
        foreach (var e in reference.Values.SelectMany(r => r.ProbeErrors.Split('\n', StringSplitOptions.RemoveEmptyEntries)).Distinct())
            output.WriteLine($"expected without pressure too: {e}");
        if (configs.Count == 0) return 1;

        using var stop = new CancellationTokenSource();
        long collections = 0;
        var gc = new Thread(() => { while (!stop.IsCancellationRequested) { GC.Collect(); GC.WaitForPendingFinalizers(); Interlocked.Increment(ref collections); } })
            { IsBackground = true, Name = "soak-gc" };
        var churn = new Thread(() =>
        {
            var keep = new object[1024];
            for (long i = 0; !stop.IsCancellationRequested; i++) keep[i & 1023] = new byte[64 + (i % 4096)];
        }) { IsBackground = true, Name = "soak-churn" };
        gc.Start();
        churn.Start();

        long steps = 0, failures = 0, probeFailures = 0;
        long? firstFailure = null;
        var clock = Stopwatch.StartNew();
        var nextReport = TimeSpan.FromSeconds(30);
        try
        {
            for (int i = 0; steps < total; i++)
            {
                var c = configs[i % configs.Count];
                string? failed = null;
                try
                {
                    var final = Train(quadratic.Plugin, c, probes, out var probeErrors);
                    var expected = reference[c.Label];
                    if (!final.AsSpan().SequenceEqual(expected.Theta)) failed = "final θ differs from the reference chunk";
                    else if (string.Join("\n", probeErrors) != expected.ProbeErrors)
                    {
                        probeFailures++;
                        failed = $"probe errors differ from the reference chunk: {string.Join("; ", probeErrors)}";
                    }
                }
                catch (Exception e) { failed = $"{e.GetType().Name}: {FirstLine(e.Message)}"; }
                steps += Chunk;
                if (failed is not null)
                {
                    failures++;
                    firstFailure ??= steps;
                    output.WriteLine($"FAILURE at step ≤ {steps} ({c.Label}, chunk {i}): {failed}");
                }
                if (clock.Elapsed >= nextReport)
                {
                    nextReport += TimeSpan.FromSeconds(30);
                    output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {steps} steps, {failures} failure(s), {Interlocked.Read(ref collections)} forced collections, {clock.Elapsed.TotalSeconds:F0} s"));
                }
            }
        }
        finally
        {
            stop.Cancel();
            gc.Join();
            churn.Join();
        }
        string verdict = firstFailure is { } f ? $", first failure at step ≤ {f}" : ", zero failures";
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"soak: {steps} steps under pressure ({collections} forced collections, {clock.Elapsed.TotalSeconds:F0} s): {failures} failed chunk(s), {probeFailures} probe failure(s){verdict}"));
        return failures == 0 ? 0 : 1;
    }

    /// <summary>One chunk from θ0 (init_seed 0); every probe measures at its end. Returns the final θ's bytes.</summary>
    private static byte[] Train(IModelPlugin plugin, Config config, List<IProbePlugin> probes, out List<string> probeErrors)
    {
        probeErrors = [];
        using var scope = NewDisposeScope();
        using var model = plugin.Create(new ModelContext(new HyperparameterValues(plugin.Hyperparameters), 0, 0, ScalarType.Float64, CPU, null));
        var parameters = model.Parameters.Select(p => p.Tensor).ToList();
        var initial = parameters.Select(p => p.detach().clone()).ToList();
        using var optimizer = config.Create(parameters);
        var shared = new Dictionary<string, object>(StringComparer.Ordinal);
        if (optimizer is TunedOptimizer tuned) tuned.Shared = shared;
        List<Tensor>? previous = null;
        for (int t = 0; t < Chunk; t++)
        {
            using var step = NewDisposeScope();
            var before = t == Chunk - 1 ? parameters.Select(p => p.detach().clone().MoveToOuterDisposeScope()).ToList() : null;
            optimizer.Step(new TorchObjective(model, model.Train));
            if (before is not null) previous = parameters.Select((p, i) => (p.detach() - before[i]).MoveToOuterDisposeScope()).ToList();
        }
        foreach (var probePlugin in probes)
        {
            var values = new HyperparameterValues(probePlugin.Hyperparameters);
            try
            {
                using var probe = probePlugin.Create(values);
                using var s = NewDisposeScope();
                probe.Measure(new ProbeContext(new TorchObjective(model, model.Train), optimizer, model, Chunk, initial, previous, shared));
            }
            catch (Exception e) { probeErrors.Add($"probe {probePlugin.Name}: {e.GetType().Name}: {FirstLine(e.Message)}"); }
        }
        return parameters.SelectMany(p => p.detach().cpu().contiguous().bytes.ToArray()).ToArray();
    }

    private static string FirstLine(string s) => s.Split('\n')[0].Trim();
}
