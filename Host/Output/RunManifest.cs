using System.Globalization;
using System.Reflection;
using Harness.Abstractions;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace Harness.Host.Output;

public enum RunStatus { Running, Completed, Diverged, Failed, Cancelled, Interrupted }

public sealed record PluginUse(string Kind, string Name, string File, string Sha256, string Assembly, string Version);

/// <summary>results/&lt;matrix&gt;/&lt;run-id&gt;/manifest.json: everything needed to know what ran and how it ended.</summary>
public sealed class RunManifest
{
    public required string RunId { get; init; }
    public required string Matrix { get; init; }
    public required string Label { get; init; }
    public required string Optimizer { get; init; }
    public required string Model { get; init; }
    public long InitSeed { get; init; }
    public long DataSeed { get; init; }
    public required JsonObject Configuration { get; init; }
    public RunStatus Status { get; set; } = RunStatus.Running;
    /// <summary>Why the run ended as it did (divergence step and loss, target reached, exception message).</summary>
    public string? Reason { get; set; }
    public List<PluginUse> Plugins { get; init; } = new();
    [JsonPropertyName("torchsharp_version")] public string TorchSharpVersion { get; init; } = "";
    [JsonPropertyName("libtorch_version")] public string LibTorchVersion { get; init; } = "";
    public string Device { get; init; } = "";
    public string DType { get; init; } = "";
    public int Threads { get; init; }
    public string DotnetVersion { get; init; } = Environment.Version.ToString();
    public string Machine { get; init; } = Environment.MachineName;
    public long ParameterCount { get; set; }
    public DateTime StartedUtc { get; init; } = DateTime.UtcNow;
    public DateTime? FinishedUtc { get; set; }
    public double WallSeconds { get; set; }
    /// <summary>Optimizer updates applied before the step the run stopped at: the trace's last row is step
    /// <c>steps_completed</c>. On completion that row is the final measurement (no update). On an early stop
    /// (divergence, target loss) the update of that step was computed before the rule was checked —
    /// <see cref="StoppingStepUpdateApplied"/> says whether θ took it.</summary>
    public long StepsCompleted { get; set; }
    /// <summary>Whether the update of the step that ended the run (step <c>steps_completed</c>) was applied to θ:
    /// true at a divergence or target-loss stop (θ then holds steps_completed + 1 updates), false when the run
    /// completed (the final row has no update); null while running or after a failure or interruption.</summary>
    public bool? StoppingStepUpdateApplied { get; set; }
    /// <summary>Last non-null value of every trace column.</summary>
    public Dictionary<string, double> Final { get; set; } = new();
    public string TraceFile { get; init; } = "trace.parquet";
    /// <summary>Version of the harness that wrote this manifest (its InformationalVersion without the commit).</summary>
    public string HarnessVersion { get; init; } = Provenance.Version;
    /// <summary>Git commit the harness was built from (embedded at build time), or "unknown".</summary>
    public string HarnessCommit { get; init; } = Provenance.Commit;
    /// <summary>How the optimizer's threshold is defined (closed_form, linear_recurrence, none); null before the
    /// optimizer was created.</summary>
    public ThresholdRule? ThresholdRule { get; set; }
    /// <summary>What the rule says for this run, e.g. "EMA β = 0.9" or "2×2 recurrence, x* = η·λ* = 6.65934".</summary>
    public string? ThresholdDetail { get; set; }

    /// <summary>Records the optimizer's declared threshold rule.</summary>
    public void RecordThresholdRule(IOptimizer optimizer)
    {
        ThresholdRule = optimizer.ThresholdRule;
        ThresholdDetail = Provenance.DescribeThreshold(optimizer);
    }

    public static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        // Readable text in the file ("×", "+", "λ" rather than \u00D7, \u002B, \u03BB); it is never embedded in HTML.
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>Writes atomically (temp file + rename) so a reader never sees half a manifest.</summary>
    public void Save(string path)
    {
        var tmp = path + ".tmp";
        File.WriteAllText(tmp, JsonSerializer.Serialize(this, Json));
        File.Move(tmp, path, overwrite: true);
    }

    public static RunManifest? TryLoad(string path)
    {
        try { return File.Exists(path) ? JsonSerializer.Deserialize<RunManifest>(File.ReadAllText(path), Json) : null; }
        catch (JsonException) { return null; }
    }

    public bool IsFinished => Status is RunStatus.Completed or RunStatus.Diverged;
}

/// <summary>The harness build's version and commit (from AssemblyInformationalVersion, which the SDK sets to
/// "version+commit" from the git repository at build time).</summary>
public static class Provenance
{
    private static readonly string Informational =
        typeof(Provenance).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "";

    public static string Version => Informational.Split('+')[0] is { Length: > 0 } v ? v : "unknown";
    public static string Commit => Informational.Split('+') is { Length: > 1 } parts && parts[1].Length > 0 ? parts[1] : "unknown";

    public static string DescribeThreshold(IOptimizer optimizer)
    {
        try
        {
            return optimizer.ThresholdRule switch
            {
                Abstractions.ThresholdRule.None => "no linear threshold (sign-based or normalised update): threshold and edge ratios are null",
                Abstractions.ThresholdRule.LinearRecurrence =>
                    $"{optimizer.UpdateMatrix(1)?.GetLength(0)}×{optimizer.UpdateMatrix(1)?.GetLength(0)} linear recurrence, computed numerically: x* = η·λ* = {LinearRecurrence.CriticalStep(optimizer).ToString("G9", CultureInfo.InvariantCulture)}",
                _ => $"closed form reported by the optimizer (momentum {optimizer.Momentum}, β = {optimizer.MomentumCoefficient.ToString("G6", CultureInfo.InvariantCulture)})",
            };
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException)
        {
            return $"invalid declaration: {e.Message}";
        }
    }
}
