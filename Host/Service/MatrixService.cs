using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Threading.Channels;
using Harness.Host.Cli;
using Harness.Host.Matrix;
using Harness.Host.Output;
using Harness.Host.Telemetry;
using Harness.Host.Training;
using Harness.Host.Workers;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Harness.Host.Service;

public enum MatrixState { Queued, Running, Completed, Cancelled, Interrupted, Failed }

/// <summary>What the service knows about one run (live values while its worker runs).</summary>
public sealed class RunInfo(string runId, string matrix, string label)
{
    public string RunId { get; } = runId;
    public string Matrix { get; } = matrix;
    public string Label { get; } = label;
    public volatile string Status = "queued";
    public long Step, Steps;
    public double Loss = double.NaN;
    public string? Reason;
    public CancellationTokenSource? Cancel;
    public volatile bool CancelRequested;
}

/// <summary>One submitted matrix: results/&lt;name&gt;/matrix.yaml (the copy every worker reads) and
/// results/&lt;name&gt;/service.json (its state, so a restarted service resumes queued and running matrices).</summary>
public sealed class MatrixJob(string name, string directory)
{
    public string Name { get; } = name;
    public string Directory { get; } = directory;
    public string MatrixFile => Path.Combine(Directory, "matrix.yaml");
    public string StateFile => Path.Combine(Directory, "service.json");
    public MatrixState State { get; set; } = MatrixState.Queued;
    public DateTime SubmittedUtc { get; set; } = DateTime.UtcNow;
    public DateTime? FinishedUtc { get; set; }
    public string? Error { get; set; }
    public CancellationTokenSource Cancel { get; } = new();
    public List<string> RunOrder { get; } = new();
    public ConcurrentDictionary<string, RunInfo> Runs { get; } = new();
    public readonly object SummaryLock = new();

    private sealed record StateDto(string Name, MatrixState State, DateTime SubmittedUtc, DateTime? FinishedUtc, string? Error);

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
    };

    public void Save()
    {
        var tmp = StateFile + ".tmp";
        try
        {
            File.WriteAllText(tmp, JsonSerializer.Serialize(new StateDto(Name, State, SubmittedUtc, FinishedUtc, Error), Json));
            File.Move(tmp, StateFile, overwrite: true);
        }
        catch (IOException)
        {
            try { File.Delete(tmp); } catch (IOException) { }
            throw;
        }
    }

    public static MatrixJob? TryLoad(string directory)
    {
        try
        {
            var dto = JsonSerializer.Deserialize<StateDto>(File.ReadAllText(Path.Combine(directory, "service.json")), Json);
            if (dto is null) return null;
            return new MatrixJob(dto.Name, directory) { State = dto.State, SubmittedUtc = dto.SubmittedUtc, FinishedUtc = dto.FinishedUtc, Error = dto.Error };
        }
        catch (Exception e) when (e is IOException or JsonException) { return null; }
    }
}

public sealed class SubmissionConflictException(string message) : Exception(message);

