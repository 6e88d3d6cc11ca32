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
/// Poison-safe: a file is moved to inbox/running/ before it is read, so one found there at start-up was being
/// handled when a previous process ended (it may have crashed it) and goes to failed/ instead of being tried again.
/// Only regular files are taken (no symlinks, FIFOs, devices), up to the request body limit, read without blocking.
/// </summary>
public sealed class InboxService(Service.MatrixService queue, IOptions<HarnessOptions> options, ILogger<InboxService> logger,
    IHostApplicationLifetime lifetime) : BackgroundService
{
    private static readonly string[] Extensions = [".yaml", ".yml", ".json"];
    public static readonly TimeSpan PollInterval = TimeSpan.FromSeconds(1);
    public const string ErrorSuffix = ".error.txt";

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!await Service.MatrixService.WhenStarted(lifetime, stoppingToken)) return;
        string inbox = Path.GetFullPath(options.Value.InboxDirectory);
        foreach (var sub in new[] { "", "running", "done", "failed" }) Directory.CreateDirectory(Path.Combine(inbox, sub));
        logger.LogInformation("watching {Inbox} for matrix files", inbox);
        foreach (var stale in Directory.GetFiles(Path.Combine(inbox, "running")))
            Fail(inbox, stale, Path.GetFileName(stale), "the previous service process ended while it was reading or submitting this file " +
                "(it may have crashed the service), so it is not tried again. If GET /api/matrices lists the matrix, it was accepted; " +
                "otherwise check it with 'harness validate' and drop it into the inbox again.");
        var sizes = new Dictionary<string, long>();
        while (!stoppingToken.IsCancellationRequested)
        {
            foreach (var file in Directory.GetFiles(inbox).Where(f => Extensions.Contains(Path.GetExtension(f))).Order(StringComparer.Ordinal))
            {
                try
                {
                    if (!UntrustedFile.IsRegularFile(file))
                    {
                        Fail(inbox, file, Path.GetFileName(file), "not a regular file (a symlink, FIFO, device or socket): the inbox takes regular files only");
                        continue;
                    }
                    long size = new FileInfo(file).Length;
                    if (!sizes.TryGetValue(file, out var before) || before != size) { sizes[file] = size; continue; }
                    sizes.Remove(file);
                    await Task.Run(() => Process(inbox, file), CancellationToken.None);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    logger.LogWarning("inbox file {File} skipped: {Reason}", Path.GetFileName(file), e.Message);
                }
                if (stoppingToken.IsCancellationRequested) break;
            }
            try { await Task.Delay(PollInterval, stoppingToken); } catch (OperationCanceledException) { }
        }
    }

    private void Process(string inbox, string file)
    {
        string name = Path.GetFileName(file);
        string running = Path.Combine(inbox, "running", name);
        // The move is the "attempted" mark: from here on, a crash leaves the file in running/, and the next start
        // sends it to failed/.
        File.Move(file, running, overwrite: true);
        string failed = Path.Combine(inbox, "failed", name);
        string? error = null;
        try
        {
            long limit = options.Value.MaxRequestBodyBytes;
            var read = UntrustedFile.Read(running, limit, roots: null);
            if (read.Bytes is null) error = $"{failed}: the file {read.Problem ?? "cannot be read"} (Harness:MaxRequestBodyBytes is {limit})";
            else
            {
                var (job, cells) = queue.Submit(System.Text.Encoding.UTF8.GetString(read.Bytes), file);
                logger.LogInformation("matrix {File} queued: {Count} run(s) into {Dir}", name, cells.Count, job.Directory);
            }
        }
        catch (MatrixValidationException e)
        {
            // The errors name the file where the user will find it (inbox/failed/), not inbox/running/ where it was parsed.
            error = new MatrixValidationException(e.Errors.Select(x => x.Location.File == running || x.Location.File == file ? x with { Location = x.Location with { File = failed } } : x).ToList()).Message;
        }
        catch (Service.SubmissionConflictException e) { error = e.Message; }
        catch (Exception e)
        {
            logger.LogError(e, "inbox file {File}: unexpected error", name);
            error = $"{failed}: the service could not handle this file ({e.GetType().Name}: {e.Message.Split('\n')[0]}); its log has the details";
        }
        // Submission is immediate and persisted (results/<matrix>/service.json), so the file is done with even when
        // the service is stopping: the queue resumes the matrix on the next start.
        if (error is null) File.Move(running, Path.Combine(inbox, "done", name), overwrite: true);
        else Fail(inbox, running, name, error);
    }

    /// <summary>Moves <paramref name="path"/> to failed/ (a symlink or FIFO is moved as itself, never opened) and
    /// writes the reason beside it.</summary>
    private void Fail(string inbox, string path, string name, string reason)
    {
        string target = Path.Combine(inbox, "failed", name);
        File.Move(path, target, overwrite: true);
        File.WriteAllText(target + ErrorSuffix, reason + Environment.NewLine);
        logger.LogError("matrix {File} failed: {Error}", name, reason);
    }
}
