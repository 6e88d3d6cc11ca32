using System.CommandLine;
using Harness.Host.Matrix;
using Harness.Host.Output;
using Harness.Host.Plugins;
using Harness.Host.Telemetry;
using Harness.Host.Training;
using Microsoft.Extensions.Logging;

namespace Harness.Host.Workers;

/// <summary>
/// <c>harness worker</c>: executes one cell of a matrix file in this process with <see cref="RunExecutor"/> and
/// reports progress as <see cref="WorkerProtocol"/> lines on stdout (logs go to stderr). Started by the supervisor
/// (<see cref="WorkerPool"/>); it loads the plugin folder itself, so a plugin replaced after it started does not
/// affect it, and a new run sees the new file. SIGTERM/SIGINT end the run as <c>interrupted</c> after flushing its
/// trace. When stdin reaches end of file (the supervising host died), the worker kills itself at once so that a
/// restarted host can take the run over without two processes writing one run folder.
/// </summary>
public static class WorkerCommand
{
    public const int ExitInterrupted = 130;
    public const int ExitBadArguments = 2;

    public static Command Create()
    {
        var matrix = new Option<string>("--matrix") { Description = "matrix file", Required = true };
        var runId = new Option<string>("--run-id") { Description = "the run id of the cell to execute", Required = true };
        var runDir = new Option<string>("--run-dir") { Description = "run folder (manifest.json, trace.parquet)", Required = true };
        var plugins = new Option<string>("--plugins") { Description = "plugin folder", Required = true };
        var threads = new Option<int>("--threads") { Description = "libtorch threads (0 = the cores not busy, see WorkerPool.AutoThreads)" };
        var watchStdin = new Option<bool>("--exit-on-stdin-eof") { Description = "kill this process when stdin closes (the supervisor died)" };
        var cmd = new Command("worker", "(internal) Execute one run of a matrix; used by serve and run.") { matrix, runId, runDir, plugins, threads, watchStdin };
        cmd.Hidden = true;
        cmd.SetAction(p => Execute(p.GetValue(matrix)!, p.GetValue(runId)!, p.GetValue(runDir)!, p.GetValue(plugins)!,
            p.GetValue(threads), p.GetValue(watchStdin)));
        return cmd;
    }

    public static int Execute(string matrixFile, string runId, string runDir, string pluginDir, int threads, bool watchStdin)
    {
        if (watchStdin)
            new Thread(() =>
            {
                try { while (Console.In.Read() >= 0) { } } catch (IOException) { }
                Console.Error.WriteLine("harness worker: the supervising host closed stdin (it exited); stopping");
                System.Diagnostics.Process.GetCurrentProcess().Kill();
            }) { IsBackground = true, Name = "stdin-watch" }.Start();

        using var cts = new CancellationTokenSource();
        using var term = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, c => { c.Cancel = true; cts.Cancel(); });
        using var intr = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGINT, c => { c.Cancel = true; cts.Cancel(); });

        using var lf = LoggerFactory.Create(b => b
            .AddSimpleConsole(c => { c.SingleLine = true; c.TimestampFormat = "HH:mm:ss "; })
            .SetMinimumLevel(LogLevel.Information)
            .Services.Configure<Microsoft.Extensions.Logging.Console.ConsoleLoggerOptions>(c => c.LogToStandardErrorThreshold = LogLevel.Trace));
        var log = lf.CreateLogger("worker");
        var startup = new StartupClock();
        Posix.RetainFreedMemory();
        TorchSharp.torch.set_num_threads(threads > 0 ? threads : WorkerPool.AutoThreads());
        startup.Mark("libtorch");
        var catalog = PluginCatalog.Load(pluginDir, log);
        startup.Mark("plugins");
        MatrixSpec spec;
        try { spec = MatrixParser.ParseFile(matrixFile, catalog); }
        catch (MatrixValidationException e) { Console.Error.WriteLine(e.Message); return ExitBadArguments; }
        var cell = MatrixExpander.Expand(spec).FirstOrDefault(c => c.RunId == runId);
        if (cell is null) { Console.Error.WriteLine($"error: run {runId} is not a cell of {matrixFile}"); return ExitBadArguments; }
        startup.Mark("matrix");
        using var metrics = new HarnessMetrics(); // not exported: the host turns this worker's events into metrics
        using var events = new JsonLinesProgress { FirstStep = () => startup.Mark("model, data and first step") };
        var manifest = new RunExecutor(catalog, metrics, log).Execute(cell, runDir, events, cts.Token);
        log.LogInformation("run {Run}: start-up {Startup}", runId, startup);
        log.LogInformation("run {Run}: {Resources}", runId, Resources.Current());
        return manifest.Status == RunStatus.Interrupted ? ExitInterrupted : 0;
    }

    /// <summary>Parses the resources line a worker logs at its end (null when there is none).</summary>
    public static Resources? ParseResources(string stderr)
    {
        foreach (var line in stderr.Split('\n').Reverse())
            if (Resources.TryParse(line) is { } r) return r;
        return null;
    }
}

/// <summary>Seconds since this process started (the kernel's start time) at each phase of a worker's start-up.</summary>
internal sealed class StartupClock
{
    private readonly DateTime _start = System.Diagnostics.Process.GetCurrentProcess().StartTime;
    private readonly List<(string phase, double seconds)> _marks = new();

    public StartupClock() => Mark("runtime");

    public void Mark(string phase)
    {
        lock (_marks) if (_marks.All(m => m.phase != phase)) _marks.Add((phase, (DateTime.Now - _start).TotalSeconds));
    }

    /// <summary>"runtime 0.21 s, libtorch +0.30 s, …, total 1.10 s" (each phase's own duration).</summary>
    public override string ToString()
    {
        lock (_marks)
        {
            var parts = _marks.Select((m, i) => string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"{m.phase} {(i == 0 ? m.seconds : m.seconds - _marks[i - 1].seconds):F2} s"));
            return string.Join(", ", parts) + string.Create(System.Globalization.CultureInfo.InvariantCulture, $" (first step {_marks[^1].seconds:F2} s after process start)");
        }
    }
}

/// <summary>Peak resident memory and page faults of this process (from /proc/self/status and /proc/self/stat).</summary>
public sealed record Resources(long PeakRss, long MinorFaults, long MajorFaults)
{
    private const string Tag = "resources: peak_rss_bytes=";

    public static Resources Current()
    {
        long hwm = 0;
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                hwm = long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
        // Fields after the parenthesised command name: state(3) ppid … minflt(10) cminflt(11) majflt(12).
        var stat = File.ReadAllText("/proc/self/stat");
        var f = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return new Resources(hwm, long.Parse(f[7]), long.Parse(f[9]));
    }

    public override string ToString() => $"{Tag}{PeakRss} minor_faults={MinorFaults} major_faults={MajorFaults}";

    public static Resources? TryParse(string line)
    {
        int i = line.IndexOf(Tag, StringComparison.Ordinal);
        if (i < 0) return null;
        var kv = line[(i + "resources: ".Length)..].Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .Select(p => p.Split('=')).Where(p => p.Length == 2).ToDictionary(p => p[0], p => long.Parse(p[1]));
        return new Resources(kv["peak_rss_bytes"], kv["minor_faults"], kv["major_faults"]);
    }
}
