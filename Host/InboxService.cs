using Harness.Host.Cli;
using Harness.Host.Matrix;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Harness.Host;

/// <summary>
/// The inbox: matrix files (*.yaml, *.yml, *.json) dropped into the inbox folder are submitted to the service's
/// queue (<see cref="Service.MatrixService"/>, the same queue as the HTTP API), then moved to inbox/done/ when
/// accepted or inbox/failed/ with a .error.txt beside a file that did not validate. Files are taken once their size
/// has stopped changing. Progress and results are in results/&lt;matrix&gt;/ and the API like any other matrix.
/// </summary>
public sealed class InboxService(Service.MatrixService queue, IOptions<HarnessOptions> options, ILogger<InboxService> logger) : BackgroundService
{
    private static readonly string[] Extensions = [".yaml", ".yml", ".json"];
    public static readonly TimeSpan PollInterval = TimeSpan.FromSeconds(1);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        string inbox = Path.GetFullPath(options.Value.InboxDirectory);
        foreach (var sub in new[] { "", "running", "done", "failed" }) Directory.CreateDirectory(Path.Combine(inbox, sub));
        logger.LogInformation("watching {Inbox} for matrix files", inbox);
        // A file left in running/ by a previous process that died is queued again (finished runs are skipped by id).
        foreach (var stale in Directory.GetFiles(Path.Combine(inbox, "running")))
            File.Move(stale, Path.Combine(inbox, Path.GetFileName(stale)), overwrite: true);
        var sizes = new Dictionary<string, long>();
        while (!stoppingToken.IsCancellationRequested)
        {
            foreach (var file in Directory.GetFiles(inbox).Where(f => Extensions.Contains(Path.GetExtension(f))).Order(StringComparer.Ordinal))
            {
                long size = new FileInfo(file).Length;
                if (!sizes.TryGetValue(file, out var before) || before != size) { sizes[file] = size; continue; }
                sizes.Remove(file);
                await Task.Run(() => Process(inbox, file, stoppingToken), CancellationToken.None);
                if (stoppingToken.IsCancellationRequested) break;
            }
            try { await Task.Delay(PollInterval, stoppingToken); } catch (OperationCanceledException) { }
        }
    }

    private void Process(string inbox, string file, CancellationToken ct)
    {
        string name = Path.GetFileName(file);
        string running = Path.Combine(inbox, "running", name);
        File.Move(file, running, overwrite: true);
        string? error = null;
        try
        {
            var (job, cells) = queue.Submit(File.ReadAllText(running), file);
            logger.LogInformation("matrix {File} queued: {Count} run(s) into {Dir}", name, cells.Count, job.Directory);
        }
        catch (MatrixValidationException e)
        {
            // The errors name the file where the user will find it (inbox/failed/), not inbox/running/ where it was parsed.
            string failed = Path.Combine(inbox, "failed", name);
            error = new MatrixValidationException(e.Errors.Select(x => x.Location.File == running || x.Location.File == file ? x with { Location = x.Location with { File = failed } } : x).ToList()).Message;
        }
        catch (Service.SubmissionConflictException e) { error = e.Message; }
        catch (Exception e) when (e is not OperationCanceledException) { error = e.ToString(); }
        // Submission is immediate and persisted (results/<matrix>/service.json), so the file is done with even when
        // the service is stopping: the queue resumes the matrix on the next start.
        string target = Path.Combine(inbox, error is null ? "done" : "failed", name);
        File.Move(running, target, overwrite: true);
        if (error is not null)
        {
            File.WriteAllText(target + ".error.txt", error);
            logger.LogError("matrix {File} failed: {Error}", name, error);
        }
    }
}
