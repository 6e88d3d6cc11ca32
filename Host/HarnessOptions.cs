using Microsoft.Extensions.Options;

namespace Harness.Host;

/// <summary>Host configuration: section "Harness" of appsettings.json, environment variables HARNESS_Harness__*, and
/// command-line options (which win). Validated at start-up.</summary>
public sealed class HarnessOptions
{
    public const string Section = "Harness";

    /// <summary>Folder of plugin DLLs. Default: plugins/ next to the host executable.</summary>
    public string PluginDirectory { get; set; } = Path.Combine(AppContext.BaseDirectory, "plugins");
    /// <summary>Root of the results tree (results/&lt;matrix&gt;/&lt;run-id&gt;/). Default: ./results.</summary>
    public string ResultsDirectory { get; set; } = "results";
    /// <summary>Address of the HTTP endpoint serving /metrics (and the service's API). "none" disables it during
    /// <c>run</c>. Port 0 picks a free port (printed at start).</summary>
    public string MetricsUrl { get; set; } = "http://127.0.0.1:9464";
    /// <summary>Folder the service watches for matrix files (serve only).</summary>
    public string InboxDirectory { get; set; } = "inbox";
    /// <summary>Intra-op threads for libtorch (0 = number of cores).</summary>
    public int Threads { get; set; }

    // ---- the service (serve) and worker processes ----

    /// <summary>Runs executed at the same time, each in its own worker process (default 1: one CPU run uses every core).</summary>
    public int Workers { get; set; } = 1;
    /// <summary>Wall-time limit of one run in seconds (0 = none): the worker is killed and the run marked failed.</summary>
    public double RunTimeLimitSeconds { get; set; }
    /// <summary>Resident-memory limit of one worker in MiB (0 = none), checked every 0.5 s from /proc/&lt;pid&gt;/status.</summary>
    public long RunMemoryLimitMb { get; set; }
    /// <summary>On SIGTERM/Ctrl-C: seconds the workers get to flush and mark their runs interrupted before they are killed.</summary>
    public double ShutdownGraceSeconds { get; set; } = 20;
    /// <summary>Bearer token required by every endpoint except /metrics, /healthz and /readyz (HARNESS_API_TOKEN or
    /// --api-token). Required when the service binds a non-loopback address.</summary>
    public string? ApiToken { get; set; }
    /// <summary>Largest accepted request body in bytes (default 1 MiB).</summary>
    public long MaxRequestBodyBytes { get; set; } = 1 << 20;
    /// <summary>How often the service polls the plugin folder for new or changed files, in seconds.</summary>
    public double PluginPollSeconds { get; set; } = 1;
    /// <summary>How long an ended run's series stay in /metrics, in seconds (default 600); after that they are removed,
    /// so the series count stays bounded by the running runs plus the runs of the last one or two retention periods.</summary>
    public double MetricsRetentionSeconds { get; set; } = 600;

    // ---- untrusted input (matrices submitted to the service; limits apply to run and validate too) ----

    /// <summary>Folders a submitted matrix's <c>data_dir</c> may name (besides the working directory). Default:
    /// <see cref="DefaultDataRoot"/>.</summary>
    public string[]? DataRoots { get; set; }
    public const string DefaultDataRoot = "/usr/share/datasets";
    public IReadOnlyList<string> EffectiveDataRoots => DataRoots is { Length: > 0 } d ? d : [DefaultDataRoot];
    /// <summary>Most runs one matrix may expand to (counted before expanding).</summary>
    public long MaxRunsPerMatrix { get; set; } = 10_000;
    /// <summary>Deepest nesting of lists and mappings in a matrix.</summary>
    public int MaxMatrixNesting { get; set; } = 64;
    /// <summary>Largest optimizer state file (preconditioner_from.file) read, in bytes (default 256 MiB).</summary>
    public long MaxStateFileBytes { get; set; } = 256L << 20;

    /// <summary>The limits for <c>run</c> and <c>validate</c> (any path the user can read).</summary>
    public Matrix.InputPolicy TrustedPolicy() => new()
    {
        MaxRuns = MaxRunsPerMatrix, MaxNesting = MaxMatrixNesting, MaxStateFileBytes = MaxStateFileBytes,
        MaxMatrixBytes = Math.Max(MaxRequestBodyBytes, 1 << 20),
    };

    /// <summary>The policy of the service: paths confined to the working directory, the results root and the data roots.</summary>
    public Matrix.InputPolicy ServicePolicy() => Matrix.InputPolicy.Confined(Directory.GetCurrentDirectory(), ResultsDirectory, EffectiveDataRoots) with
    {
        MaxRuns = MaxRunsPerMatrix, MaxNesting = MaxMatrixNesting, MaxStateFileBytes = MaxStateFileBytes, MaxMatrixBytes = MaxRequestBodyBytes,
    };
}

public sealed class HarnessOptionsValidator : IValidateOptions<HarnessOptions>
{
    public ValidateOptionsResult Validate(string? name, HarnessOptions o)
    {
        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(o.PluginDirectory)) errors.Add("Harness:PluginDirectory must be set");
        if (string.IsNullOrWhiteSpace(o.ResultsDirectory)) errors.Add("Harness:ResultsDirectory must be set");
        if (o.MetricsUrl != "none" && !Service.BindAddress.TryParse(o.MetricsUrl, out _, out var why))
            errors.Add($"--metrics-url (Harness:MetricsUrl) '{o.MetricsUrl}': {why}");
        if (o.Threads < 0) errors.Add($"Harness:Threads must be >= 0, got {o.Threads}");
        if (o.Workers < 1) errors.Add($"Harness:Workers must be >= 1, got {o.Workers}");
        if (o.RunTimeLimitSeconds < 0) errors.Add("Harness:RunTimeLimitSeconds must be >= 0");
        if (o.RunMemoryLimitMb < 0) errors.Add("Harness:RunMemoryLimitMb must be >= 0");
        if (o.ShutdownGraceSeconds < 0) errors.Add("Harness:ShutdownGraceSeconds must be >= 0");
        if (o.MaxRequestBodyBytes < 1024) errors.Add("Harness:MaxRequestBodyBytes must be >= 1024");
        if (o.PluginPollSeconds <= 0) errors.Add("Harness:PluginPollSeconds must be > 0");
        if (!(o.MetricsRetentionSeconds >= 0 && o.MetricsRetentionSeconds <= 7 * 86400))
            errors.Add($"Harness:MetricsRetentionSeconds must be in [0, 604800], got {o.MetricsRetentionSeconds}");
        if (o.MaxRunsPerMatrix < 1) errors.Add("Harness:MaxRunsPerMatrix must be >= 1");
        if (o.MaxMatrixNesting is < 4 or > Matrix.InputPolicy.NestingCeiling) errors.Add($"Harness:MaxMatrixNesting must be in [4, {Matrix.InputPolicy.NestingCeiling}]");
        if (o.MaxStateFileBytes < 1024) errors.Add("Harness:MaxStateFileBytes must be >= 1024");
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
