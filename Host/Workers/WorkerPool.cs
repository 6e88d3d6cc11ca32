using System.Diagnostics;
using System.Text;
using Harness.Host.Matrix;
using Harness.Host.Output;
using Harness.Host.Training;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Harness.Host.Workers;

/// <summary>What one worker should execute.</summary>
/// <param name="MatrixFile">the matrix file the worker parses (for the service: results/&lt;matrix&gt;/matrix.yaml)</param>
public sealed record WorkerRequest(RunCell Cell, string MatrixFile, string RunDirectory);

/// <summary>
/// Supervises worker processes (<c>harness worker --serve</c>, reused for the runs of one <see cref="WorkerSession"/>
/// while they end cleanly): at most <see cref="HarnessOptions.Workers"/> runs at once; parses
/// their progress lines into <see cref="IRunProgress"/> sinks; enforces the wall-time and resident-memory limits;
/// on SIGTERM of the host or cancellation of the run sends SIGTERM (the worker flushes and marks the run
/// interrupted) and kills after the grace period. A worker that dies abnormally (native abort, segfault, killed)
/// fails only its run: the manifest gets status <c>failed</c> with the exit reason, and the last 4 KiB of the
/// worker's stderr go to &lt;run&gt;/worker-stderr.txt and the end of the reason.
/// </summary>
public sealed class WorkerPool(IOptions<HarnessOptions> options, ILogger<WorkerPool> logger)
{
    public const int StderrTailBytes = 4096;
    public const string StderrFile = "worker-stderr.txt";
    private readonly SemaphoreSlim _slots = new(Math.Max(1, options.Value.Workers));

    /// <summary>The executable workers are started from: this process when it is the harness host, else the
    /// <c>harness</c> executable next to the host assembly (e.g. when the host is loaded by a test runner).</summary>
    public static string Executable()
    {
        var self = Environment.ProcessPath;
        if (self is not null && Path.GetFileNameWithoutExtension(self) == "harness") return self;
        return Path.Combine(Path.GetDirectoryName(typeof(WorkerPool).Assembly.Location)!, OperatingSystem.IsWindows() ? "harness.exe" : "harness");
    }

    /// <summary>libtorch threads per worker: --threads when set, else <see cref="AutoThreads()"/> shared among the workers.</summary>
    public int ThreadsPerWorker => options.Value.Threads > 0 ? options.Value.Threads : AutoThreads(Environment.ProcessorCount, LoadAverage(), options.Value.Workers);

    /// <summary>The default thread count: the cores not already busy (cores − the 1-minute load average, rounded),
    /// at least 1, divided among <paramref name="workers"/>. libtorch's OpenMP threads spin while they wait for each
    /// other, so more threads than free cores collapse throughput (on 2 cores shared with other jobs, 2 threads ran the
    /// demo 10–20× slower than 1); on an idle machine this is all cores.</summary>
    public static int AutoThreads(int cores, double loadAverage, int workers)
    {
        int free = Math.Clamp(cores - (int)Math.Round(double.IsFinite(loadAverage) ? Math.Max(0, loadAverage) : 0), 1, Math.Max(1, cores));
        return Math.Max(1, free / Math.Max(1, workers));
    }

    /// <summary><see cref="AutoThreads(int, double, int)"/> for one process on this machine now.</summary>
    public static int AutoThreads() => AutoThreads(Environment.ProcessorCount, LoadAverage(), 1);

