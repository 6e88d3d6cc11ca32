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
        var matrix = new Option<string>("--matrix") { Description = "matrix file" };
        var runId = new Option<string>("--run-id") { Description = "the run id of the cell to execute" };
        var runDir = new Option<string>("--run-dir") { Description = "run folder (manifest.json, trace.parquet)" };
        var plugins = new Option<string>("--plugins") { Description = "plugin folder", Required = true };
        var threads = new Option<int>("--threads") { Description = "libtorch threads (0 = the cores not busy, see WorkerPool.AutoThreads)" };
        var watchStdin = new Option<bool>("--exit-on-stdin-eof") { Description = "kill this process when stdin closes (the supervisor died)" };
        var serve = new Option<bool>("--serve") { Description = "execute runs requested on stdin one after another (one JSON line each: matrix, run_id, run_dir); end at end of file" };
        var cmd = new Command("worker", "(internal) Execute one run of a matrix, or several in turn (--serve); used by serve and run.") { matrix, runId, runDir, plugins, threads, watchStdin, serve };
        cmd.Hidden = true;
        cmd.SetAction(p =>
        {
            if (p.GetValue(serve)) return Serve(p.GetValue(plugins)!, p.GetValue(threads));
            if (p.GetValue(matrix) is not { } m || p.GetValue(runId) is not { } id || p.GetValue(runDir) is not { } dir)
            {
                Console.Error.WriteLine("error: harness worker needs --matrix, --run-id and --run-dir (or --serve)");
                return ExitBadArguments;
            }
            return Execute(m, id, dir, p.GetValue(plugins)!, p.GetValue(threads), p.GetValue(watchStdin));
        });
        return cmd;
    }

    /// <summary>A run request of <c>harness worker --serve</c> (one JSON line on stdin).</summary>
    public static string Request(string matrixFile, string runId, string runDir) =>
        new System.Text.Json.Nodes.JsonObject { ["matrix"] = matrixFile, ["run_id"] = runId, ["run_dir"] = runDir }.ToJsonString();

    /// <summary>
    /// <c>harness worker --serve</c>: one process for several runs of a matrix, so that they share the start-up
    /// (runtime, libtorch, plugins). Runs are requested on stdin one line at a time and executed in turn; each ends
    /// with its <c>ended</c> event. End of file between runs ends the process normally; end of file during a run
    /// (the supervisor died) kills it at once, as <c>--exit-on-stdin-eof</c> does. SIGTERM/SIGINT interrupt the current
    /// run and end the process.
    /// </summary>
    public static int Serve(string pluginDir, int threads)
    {
        var startup = new StartupClock();
        Posix.RetainFreedMemory();
        var requests = new System.Collections.Concurrent.BlockingCollection<string>();
        int busy = 0;
        new Thread(() =>
        {
            try { while (Console.In.ReadLine() is { } line) if (line.Length > 0) requests.Add(line); } catch (IOException) { }
            requests.CompleteAdding();
            if (Volatile.Read(ref busy) == 1)
            {
                Console.Error.WriteLine("harness worker: the supervising host closed stdin during a run (it exited); stopping");
                System.Diagnostics.Process.GetCurrentProcess().Kill();
            }
        }) { IsBackground = true, Name = "stdin-requests" }.Start();

        using var cts = new CancellationTokenSource();
        using var term = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, c => { c.Cancel = true; cts.Cancel(); });
        using var intr = System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGINT, c => { c.Cancel = true; cts.Cancel(); });
        using var lf = Logging();
        var log = lf.CreateLogger("worker");
        startup.Mark("logging");
        TorchSharp.torch.set_num_threads(threads > 0 ? threads : WorkerPool.AutoThreads());
        startup.Mark("libtorch");
        var catalog = PluginCatalog.Load(pluginDir, log);
        startup.Mark("plugins");
        using var metrics = new HarnessMetrics();
        int runs = 0;
        try
        {
            foreach (var line in requests.GetConsumingEnumerable(cts.Token))
            {
                if (requests.IsAddingCompleted) break;   // the supervisor is gone: start nothing more
                Volatile.Write(ref busy, 1);
                var clock = runs == 0 ? startup : new StartupClock(fromNow: true);
                var o = System.Text.Json.Nodes.JsonNode.Parse(line)!;
                string matrixFile = (string)o["matrix"]!, runId = (string)o["run_id"]!, runDir = (string)o["run_dir"]!;
                Resources? atFirstStep = null;
                // After its ended event the run is complete on disk: end of file on stdin then ends this worker normally.
                using (var events = new JsonLinesProgress
                       {
                           FirstStep = () => { clock.Mark("first step"); atFirstStep = Resources.Current(); },
                           Ended = () => Volatile.Write(ref busy, 0),
                       })
                {
                    RunCell? cell = null;
                    try
                    {
                        cell = MatrixExpander.Expand(MatrixParser.ParseFile(matrixFile, catalog)).FirstOrDefault(c => c.RunId == runId);
                        if (cell is null) Console.Error.WriteLine($"error: run {runId} is not a cell of {matrixFile}");
                    }
                    catch (MatrixValidationException e) { Console.Error.WriteLine(e.Message); }
                    clock.Mark("matrix");
                    if (cell is null)
                        events.RunRefused(runId, $"run {runId} of {matrixFile} could not be read");
                    else
                    {
                        var manifest = new RunExecutor(catalog, metrics, log) { Phase = clock.Mark }.Execute(cell, runDir, events, cts.Token);
                        log.LogInformation("run {Run}: start-up {Startup}", runId, clock);
                        if (atFirstStep is not null) log.LogInformation("run {Run}: at the first step {Resources}", runId, atFirstStep);
                        log.LogInformation("run {Run}: {Resources}", runId, Resources.Current());
                        if (manifest.Status == RunStatus.Interrupted) return ExitInterrupted;
                    }
                }
                runs++;
                Volatile.Write(ref busy, 0);
                if (requests.IsAddingCompleted && requests.Count == 0) break;
            }
        }
        catch (OperationCanceledException) { return ExitInterrupted; }
        return 0;
    }

    private static ILoggerFactory Logging() => LoggerFactory.Create(b => b
        .AddSimpleConsole(c => { c.SingleLine = true; c.TimestampFormat = "HH:mm:ss "; })
        .SetMinimumLevel(LogLevel.Information)
        .Services.Configure<Microsoft.Extensions.Logging.Console.ConsoleLoggerOptions>(c => c.LogToStandardErrorThreshold = LogLevel.Trace));

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

        var startup = new StartupClock();
        Posix.RetainFreedMemory();
        using var lf = Logging();
        var log = lf.CreateLogger("worker");
        startup.Mark("logging");
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
        Resources? atFirstStep = null;
        using var events = new JsonLinesProgress { FirstStep = () => { startup.Mark("first step"); atFirstStep = Resources.Current(); } };
        var manifest = new RunExecutor(catalog, metrics, log) { Phase = startup.Mark }.Execute(cell, runDir, events, cts.Token);
        log.LogInformation("run {Run}: start-up {Startup}", runId, startup);
        if (atFirstStep is not null) log.LogInformation("run {Run}: at the first step {Resources}", runId, atFirstStep);
        log.LogInformation("run {Run}: {Resources}", runId, Resources.Current());
        return manifest.Status == RunStatus.Interrupted ? ExitInterrupted : 0;
    }

    /// <summary>Parses the resources line a worker logs at the end of its last run, or with
    /// <paramref name="atFirstStep"/> the one it logs for the first step (null when there is none).</summary>
    public static Resources? ParseResources(string stderr, bool atFirstStep = false)
    {
        foreach (var line in stderr.Split('\n').Reverse())
            if (line.Contains("at the first step") == atFirstStep && Resources.TryParse(line) is { } r) return r;
        return null;
    }
}

