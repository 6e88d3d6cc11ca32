using System.CommandLine;
using System.Reflection;

namespace Harness.Host.Cli;

/// <summary>One benchmark of <c>harness bench</c>: measures ratios and costs within one run on one machine (speed
/// and memory targets are checked here, never by timed unit tests). Implementations are found by reflection in
/// the host assembly; add a class, and it becomes <c>harness bench &lt;Name&gt;</c>.</summary>
public interface IBenchmark
{
    string Name { get; }
    string Description { get; }
    /// <summary>Runs the benchmark, writing a human-readable report to <paramref name="output"/>; returns an exit code.</summary>
    int Run(BenchContext context, TextWriter output);
}

/// <param name="PluginDirectory">the plugin folder (benchmarks load plugins the way runs do)</param>
/// <param name="Quick">fewer repetitions (for smoke tests of the benchmark itself)</param>
public sealed record BenchContext(string PluginDirectory, bool Quick);

public static class BenchCommand
{
    public static IReadOnlyList<IBenchmark> All() =>
        typeof(BenchCommand).Assembly.GetTypes()
            .Where(t => typeof(IBenchmark).IsAssignableFrom(t) && t is { IsClass: true, IsAbstract: false })
            .Select(t => (IBenchmark)Activator.CreateInstance(t)!)
            .OrderBy(b => b.Name, StringComparer.Ordinal).ToList();

    public static Command Create(Option<string?> plugins)
    {
        var quick = new Option<bool>("--quick") { Description = "fewer repetitions" };
        var threads = new Option<int?>("--threads")
        {
            Description = $"libtorch threads of every benchmark, and of both sides of `peer` (default: ${Bench.PeerBenchmark.ThreadsVariable}, else 1: on shared cores more threads measure contention)",
        };
        var which = new Argument<string[]>("benchmark") { Description = "benchmarks to run (default: all)", Arity = ArgumentArity.ZeroOrMore };
        var cmd = new Command("bench", "Measure speed and cost figures (ratios within one run on this machine).") { which, plugins, quick, threads };
        cmd.SetAction(p =>
        {
            var all = All();
            var names = p.GetValue(which) ?? [];
            var unknown = names.Where(n => all.All(b => b.Name != n)).ToList();
            if (unknown.Count > 0)
            {
                Console.Error.WriteLine($"error: unknown benchmark(s) {string.Join(", ", unknown)}; available: {string.Join(", ", all.Select(b => b.Name))}");
                return 2;
            }
            if (p.GetValue(threads) is { } n)
            {
                if (n < 1) { Console.Error.WriteLine($"error: --threads must be at least 1 (got {n})"); return 2; }
                Environment.SetEnvironmentVariable(Bench.PeerBenchmark.ThreadsVariable, n.ToString(System.Globalization.CultureInfo.InvariantCulture));
            }
            TorchSharp.torch.set_num_threads(int.TryParse(Environment.GetEnvironmentVariable(Bench.PeerBenchmark.ThreadsVariable), out var t) && t > 0 ? t : 1);
            var ctx = new BenchContext(p.GetValue(plugins) ?? Path.Combine(AppContext.BaseDirectory, "plugins"), p.GetValue(quick));
            int rc = 0;
            foreach (var b in all.Where(b => names.Length == 0 || names.Contains(b.Name)))
            {
                Console.WriteLine($"== {b.Name}: {b.Description}");
                rc = Math.Max(rc, b.Run(ctx, Console.Out));
            }
            return rc;
        });
        return cmd;
    }
}