/// <summary>
/// The service's single queue: matrices submitted through the API or dropped into the inbox are validated against
/// the current plugins, copied into the results tree and executed in submission order, their runs in worker
/// processes (<see cref="WorkerPool"/>, up to --workers runs at once, from up to --workers matrices). On start, matrices left queued, running or
/// interrupted by a previous process are resumed: finished runs are skipped by run id, others run again (an
/// unfinished run's old trace is kept in &lt;run&gt;/attempts/).
/// </summary>
public sealed class MatrixService(PluginRegistry plugins, WorkerPool pool, HarnessMetrics metrics, IOptions<HarnessOptions> options,
    ILogger<MatrixService> logger, IHostApplicationLifetime lifetime) : BackgroundService
{
    private readonly Channel<MatrixJob> _queue = Channel.CreateUnbounded<MatrixJob>();
    private readonly ConcurrentDictionary<string, MatrixJob> _jobs = new(StringComparer.Ordinal);
    private readonly object _submitLock = new();
    private readonly MetricsProgress _metricsSink = new(metrics, () => plugins.Catalog);

    public string ResultsRoot { get; } = Path.GetFullPath(options.Value.ResultsDirectory);
    /// <summary>What submitted matrices may read (paths confined to the roots) and how large they may be.</summary>
    public InputPolicy Policy { get; } = options.Value.ServicePolicy();
    public bool Running { get; private set; }
    public IEnumerable<MatrixJob> Jobs => _jobs.Values.OrderBy(j => j.SubmittedUtc);
    public MatrixJob? Job(string name) => _jobs.GetValueOrDefault(name);

    /// <summary>Validates and enqueues a matrix. Throws <see cref="MatrixValidationException"/> (located errors) or
    /// <see cref="SubmissionConflictException"/> (the matrix is already queued or running).</summary>
    public (MatrixJob Job, IReadOnlyList<RunCell> Cells) Submit(string text, string source)
    {
        MatrixSpec spec;
        using (var lease = plugins.Lease()) spec = new MatrixParser(lease.Catalog, Policy).Parse(text, source);
        if (spec.OutputRoot is not null)
            throw new MatrixValidationException([new MatrixError(Locate(text, source, "output"), "output",
                "not allowed in a matrix submitted to the service: every matrix goes to the service's results tree")]);
        var cells = MatrixExpander.Expand(spec);
        string dir = Path.GetFullPath(Path.Combine(ResultsRoot, spec.Name));
        if (!dir.StartsWith(ResultsRoot + Path.DirectorySeparatorChar, StringComparison.Ordinal))
            throw new MatrixValidationException([new MatrixError(Locate(text, source, "name"), "name", "the name leads outside the results tree")]);
        lock (_submitLock)
        {
            if (_jobs.TryGetValue(spec.Name, out var existing) && existing.State is MatrixState.Queued or MatrixState.Running)
                throw new SubmissionConflictException($"matrix '{spec.Name}' is already {existing.State.ToString().ToLowerInvariant()}; cancel it or wait until it ends");
            Directory.CreateDirectory(dir);
            var job = new MatrixJob(spec.Name, dir);
            File.WriteAllText(job.MatrixFile + ".tmp", text);
            File.Move(job.MatrixFile + ".tmp", job.MatrixFile, overwrite: true);
            Fill(job, cells);
            job.Save();
            _jobs[job.Name] = job;
            _queue.Writer.TryWrite(job);
            logger.LogInformation("matrix {Matrix} queued from {Source}: {Count} run(s)", job.Name, source, cells.Count);
            return (job, cells);
        }
    }

    private static SourceLocation Locate(string text, string source, string key)
    {
        var lines = text.Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            int col = lines[i].IndexOf(key + ":", StringComparison.Ordinal);
            if (col < 0) col = lines[i].IndexOf($"\"{key}\"", StringComparison.Ordinal);
            if (col >= 0) return new SourceLocation(source, i + 1, col + 1);
        }
        return new SourceLocation(source, 0, 0);
    }

    private static void Fill(MatrixJob job, IReadOnlyList<RunCell> cells)
    {
        foreach (var c in cells)
        {
            if (!job.Runs.ContainsKey(c.RunId)) job.RunOrder.Add(c.RunId);
            var info = job.Runs.GetOrAdd(c.RunId, _ => new RunInfo(c.RunId, c.MatrixName, c.Label));
            info.Steps = c.Matrix.Training.Steps;
            if (RunManifest.TryLoad(Path.Combine(job.Directory, c.RunId, "manifest.json")) is { } m) Apply(info, m);
        }
    }

    private static void Apply(RunInfo info, RunManifest m)
    {
        info.Status = m.Status.ToString().ToLowerInvariant();
        info.Reason = m.Reason;
        info.Step = Math.Max(info.Step, m.StepsCompleted);
        if (m.Final.TryGetValue("train_loss", out var l)) info.Loss = l;
    }

    public enum CancelOutcome { NotFound, AlreadyEnded, Requested }

    public CancelOutcome CancelMatrix(string name)
    {
        if (!_jobs.TryGetValue(name, out var job)) return CancelOutcome.NotFound;
        if (job.State is not (MatrixState.Queued or MatrixState.Running)) return CancelOutcome.AlreadyEnded;
        foreach (var r in job.Runs.Values) r.CancelRequested = true;
        job.Cancel.Cancel();
        return CancelOutcome.Requested;
    }

    public (CancelOutcome, RunInfo?) CancelRun(string runId)
    {
        var info = FindRun(runId);
        if (info is null) return (CancelOutcome.NotFound, null);
        if (info.Status is not ("queued" or "running")) return (CancelOutcome.AlreadyEnded, info);
        info.CancelRequested = true;
        try { info.Cancel?.Cancel(); } catch (ObjectDisposedException) { }
        return (CancelOutcome.Requested, info);
    }

    /// <summary>The run <paramref name="runId"/> of matrix <paramref name="matrix"/> (run ids repeat across matrices
    /// with the same configuration).</summary>
    public RunInfo? FindRun(string matrix, string runId) => Job(matrix)?.Runs.GetValueOrDefault(runId);

    /// <summary>The run <paramref name="runId"/> of the most recently submitted matrix holding it.</summary>
    public RunInfo? FindRun(string runId) =>
        Jobs.Reverse().Select(j => j.Runs.GetValueOrDefault(runId)).FirstOrDefault(r => r is not null);

    protected override async Task ExecuteAsync(CancellationToken hostStopping)
    {
        // Workers get SIGTERM as soon as the host begins to stop, not when this service's turn comes: the web server
        // stops first and may wait for in-flight requests, which must not delay the workers' --grace.
        using var either = CancellationTokenSource.CreateLinkedTokenSource(hostStopping, lifetime.ApplicationStopping);
        var stopping = either.Token;
        // Nothing is resumed before the host listens: a service that cannot start must not launch workers.
        if (!await WhenStarted(lifetime, stopping)) return;
        Directory.CreateDirectory(ResultsRoot);
        Resume();
        Running = true;
        // Up to --workers matrices in flight, so small matrices do not leave workers idle; the worker pool bounds
        // the runs executing at once. With one worker, matrices run one after another in submission order.
        using var jobSlots = new SemaphoreSlim(Math.Max(1, options.Value.Workers));
        var inflight = new List<Task>();
        try
        {
            await foreach (var job in _queue.Reader.ReadAllAsync(stopping))
            {
                if (job.State is not MatrixState.Queued) continue; // cancelled while queued
                await jobSlots.WaitAsync(stopping);
                inflight.RemoveAll(t => t.IsCompleted);
                inflight.Add(Task.Run(async () =>
                {
                    try { await RunJob(job, stopping); }
                    catch (Exception e) when (e is not OperationCanceledException)
                    {
                        // Never leave a matrix "running" in the API: it failed, with the reason.
                        logger.LogError(e, "matrix {Matrix} failed", job.Name);
                        job.State = MatrixState.Failed; job.Error = $"{e.GetType().Name}: {e.Message}"; job.FinishedUtc = DateTime.UtcNow;
                        TrySave(job);
                    }
                    finally { jobSlots.Release(); }
                }, CancellationToken.None));
            }
        }
        catch (OperationCanceledException) { }
        finally
        {
            // On shutdown the running matrices stop their workers and mark themselves interrupted before we return.
            try { await Task.WhenAll(inflight); } catch (OperationCanceledException) { }
            Running = false;
        }
        // Matrices still queued stay "queued" in their state file: the next start runs them.
    }

    /// <summary>Waits until the host has started (its web server listens); false when it stops first.</summary>
    public static async Task<bool> WhenStarted(IHostApplicationLifetime lifetime, CancellationToken stopping)
    {
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var a = lifetime.ApplicationStarted.Register(() => started.TrySetResult());
        using var b = stopping.Register(() => started.TrySetCanceled());
        try { await started.Task; return true; }
        catch (OperationCanceledException) { return false; }
    }

    private void Resume()
    {
        var found = new List<MatrixJob>();
        foreach (var dir in Directory.GetDirectories(ResultsRoot))
            if (MatrixJob.TryLoad(dir) is { } job) found.Add(job);
        foreach (var job in found.OrderBy(j => j.SubmittedUtc))
        {
            bool resume = job.State is MatrixState.Queued or MatrixState.Running or MatrixState.Interrupted;
            try { using var lease = plugins.Lease(); Fill(job, MatrixExpander.Expand(MatrixParser.ParseFile(job.MatrixFile, lease.Catalog, Policy))); }
            catch (MatrixValidationException e)
            {
                foreach (var m in SummaryWriter.LoadManifests(job.Directory))
                    Apply(job.Runs.GetOrAdd(m.RunId, _ => { job.RunOrder.Add(m.RunId); return new RunInfo(m.RunId, m.Matrix, m.Label); }), m);
                if (resume) { job.State = MatrixState.Failed; job.Error = e.Message; job.Save(); resume = false; }
            }
            _jobs[job.Name] = job;
            if (resume)
            {
                logger.LogInformation("resuming matrix {Matrix} ({State} when the previous process ended)", job.Name, job.State.ToString().ToLowerInvariant());
                job.State = MatrixState.Queued;
                _queue.Writer.TryWrite(job);
            }
        }
    }

    private async Task RunJob(MatrixJob job, CancellationToken stopping)
    {
        job.State = MatrixState.Running;
        TrySave(job);
        IReadOnlyList<RunCell> cells;
        try { using var lease = plugins.Lease(); cells = MatrixExpander.Expand(MatrixParser.ParseFile(job.MatrixFile, lease.Catalog, Policy)); }
        catch (MatrixValidationException e)
        {
            job.State = MatrixState.Failed; job.Error = e.Message; job.FinishedUtc = DateTime.UtcNow; TrySave(job);
            logger.LogError("matrix {Matrix} no longer validates: {Error}", job.Name, e.Message);
            return;
        }
        Fill(job, cells);
        logger.LogInformation("matrix {Matrix}: {Count} run(s) into {Dir}", job.Name, cells.Count, job.Directory);
        var sink = new CompositeProgress(new TableSink(job), _metricsSink, new LogProgress(logger));
        var pending = new List<(RunCell Cell, string RunDir, RunInfo Info)>();
        foreach (var cell in cells)
        {
            var info = job.Runs[cell.RunId];
            string runDir = Path.Combine(job.Directory, cell.RunId);
            if (RunManifest.TryLoad(Path.Combine(runDir, "manifest.json")) is { IsFinished: true } done) { Apply(info, done); continue; }
            if (info.CancelRequested || job.Cancel.IsCancellationRequested) { MarkCancelled(cell, runDir, info); continue; }
            info.Status = "queued";
            info.Cancel = CancellationTokenSource.CreateLinkedTokenSource(job.Cancel.Token);
            pending.Add((cell, runDir, info));
        }
        // The runs of the matrix share workers (a crashed one is replaced for the next run); they end with the matrix.
        using (var session = new WorkerSession(pending.Count))
            await Task.WhenAll(pending.Select(r => RunCellAsync(job, r.Cell, r.RunDir, r.Info, sink, stopping, session)).ToList());
        TrySummary(job);
        job.State = stopping.IsCancellationRequested ? MatrixState.Interrupted
            : job.Cancel.IsCancellationRequested ? MatrixState.Cancelled : MatrixState.Completed;
        job.FinishedUtc = job.State == MatrixState.Interrupted ? null : DateTime.UtcNow;
        TrySave(job);
        logger.LogInformation("matrix {Matrix} {State}", job.Name, job.State.ToString().ToLowerInvariant());
    }

    private async Task RunCellAsync(MatrixJob job, RunCell cell, string runDir, RunInfo info, IRunProgress sink, CancellationToken stopping, WorkerSession session)
    {
        try
        {
            var m = await pool.RunAsync(new WorkerRequest(cell, job.MatrixFile, runDir), sink, stopping, info.Cancel!.Token, session);
            Apply(info, m);
        }
        catch (OperationCanceledException)
        {
            // Never started: the host is stopping (the run stays as it was) or the run was cancelled while waiting.
            if (!stopping.IsCancellationRequested) MarkCancelled(cell, runDir, info);
        }
        catch (Exception e)
        {
            logger.LogError(e, "run {Run}: the worker could not be supervised", cell.RunId);
            info.Status = "failed"; info.Reason = e.Message;
        }
        finally
        {
            if (!stopping.IsCancellationRequested) TrySummary(job);
        }
    }

    /// <summary>The summary and the state file are written on a best-effort basis: a full or failing disk must not
    /// leave the matrix "running" (its state in memory, and so in the API, stays true).</summary>
    private void TrySummary(MatrixJob job)
    {
        try { lock (job.SummaryLock) SummaryWriter.Write(job.Directory); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            logger.LogWarning("matrix {Matrix}: summary not written: {Message}", job.Name, e.Message);
        }
    }

    private void TrySave(MatrixJob job)
    {
        try { job.Save(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            logger.LogWarning("matrix {Matrix}: state file not written ({State}): {Message}", job.Name, job.State, e.Message);
        }
    }

    private static void MarkCancelled(RunCell cell, string runDir, RunInfo info)
    {
        Directory.CreateDirectory(runDir);
        var path = Path.Combine(runDir, "manifest.json");
        var m = RunManifest.TryLoad(path) ?? WorkerPool.NewManifest(cell);
        m.Status = RunStatus.Cancelled;
        m.Reason = "cancelled before it started";
        m.FinishedUtc = DateTime.UtcNow;
        m.Save(path);
        Apply(info, m);
    }

    /// <summary>Keeps the run table current from the run's events.</summary>
    private sealed class TableSink(MatrixJob job) : IRunProgress
    {
        public void RunStarted(RunCell cell, long steps)
        {
            if (job.Runs.TryGetValue(cell.RunId, out var i)) { i.Status = "running"; i.Steps = steps; i.Step = 0; }
        }
        public void RunStep(RunCell cell, long step, double loss, IReadOnlyDictionary<string, double> probes)
        {
            if (job.Runs.TryGetValue(cell.RunId, out var i)) { i.Step = step; i.Loss = loss; }
        }
        public void RunEnded(RunCell cell, RunManifest manifest)
        {
            if (job.Runs.TryGetValue(cell.RunId, out var i)) Apply(i, manifest);
        }
    }
}
