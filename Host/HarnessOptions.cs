using Microsoft.Extensions.Options;

namespace Harness.Host;

/// <summary>Host configuration: section "Harness" of appsettings.json, environment variables HARNESS__*, and
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
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
