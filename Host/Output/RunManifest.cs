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
