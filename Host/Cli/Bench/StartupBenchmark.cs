using System.Diagnostics;
using System.Text.RegularExpressions;
using Harness.Host.Matrix;
using Harness.Host.Plugins;
using Harness.Host.Workers;
using static Harness.Host.Cli.Bench.BenchTable;

namespace Harness.Host.Cli.Bench;

/// <summary>
/// <c>harness bench startup</c>: where a worker's time to its first training step goes (target ≤ 1.5 s). Starts
/// <c>harness worker</c> on the demo network (fashion_mlp 3×100, 2000 examples, float32, full batch, 3 steps,
/// --threads 1) several times and prints, per phase of its start-up log line (runtime = process start to the
/// worker's code; logging; libtorch; plugins; matrix; model and data; optimizer, probes and trace; first step), the
/// median and fastest seconds; the wall time from process start to the first step event as the supervisor sees it;
/// and the worker's CPU time at its first step (all threads; on a shared machine the wall time waits for cores, the
/// CPU time does not). Then the same for a later run in a reused worker (<c>--serve</c>: request to first step).
/// HARNESS_BENCH_WORKER names another <c>harness</c> executable to measure (e.g. an earlier build, for before/after).
/// </summary>
public sealed partial class StartupBenchmark : IBenchmark
{
    public string Name => "startup";
    public string Description => "Time from worker start to the first training step, by phase (runtime, libtorch, plugins, matrix, data, first step).";

    public const string WorkerVariable = "HARNESS_BENCH_WORKER";

    public int Run(BenchContext context, TextWriter output)
    {
        string plugins = Path.GetFullPath(context.PluginDirectory);
        var catalog = PluginCatalog.Load(plugins);
        if (!catalog.Models.ContainsKey("fashion_mlp")) { output.WriteLine($"error: the built-in plugins were not found in {plugins}"); return 1; }
        int reps = context.Quick ? 2 : 5;
        string load = LoadAverage();
        var root = Path.Combine(Path.GetTempPath(), $"harness-startup-{Environment.ProcessId}");
        Directory.CreateDirectory(root);
        try
        {
            var matrix = Path.Combine(root, "startup.yaml");
            File.WriteAllText(matrix, """
                name: startup
                models:
                  - name: fashion_mlp
                    hyperparameters: { depth: 3, width: 100, train_size: 2000, test_size: 0, loss: mse }
                optimizers:
                  - name: gd
                    hyperparameters: { lr: [0.05, 0.04] }
                training: { steps: 3, batch_size: full }
                probe_set: { size: 2000 }
                """);
            var cells = MatrixExpander.Expand(MatrixParser.ParseFile(matrix, catalog));
            output.WriteLine($"demo network, 3 steps, --threads 1, {reps} worker start(s) of {Executable()}; cores {Environment.ProcessorCount}; load average at start: {load}");

            var phases = new List<(string phase, double seconds)>();
            var wall = new List<double>();
            var cpu = new List<double>();
            for (int r = 0; r < reps; r++)
            {
                var (first, cpuAtFirst, stderr) = OneShot(plugins, matrix, cells[0].RunId, Path.Combine(root, $"run{r}"));
                wall.Add(first);
                phases.AddRange(Phases(stderr));
                cpu.Add(cpuAtFirst);
            }
            var table = new BenchTable("phase (new worker)", "median s", "fastest s");
            foreach (var name in phases.Select(p => p.phase).Distinct())
            {
                var xs = phases.Where(p => p.phase == name).Select(p => p.seconds).ToList();
                table.Add(name, F(Median(xs), "F2"), F(xs.Min(), "F2"));
            }
            table.Add("sum of the phases", F(Median(Sums(phases, reps)), "F2"), F(Sums(phases, reps).Min(), "F2"));
            table.Add("process start to first step event (wall)", F(Median(wall), "F2"), F(wall.Min(), "F2"));
            table.Add("CPU time at the first step (all threads)", F(Median(cpu), "F2"), F(cpu.Min(), "F2"));
            table.Print(output);

            var reused = new List<double>();
            var reusedPhases = new List<(string phase, double seconds)>();
            for (int r = 0; r < reps; r++)
            {
                var (second, stderr) = Reused(plugins, matrix, cells, Path.Combine(root, $"serve{r}"));
                reused.Add(second);
                reusedPhases.AddRange(Phases(stderr));
            }
            output.WriteLine();
            var t2 = new BenchTable("later run in a reused worker", "median s", "fastest s");
            foreach (var name in reusedPhases.Select(p => p.phase).Distinct())
            {
                var xs = reusedPhases.Where(p => p.phase == name).Select(p => p.seconds).ToList();
                t2.Add(name, F(Median(xs), "F2"), F(xs.Min(), "F2"));
            }
            t2.Add("request to first step event (wall)", F(Median(reused), "F2"), F(reused.Min(), "F2"));
            t2.Print(output);
            output.WriteLine($"target: process start to first step ≤ 1.5 s; load average at start: {load}, at end: {LoadAverage()} " +
                             "(with more runnable jobs than cores the wall times wait for a core; the CPU time does not)");
        }
        finally { Directory.Delete(root, recursive: true); }
        return 0;
    }

