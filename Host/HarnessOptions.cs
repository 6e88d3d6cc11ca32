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
}

public sealed class HarnessOptionsValidator : IValidateOptions<HarnessOptions>
{
    public ValidateOptionsResult Validate(string? name, HarnessOptions o)
    {
        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(o.PluginDirectory)) errors.Add("Harness:PluginDirectory must be set");
        if (string.IsNullOrWhiteSpace(o.ResultsDirectory)) errors.Add("Harness:ResultsDirectory must be set");
        if (o.MetricsUrl != "none" && !(Uri.TryCreate(o.MetricsUrl, UriKind.Absolute, out var u) && u.Scheme is "http" or "https"))
            errors.Add($"Harness:MetricsUrl '{o.MetricsUrl}' is not an http(s) URL or 'none'");
        if (o.Threads < 0) errors.Add($"Harness:Threads must be >= 0, got {o.Threads}");
        if (o.Workers < 1) errors.Add($"Harness:Workers must be >= 1, got {o.Workers}");
        if (o.RunTimeLimitSeconds < 0) errors.Add("Harness:RunTimeLimitSeconds must be >= 0");
        if (o.RunMemoryLimitMb < 0) errors.Add("Harness:RunMemoryLimitMb must be >= 0");
        if (o.ShutdownGraceSeconds < 0) errors.Add("Harness:ShutdownGraceSeconds must be >= 0");
        if (o.MaxRequestBodyBytes < 1024) errors.Add("Harness:MaxRequestBodyBytes must be >= 1024");
        if (o.PluginPollSeconds <= 0) errors.Add("Harness:PluginPollSeconds must be > 0");
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
