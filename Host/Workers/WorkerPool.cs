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
/// Supervises worker processes (<c>harness worker</c>): at most <see cref="HarnessOptions.Workers"/> at once; parses
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

    /// <summary>Waits for a free slot, then runs the cell in a worker. <paramref name="stopping"/> = the host shuts
    /// down (the run ends as interrupted); <paramref name="cancel"/> = the user cancelled the run (cancelled).</summary>
    public async Task<RunManifest> RunAsync(WorkerRequest request, IRunProgress sink, CancellationToken stopping, CancellationToken cancel)
    {
        using var either = CancellationTokenSource.CreateLinkedTokenSource(stopping, cancel);
        await _slots.WaitAsync(either.Token);
        try { return await RunNowAsync(request, sink, stopping, cancel); }
        finally { _slots.Release(); }
    }

    private async Task<RunManifest> RunNowAsync(WorkerRequest request, IRunProgress sink, CancellationToken stopping, CancellationToken cancel)
    {
        var o = options.Value;
        var cell = request.Cell;
        Directory.CreateDirectory(request.RunDirectory);
        var psi = new ProcessStartInfo(Executable())
        {
            RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
            StandardOutputEncoding = Encoding.UTF8, StandardErrorEncoding = Encoding.UTF8,
        };
        foreach (var a in new[] { "worker", "--matrix", Path.GetFullPath(request.MatrixFile), "--run-id", cell.RunId,
                     "--run-dir", Path.GetFullPath(request.RunDirectory), "--plugins", Path.GetFullPath(o.PluginDirectory),
                     "--threads", ThreadsPerWorker.ToString(), "--exit-on-stdin-eof" })
            psi.ArgumentList.Add(a);

        var tail = new StringBuilder();
        using var process = new Process { StartInfo = psi };
        process.Start();
        logger.LogInformation("run {Run} ({Label}) started in worker pid {Pid}", cell.RunId, cell.Label, process.Id);
        var stdout = Task.Run(async () =>
        {
            while (await process.StandardOutput.ReadLineAsync() is { } line)
            {
                try { WorkerProtocol.Dispatch(line, cell, sink); }
                catch (Exception e) { logger.LogWarning("run {Run}: bad progress line ignored ({Message})", cell.RunId, e.Message); }
            }
        });
        var stderr = Task.Run(async () =>
        {
            while (await process.StandardError.ReadLineAsync() is { } line)
            {
                lock (tail)
                {
                    tail.AppendLine(line);
                    if (tail.Length > 2 * StderrTailBytes) tail.Remove(0, tail.Length - StderrTailBytes);
                }
                // The worker's own log lines keep their level (e.g. "resuming from the checkpoint", a probe that
                // failed); anything else a plugin prints goes to debug.
                var level = line.Contains(" fail: ") || line.Contains(" crit: ") ? LogLevel.Error
                    : line.Contains(" warn: ") ? LogLevel.Warning : line.Contains(" info: ") ? LogLevel.Information : LogLevel.Debug;
                logger.Log(level, "[worker {Run}] {Line}", cell.RunId, line);
            }
        });

        string? killedFor = null;
        bool terminated = false;
        var clock = Stopwatch.StartNew();
        var termSent = TimeSpan.Zero;
        while (!process.HasExited)
        {
            await Task.WhenAny(process.WaitForExitAsync(), Task.Delay(500));
            if (process.HasExited) break;
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
        await process.WaitForExitAsync(CancellationToken.None);
        await Task.WhenAll(stdout, stderr);
        int code = process.ExitCode;
        string tailText;
        lock (tail) tailText = tail.Length > StderrTailBytes ? tail.ToString(tail.Length - StderrTailBytes, StderrTailBytes) : tail.ToString();

        string manifestPath = Path.Combine(request.RunDirectory, "manifest.json");
        var manifest = RunManifest.TryLoad(manifestPath) ?? NewManifest(cell);
        bool clean = killedFor is null && (code == 0 || code == WorkerCommand.ExitInterrupted) && manifest.Status != RunStatus.Running;
        if (!clean)
        {
            File.WriteAllText(Path.Combine(request.RunDirectory, StderrFile), tailText);
            if (stopping.IsCancellationRequested && !cancel.IsCancellationRequested)
            {
                manifest.Status = RunStatus.Interrupted;
                manifest.Reason = killedFor ?? $"the worker ended with {Posix.DescribeExit(code)} during shutdown; the run restarts on the next start";
            }
            else
            {
                manifest.Status = RunStatus.Failed;
                string why = killedFor ?? $"worker process ended by {Posix.DescribeExit(code)} (exit code {code})";
                string last = LastLines(tailText, 3);
                manifest.Reason = last.Length > 0 ? $"{why}; stderr tail: {last}" : why;
            }
            manifest.FinishedUtc = DateTime.UtcNow;
            if (manifest.WallSeconds == 0) manifest.WallSeconds = clock.Elapsed.TotalSeconds;
            manifest.Save(manifestPath);
        }
        if (cancel.IsCancellationRequested && !stopping.IsCancellationRequested && !manifest.IsFinished)
        {
            manifest.Status = RunStatus.Cancelled;
            manifest.Reason = $"cancelled at step {manifest.StepsCompleted}";
            manifest.Save(manifestPath);
        }
        logger.Log(manifest.Status == RunStatus.Failed ? LogLevel.Warning : LogLevel.Information,
            "run {Run} ended: {Status} ({Reason})", cell.RunId, manifest.Status.ToString().ToLowerInvariant(), manifest.Reason);
        sink.RunEnded(cell, manifest);
        return manifest;
    }

    private static string LastLines(string text, int n) =>
        string.Join(" | ", text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).TakeLast(n));

    /// <summary>A manifest for a run whose worker died before writing one.</summary>
    public static RunManifest NewManifest(RunCell cell) => new()
    {
        RunId = cell.RunId, Matrix = cell.MatrixName, Label = cell.Label, Optimizer = cell.Optimizer, Model = cell.Model,
        InitSeed = cell.InitSeed, DataSeed = cell.DataSeed, Configuration = cell.Configuration(),
    };
}
