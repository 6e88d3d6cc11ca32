using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Harness.Host.Output;

/// <summary>
/// A run's configuration flattened to labels: <c>optimizer</c>, <c>model</c>, <c>tuner</c> (plugin names) and
/// <c>optimizer.&lt;hp&gt;</c>, <c>model.&lt;hp&gt;</c>, <c>tuner.&lt;hp&gt;</c>, <c>probe.&lt;probe&gt;.&lt;hp&gt;</c>
/// (values: bool, double or string; JSON numbers are doubles). These are the typed hyperparameter columns of
/// summary.parquet and the keys a claim's <c>where</c> filters on.
/// </summary>
public static class RunLabels
{
    public static SortedDictionary<string, object> Of(RunManifest run)
    {
        var labels = new SortedDictionary<string, object>(StringComparer.Ordinal);
        var config = run.Configuration;
        labels["optimizer"] = run.Optimizer;
        labels["model"] = run.Model;
        Add(labels, "optimizer.", config["optimizer"]?["hyperparameters"] as JsonObject);
        Add(labels, "model.", config["model"]?["hyperparameters"] as JsonObject);
        if (config["optimizer"]?["tuner"] is JsonObject tuner)
        {
            if (tuner["name"]?.GetValue<string>() is { } name) labels["tuner"] = name;
            Add(labels, "tuner.", tuner["hyperparameters"] as JsonObject);
        }
        if (config["probes"] is JsonArray probes)
            foreach (var p in probes.OfType<JsonObject>())
                if (p["name"]?.GetValue<string>() is { } name) Add(labels, $"probe.{name}.", p["hyperparameters"] as JsonObject);
        return labels;
    }

    /// <summary>Labels plus the seeds: what distinguishes a run from the other seeds of its configuration.</summary>
    public static string ConfigurationKey(IReadOnlyDictionary<string, object> labels) =>
        string.Join("|", labels.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => kv.Key + "=" + Format(kv.Value)));

    private static void Add(SortedDictionary<string, object> labels, string prefix, JsonObject? values)
    {
        if (values is null) return;
        foreach (var (k, v) in values)
            if (Value(v) is { } x) labels[prefix + k] = x;
    }

    public static object? Value(JsonNode? node) => node is not JsonValue v ? null : v.GetValueKind() switch
    {
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.Number => v.GetValue<double>(),
        JsonValueKind.String => v.GetValue<string>(),
        _ => null,
    };

    public static string Format(object v) => v switch
    {
        double d => d.ToString("G", CultureInfo.InvariantCulture),
        bool b => b ? "true" : "false",
        _ => Convert.ToString(v, CultureInfo.InvariantCulture) ?? "",
    };

    /// <summary>True when a label value equals a value written in a matrix file (numbers compared as numbers).</summary>
    public static bool Matches(object label, object wanted) => (label, wanted) switch
    {
        (double a, double b) => a == b || Math.Abs(a - b) <= 1e-12 * Math.Max(Math.Abs(a), Math.Abs(b)),
        (double a, long b) => a == b,
        (bool a, bool b) => a == b,
        _ => string.Equals(Format(label), Format(wanted), StringComparison.Ordinal),
    };
}