    /// <summary>The 1-minute load average (/proc/loadavg; 0 where there is none).</summary>
    public static double LoadAverage()
    {
        try
        {
            var first = File.ReadAllText("/proc/loadavg").Split(' ')[0];
            return double.Parse(first, System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException) { return 0; }
    }

    /// <summary>Waits for a free slot, then runs the cell in a new worker that ends with it. <paramref name="stopping"/>
    /// = the host shuts down (the run ends as interrupted); <paramref name="cancel"/> = the user cancelled the run (cancelled).</summary>
    public async Task<RunManifest> RunAsync(WorkerRequest request, IRunProgress sink, CancellationToken stopping, CancellationToken cancel)
    {
        using var session = new WorkerSession(runs: 1);
        return await RunAsync(request, sink, stopping, cancel, session);
    }

    /// <summary>Like <see cref="RunAsync(WorkerRequest, IRunProgress, CancellationToken, CancellationToken)"/>, in a
    /// worker of <paramref name="session"/> that has finished an earlier run of the same matrix cleanly (else in a new
    /// one, <c>harness worker --serve</c>), so that short runs do not each pay the worker start-up. A worker that
    /// crashes, is killed or interrupted fails or ends only its run and is not reused: the next run gets a fresh one.</summary>
    public async Task<RunManifest> RunAsync(WorkerRequest request, IRunProgress sink, CancellationToken stopping, CancellationToken cancel, WorkerSession session)
    {
        using var either = CancellationTokenSource.CreateLinkedTokenSource(stopping, cancel);
        try { await _slots.WaitAsync(either.Token); }
        catch (OperationCanceledException) { session.RunSkipped(); throw; }
        try { return await RunInSessionAsync(request, sink, stopping, cancel, session); }
        finally { _slots.Release(); }
    }

    private async Task<RunManifest> RunInSessionAsync(WorkerRequest request, IRunProgress sink, CancellationToken stopping, CancellationToken cancel, WorkerSession session)
    {
        var cell = request.Cell;
        Directory.CreateDirectory(request.RunDirectory);
        session.RunStarting();
        var worker = session.TakeIdle();
        bool reused = worker is not null;
        string requestLine = WorkerCommand.Request(Path.GetFullPath(request.MatrixFile), cell.RunId, Path.GetFullPath(request.RunDirectory));
        if (worker is not null && !TrySend(worker, cell, sink, requestLine))
        {
            // It ended after its last run (between the check and the request): this run gets a fresh one.
            worker.Dispose();
            worker = null;
            reused = false;
        }
        if (worker is null)
        {
            worker = StartWorker();
            if (!TrySend(worker, cell, sink, requestLine)) logger.LogWarning("run {Run}: the new worker pid {Pid} did not take the request", cell.RunId, worker.Process.Id);
        }
        logger.LogInformation("run {Run} ({Label}) started in {How} worker pid {Pid}", cell.RunId, cell.Label, reused ? "reused" : "new", worker.Process.Id);

        var clock = Stopwatch.StartNew();
        var (killedFor, terminated) = await SuperviseAsync(worker, clock, stopping, cancel);
        var process = worker.Process;
        bool ended = worker.Ended.IsCompleted;
        bool alive = !process.HasExited;
        int code = 0;
        if (!ended || !alive || terminated || killedFor is not null)
        {
            // Not reusable: let it finish (an interrupted run exits by itself) and collect its exit code and output.
            if (alive && killedFor is null && !terminated) worker.CloseInput();
            await worker.ExitAsync();
            code = process.ExitCode;
        }
        string tailText = worker.Tail();
        string manifestPath = Path.Combine(request.RunDirectory, "manifest.json");
        var manifest = RunManifest.TryLoad(manifestPath) ?? NewManifest(cell);
        bool clean = killedFor is null && ended && (code == 0 || code == WorkerCommand.ExitInterrupted) && manifest.Status != RunStatus.Running;
        if (clean && alive && !terminated && !process.HasExited) session.ReturnIdle(worker);
        else worker.Dispose();
        return Finish(request, sink, stopping, cancel, manifest, manifestPath, clean, killedFor, code, tailText, clock);
    }

    private WorkerProcess StartWorker()
    {
        var psi = new ProcessStartInfo(Executable())
        {
            RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8, StandardErrorEncoding = Encoding.UTF8,
        };
        foreach (var a in new[] { "worker", "--serve", "--plugins", Path.GetFullPath(options.Value.PluginDirectory), "--threads", ThreadsPerWorker.ToString() })
            psi.ArgumentList.Add(a);
        WorkerEnvironment(psi);
        return WorkerProcess.Start(psi, logger);
    }

    private static bool TrySend(WorkerProcess worker, RunCell cell, IRunProgress sink, string requestLine)
    {
        worker.Begin(cell, sink);
        try { worker.Send(requestLine); return true; }
        catch (IOException) { return false; }
    }

    /// <summary>Waits until the worker ends the run or exits, enforcing the limits: SIGTERM when the host stops or the
    /// run is cancelled (killed after the grace period), killed past the wall-time or resident-memory limit.</summary>
    /// <returns>why it was killed (null when it was not), and whether SIGTERM was sent</returns>
    private async Task<(string? KilledFor, bool Terminated)> SuperviseAsync(WorkerProcess worker, Stopwatch clock, CancellationToken stopping, CancellationToken cancel)
    {
        var o = options.Value;
        var process = worker.Process;
        string? killedFor = null;
        bool terminated = false;
        var termSent = TimeSpan.Zero;
        while (!process.HasExited && !worker.Ended.IsCompleted)
        {
            await Task.WhenAny(process.WaitForExitAsync(), worker.Ended, Task.Delay(500));
            if (process.HasExited || worker.Ended.IsCompleted) break;
            if ((stopping.IsCancellationRequested || cancel.IsCancellationRequested) && !terminated)
            {
                terminated = true;
                termSent = clock.Elapsed;
                Posix.Terminate(process.Id);
            }
            else if (terminated && clock.Elapsed - termSent > TimeSpan.FromSeconds(o.ShutdownGraceSeconds))
            {
                killedFor ??= $"the worker did not stop within the grace period of {o.ShutdownGraceSeconds:G} s after SIGTERM and was killed";
                process.Kill(entireProcessTree: true);
            }
            else if (o.RunTimeLimitSeconds > 0 && clock.Elapsed.TotalSeconds > o.RunTimeLimitSeconds && killedFor is null)
            {
                killedFor = $"time limit: the run exceeded {o.RunTimeLimitSeconds:G} s of wall time and its worker was killed";
                process.Kill(entireProcessTree: true);
            }
            else if (o.RunMemoryLimitMb > 0 && killedFor is null && Posix.ResidentBytes(process.Id) is { } rss && rss > o.RunMemoryLimitMb << 20)
            {
                killedFor = $"memory limit: the worker's resident memory {rss >> 20} MiB exceeded {o.RunMemoryLimitMb} MiB and it was killed";
                process.Kill(entireProcessTree: true);
            }
        }
        return (killedFor, terminated);
    }

    /// <summary>The manifest of a run whose worker ended or finished it: failed with the exit reason and the stderr
    /// tail unless it ended cleanly, interrupted during shutdown, cancelled when the user cancelled it.</summary>
    private RunManifest Finish(WorkerRequest request, IRunProgress sink, CancellationToken stopping, CancellationToken cancel, RunManifest manifest,
        string manifestPath, bool clean, string? killedFor, int code, string tailText, Stopwatch clock)
    {
        var cell = request.Cell;
        if (!clean)
        {
            // I/O here (disk full, read-only results) must never take the host down: the run still ends with its reason.
            TryWrite(() => File.WriteAllText(Path.Combine(request.RunDirectory, StderrFile), tailText), StderrFile, cell);
            if (stopping.IsCancellationRequested && !cancel.IsCancellationRequested)
            {
                manifest.Status = RunStatus.Interrupted;
                manifest.Reason = killedFor ?? $"the worker ended with {Posix.DescribeExit(code)} during shutdown; the run restarts on the next start";
            }
            else
            {
                manifest.Status = RunStatus.Failed;
                string why = killedFor ?? $"worker process ended by {Posix.DescribeExit(code)} (exit code {code})";
                // An unhandled .NET exception ends with stack frames: keep its message, not the last frames.
                string last = UnhandledException(tailText) ?? LastLines(tailText, 3);
                manifest.Reason = last.Length > 0 ? $"{why}; stderr tail: {last}" : why;
            }
            manifest.FinishedUtc = DateTime.UtcNow;
            if (manifest.WallSeconds == 0) manifest.WallSeconds = clock.Elapsed.TotalSeconds;
            TryWrite(() => manifest.Save(manifestPath), "manifest.json", cell);
        }
        if (cancel.IsCancellationRequested && !stopping.IsCancellationRequested && !manifest.IsFinished)
        {
            manifest.Status = RunStatus.Cancelled;
            manifest.Reason = $"cancelled at step {manifest.StepsCompleted}";
            TryWrite(() => manifest.Save(manifestPath), "manifest.json", cell);
        }
        logger.Log(manifest.Status == RunStatus.Failed ? LogLevel.Warning : LogLevel.Information,
            "run {Run} ended: {Status} ({Reason})", cell.RunId, manifest.Status.ToString().ToLowerInvariant(), manifest.Reason);
        sink.RunEnded(cell, manifest);
        return manifest;
    }

    /// <summary>"Type: message" of the last unhandled-exception report in a worker's stderr, or null.</summary>
    public static string? UnhandledException(string stderr)
    {
        // The runtime writes "Unhandled exception. ", System.CommandLine's handler "Unhandled exception: ".
        const int markerLength = 21;
        int at = Math.Max(stderr.LastIndexOf("Unhandled exception. ", StringComparison.Ordinal), stderr.LastIndexOf("Unhandled exception: ", StringComparison.Ordinal));
        if (at < 0) return null;
        var lines = stderr[(at + markerLength)..].Split('\n').Select(l => l.TrimEnd('\r'))
            .TakeWhile(l => !l.TrimStart().StartsWith("at ", StringComparison.Ordinal) && !l.StartsWith("   ---", StringComparison.Ordinal));
        return string.Join(" ", lines.Select(l => l.Trim()).Where(l => l.Length > 0));
    }

    /// <summary>MKL's own memory manager keeps the packing buffers of large matrix products; without it a worker's
    /// peak RSS at width 1000 is 541 instead of 576 MB (set unless the user set it).</summary>
    public static void WorkerEnvironment(ProcessStartInfo psi)
    {
        if (Environment.GetEnvironmentVariable("MKL_DISABLE_FAST_MM") is null) psi.Environment["MKL_DISABLE_FAST_MM"] = "1";
    }

    internal static string LastLines(string text, int n) =>
        string.Join(" | ", text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).TakeLast(n));