/// <summary>Seconds since this process started (the kernel's start time), or since a later run's request, at each
/// phase of a worker's start-up.</summary>
internal sealed class StartupClock
{
    private readonly DateTime _start;
    private readonly string _origin;
    private readonly List<(string phase, double seconds)> _marks = new();

    /// <param name="fromNow">measure from now (a later run of a reused worker) instead of from the process start</param>
    public StartupClock(bool fromNow = false)
    {
        _start = fromNow ? DateTime.Now : System.Diagnostics.Process.GetCurrentProcess().StartTime;
        _origin = fromNow ? "the request" : "process start";
        if (!fromNow) Mark("runtime");
    }

    public void Mark(string phase)
    {
        lock (_marks) if (_marks.All(m => m.phase != phase)) _marks.Add((phase, (DateTime.Now - _start).TotalSeconds));
    }

    /// <summary>"runtime 0.21 s, libtorch 0.30 s, … (first step 1.10 s after process start)": each phase's own duration.</summary>
    public override string ToString()
    {
        lock (_marks)
        {
            if (_marks.Count == 0) return "";
            var parts = _marks.Select((m, i) => string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"{m.phase} {(i == 0 ? m.seconds : m.seconds - _marks[i - 1].seconds):F2} s"));
            return string.Join(", ", parts) + string.Create(System.Globalization.CultureInfo.InvariantCulture, $" ({_marks[^1].phase} done {_marks[^1].seconds:F2} s after {_origin})");
        }
    }
}

/// <summary>Peak resident memory and page faults of this process (from /proc/self/status and /proc/self/stat).</summary>
/// <param name="CpuMilliseconds">CPU time of the process so far (all threads, user + system)</param>
public sealed record Resources(long PeakRss, long MinorFaults, long MajorFaults, long CpuMilliseconds = 0)
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
        long cpu = (long)System.Diagnostics.Process.GetCurrentProcess().TotalProcessorTime.TotalMilliseconds;
        return new Resources(hwm, long.Parse(f[7]), long.Parse(f[9]), cpu);
    }

    public override string ToString() => $"{Tag}{PeakRss} minor_faults={MinorFaults} major_faults={MajorFaults} cpu_ms={CpuMilliseconds}";

    public static Resources? TryParse(string line)
    {
        int i = line.IndexOf(Tag, StringComparison.Ordinal);
        if (i < 0) return null;
        var kv = line[(i + "resources: ".Length)..].Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .Select(p => p.Split('=')).Where(p => p.Length == 2).ToDictionary(p => p[0], p => long.Parse(p[1]));
        return new Resources(kv["peak_rss_bytes"], kv["minor_faults"], kv["major_faults"], kv.GetValueOrDefault("cpu_ms"));
    }
}