    private static IEnumerable<double> Sums(List<(string phase, double seconds)> phases, int reps)
    {
        // Phases come in the same order for each repetition, starting with "runtime".
        double sum = 0; bool any = false;
        foreach (var (phase, seconds) in phases)
        {
            if (phase == "runtime" && any) { yield return sum; sum = 0; }
            sum += seconds; any = true;
        }
        if (any) yield return sum;
    }

    /// <summary>The phases of the last start-up line in a worker's stderr (the first run's, for a reused worker the
    /// last run's: "from the request").</summary>
    internal static List<(string phase, double seconds)> Phases(string stderr)
    {
        var line = stderr.Split('\n').LastOrDefault(l => l.Contains(": start-up "));
        if (line is null) return [];
        var body = line[(line.IndexOf(": start-up ", StringComparison.Ordinal) + ": start-up ".Length)..];
        int paren = body.LastIndexOf(" (", StringComparison.Ordinal);
        if (paren >= 0) body = body[..paren];
        return PhasePattern().Matches(body).Select(m => (m.Groups["phase"].Value, double.Parse(m.Groups["s"].Value, System.Globalization.CultureInfo.InvariantCulture))).ToList();
    }

    [GeneratedRegex(@"(?<phase>[a-z][a-z ,]*?) (?<s>\d+\.\d+) s(?:, |$)")]
    private static partial Regex PhasePattern();

    private static ProcessStartInfo Worker(string plugins, IEnumerable<string> args)
    {
        var psi = new ProcessStartInfo(Executable()) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        foreach (var a in new[] { "worker" }.Concat(args).Concat(["--plugins", plugins, "--threads", "1"])) psi.ArgumentList.Add(a);
        WorkerPool.WorkerEnvironment(psi);
        return psi;
    }

    private static string Executable() => Environment.GetEnvironmentVariable(WorkerVariable) is { Length: > 0 } other ? other : WorkerPool.Executable();

    /// <summary>CPU seconds (user + system, all threads) of a live process, from /proc/&lt;pid&gt;/stat (clock ticks of 1/100 s).</summary>
    private static double CpuSeconds(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var f = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return (long.Parse(f[11]) + long.Parse(f[12])) / 100.0;
        }
        catch (IOException) { return double.NaN; }
    }

    private static bool IsStep(string line) => line.StartsWith(WorkerProtocol.Prefix + "{\"e\":\"step\"", StringComparison.Ordinal);
    private static bool IsEnded(string line) => line.StartsWith(WorkerProtocol.Prefix + "{\"e\":\"ended\"", StringComparison.Ordinal);

    /// <summary>A one-run worker: seconds from process start to its first step event, its CPU seconds then, and its stderr.</summary>
    private static (double first, double cpu, string stderr) OneShot(string plugins, string matrix, string runId, string runDir)
    {
        var clock = Stopwatch.StartNew();
        using var process = Process.Start(Worker(plugins, ["--matrix", matrix, "--run-id", runId, "--run-dir", runDir]))!;
        var stderr = process.StandardError.ReadToEndAsync();
        double first = double.NaN, cpu = double.NaN;
        while (process.StandardOutput.ReadLine() is { } line)
            if (double.IsNaN(first) && IsStep(line)) { first = clock.Elapsed.TotalSeconds; cpu = CpuSeconds(process.Id); }
        process.WaitForExit();
        if (process.ExitCode != 0) throw new InvalidOperationException($"worker failed ({process.ExitCode}): {stderr.Result}");
        return (first, cpu, stderr.Result);
    }

    /// <summary>A <c>--serve</c> worker given two runs in turn: seconds from the second request to its first step
    /// event, and its stderr.</summary>
    private static (double second, string stderr) Reused(string plugins, string matrix, IReadOnlyList<RunCell> cells, string root)
    {
        using var process = Process.Start(Worker(plugins, ["--serve"]))!;
        var stderr = process.StandardError.ReadToEndAsync();
        double second = double.NaN;
        var clock = new Stopwatch();
        for (int i = 0; i < 2; i++)
        {
            if (i == 1) clock.Start();
            process.StandardInput.WriteLine(WorkerCommand.Request(matrix, cells[i].RunId, Path.Combine(root, cells[i].RunId)));
            process.StandardInput.Flush();
            while (process.StandardOutput.ReadLine() is { } line)
            {
                if (i == 1 && double.IsNaN(second) && IsStep(line)) second = clock.Elapsed.TotalSeconds;
                if (IsEnded(line)) break;
            }
        }
        process.StandardInput.Close();
        while (process.StandardOutput.ReadLine() is not null) { }
        process.WaitForExit();
        if (double.IsNaN(second)) throw new InvalidOperationException($"worker failed ({process.ExitCode}): {stderr.Result}");
        return (second, stderr.Result);
    }
}