    /// <summary>A manifest for a run whose worker died before writing one.</summary>
    public static RunManifest NewManifest(RunCell cell) => new()
    {
        RunId = cell.RunId, Matrix = cell.MatrixName, Label = cell.Label, Optimizer = cell.Optimizer, Model = cell.Model,
        InitSeed = cell.InitSeed, DataSeed = cell.DataSeed, Configuration = cell.Configuration(),
    };

    private void TryWrite(Action write, string what, RunCell cell)
    {
        try { write(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            logger.LogWarning("run {Run}: could not write {File}: {Message}", cell.RunId, what, e.Message);
        }
    }
}

/// <summary>Idle workers (<c>harness worker --serve</c>) kept for the next runs of one matrix; disposing the session
/// ends them (end of file on their stdin). Given the number of runs, a worker is ended as soon as no run that has
/// not started is left for it, instead of waiting idle until the matrix ends.</summary>
/// <param name="runs">how many runs the session will be asked for (null: unknown, keep idle workers until disposed)</param>
public sealed class WorkerSession(int? runs = null) : IDisposable
{
    private readonly Stack<WorkerProcess> _idle = new();
    private int _notStarted = runs ?? int.MaxValue;

    internal void RunStarting() { lock (_idle) if (_notStarted != int.MaxValue) _notStarted--; }

    /// <summary>A run of the session that will not start (cancelled while it waited for a slot).</summary>
    internal void RunSkipped() => RunStarting();

    internal WorkerProcess? TakeIdle()
    {
        lock (_idle)
            while (_idle.TryPop(out var w))
            {
                if (!w.Process.HasExited) return w;
                w.Dispose();
            }
        return null;
    }

    internal void ReturnIdle(WorkerProcess worker)
    {
        lock (_idle)
            if (_idle.Count < _notStarted) { _idle.Push(worker); return; }
        worker.Dispose();
    }

    /// <summary>How many workers are waiting for a run.</summary>
    public int IdleCount { get { lock (_idle) return _idle.Count; } }

    public void Dispose()
    {
        List<WorkerProcess> all;
        lock (_idle) { all = _idle.ToList(); _idle.Clear(); }
        foreach (var w in all) w.Dispose();
    }
}

/// <summary>A <c>harness worker --serve</c> process: its stdout events go to the sink of the run in progress, its
/// stderr to the log and to a tail kept per run; <see cref="Ended"/> completes with the run's <c>ended</c> event.</summary>
internal sealed class WorkerProcess : IDisposable
{
    private readonly ILogger _logger;
    private readonly StringBuilder _tail = new();
    private readonly object _lock = new();
    private RunCell? _cell;
    private IRunProgress? _sink;
    private TaskCompletionSource _ended = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task _stdout = Task.CompletedTask, _stderr = Task.CompletedTask;

    public Process Process { get; }
    public Task Ended { get { lock (_lock) return _ended.Task; } }

    private WorkerProcess(Process process, ILogger logger) { Process = process; _logger = logger; }

    public static WorkerProcess Start(ProcessStartInfo psi, ILogger logger)
    {
        var w = new WorkerProcess(new Process { StartInfo = psi }, logger);
        w.Process.Start();
        w._stdout = Task.Run(w.ReadStdout);
        w._stderr = Task.Run(w.ReadStderr);
        return w;
    }

    public void Begin(RunCell cell, IRunProgress sink)
    {
        lock (_lock)
        {
            _cell = cell;
            _sink = sink;
            _ended = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _tail.Clear();
        }
    }

    public void Send(string requestLine)
    {
        Process.StandardInput.WriteLine(requestLine);
        Process.StandardInput.Flush();
    }

    public void CloseInput()
    {
        try { Process.StandardInput.Close(); } catch (IOException) { } catch (InvalidOperationException) { }
    }

    public async Task ExitAsync()
    {
        await Process.WaitForExitAsync(CancellationToken.None);
        await Task.WhenAll(_stdout, _stderr);
    }

    public string Tail()
    {
        lock (_lock) return _tail.Length > WorkerPool.StderrTailBytes ? _tail.ToString(_tail.Length - WorkerPool.StderrTailBytes, WorkerPool.StderrTailBytes) : _tail.ToString();
    }

    private async Task ReadStdout()
    {
        while (await Process.StandardOutput.ReadLineAsync() is { } line)
        {
            RunCell? cell; IRunProgress? sink; TaskCompletionSource ended;
            lock (_lock) { cell = _cell; sink = _sink; ended = _ended; }
            if (cell is null || sink is null) continue;
            try { WorkerProtocol.Dispatch(line, cell, sink); }
            catch (Exception e) { _logger.LogWarning("run {Run}: bad progress line ignored ({Message})", cell.RunId, e.Message); }
            if (line.StartsWith(WorkerProtocol.Prefix + "{\"e\":\"ended\"", StringComparison.Ordinal)) ended.TrySetResult();
        }
    }

    private async Task ReadStderr()
    {
        while (await Process.StandardError.ReadLineAsync() is { } line)
        {
            string run;
            lock (_lock)
            {
                _tail.AppendLine(line);
                if (_tail.Length > 2 * WorkerPool.StderrTailBytes) _tail.Remove(0, _tail.Length - WorkerPool.StderrTailBytes);
                run = _cell?.RunId ?? "-";
            }
            var level = line.Contains(" fail: ") || line.Contains(" crit: ") ? LogLevel.Error
                : line.Contains(" warn: ") ? LogLevel.Warning : line.Contains(" info: ") ? LogLevel.Information : LogLevel.Debug;
            _logger.Log(level, "[worker {Run}] {Line}", run, line);
        }
    }

    /// <summary>Ends the worker (end of file on its stdin; killed if it has not exited 10 s later) after its last
    /// output lines are read.</summary>
    public void Dispose()
    {
        if (!Process.HasExited)
        {
            CloseInput();
            if (!Process.WaitForExit(TimeSpan.FromSeconds(10))) Process.Kill(entireProcessTree: true);
        }
        try { Task.WhenAll(_stdout, _stderr).Wait(TimeSpan.FromSeconds(5)); } catch (AggregateException) { }
        Process.Dispose();
    }
}
