using System.Runtime.CompilerServices;
using System.Text;
using Harness.Host.Matrix;

namespace Harness.Host.Telemetry;

/// <summary>
/// What tells the runs of one matrix apart: the hyperparameters (optimizer, model, tuner) and seeds whose value differs
/// between its cells. Defaults and values shared by every cell are left out, so labels read "adam lr=0.0003", not every
/// hyperparameter. Used for terminal labels and for the labels of <c>harness_run_info</c> (bounded by the matrix).
/// </summary>
public sealed class SweptParameters
{
    private static readonly ConditionalWeakTable<MatrixSpec, SweptParameters> Cache = new();

    private readonly HashSet<string> _swept;
    private readonly bool _severalModels;

    private SweptParameters(IReadOnlyList<RunCell> cells)
    {
        _swept = cells.SelectMany(Values).GroupBy(kv => kv.Key)
            .Where(g => g.Select(kv => kv.Value).Distinct(StringComparer.Ordinal).Count() > 1)
            .Select(g => g.Key).ToHashSet(StringComparer.Ordinal);
        _severalModels = cells.Select(c => c.Model).Distinct(StringComparer.Ordinal).Count() > 1;
    }

    /// <summary>The swept parameters of <paramref name="spec"/> (computed once per matrix).</summary>
    public static SweptParameters Of(MatrixSpec spec) => Cache.GetValue(spec, s => new SweptParameters(MatrixExpander.Expand(s)));

    /// <summary>The swept values of one cell, keyed <c>optimizer.&lt;name&gt;</c>, <c>model.&lt;name&gt;</c>,
    /// <c>tuner.&lt;name&gt;</c>, <c>seed.init</c>, <c>seed.data</c>, in that order.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> For(RunCell cell) => Values(cell).Where(kv => _swept.Contains(kv.Key)).ToList();

    /// <summary>Short label from the swept values only: "gd lr=0.1", "adam lr=0.001 | cnn width=32 | init=1",
    /// "gd+cdat sigma=2" (the model is named only when the matrix has several).</summary>
    public string Label(RunCell cell)
    {
        var values = For(cell);
        string Part(string prefix) => string.Join(" ", values.Where(kv => kv.Key.StartsWith(prefix, StringComparison.Ordinal))
            .Select(kv => $"{kv.Key[prefix.Length..]}={kv.Value}"));
        var sb = new StringBuilder(cell.Optimizer);
        if (cell.Tuner is not null) sb.Append('+').Append(cell.Tuner);
        foreach (var part in new[] { Part("optimizer."), Part("tuner.") }.Where(p => p.Length > 0)) sb.Append(' ').Append(part);
        string model = Part("model.");
        if (_severalModels || model.Length > 0) sb.Append(" | ").Append(cell.Model).Append(model.Length > 0 ? " " + model : "");
        string seeds = Part("seed.");
        if (seeds.Length > 0) sb.Append(" | ").Append(seeds);
        if (cell.PreconditionerFrom is { } src)
            sb.Append(" | P from ").Append(src.File is null ? src.RunId : Path.GetFileName(src.File)).Append('@').Append(src.Step);
        return sb.ToString();
    }

    /// <summary>A Prometheus label name for a swept key: "optimizer.lr" → "optimizer_lr" (anything but letters, digits
    /// and _ becomes _).</summary>
    public static string LabelName(string key)
    {
        var sb = new StringBuilder(key.Length);
        foreach (char c in key) sb.Append(char.IsAsciiLetterOrDigit(c) || c == '_' ? c : '_');
        return sb.ToString();
    }

    private static IEnumerable<KeyValuePair<string, string>> Values(RunCell cell)
    {
        foreach (var (k, v) in cell.OptimizerHyperparameters.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            yield return new("optimizer." + k, RunCell.Format(v));
        foreach (var (k, v) in cell.ModelHyperparameters.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            yield return new("model." + k, RunCell.Format(v));
        foreach (var (k, v) in (cell.TunerHyperparameters ?? new Dictionary<string, object>()).OrderBy(kv => kv.Key, StringComparer.Ordinal))
            yield return new("tuner." + k, RunCell.Format(v));
        yield return new("seed.init", cell.InitSeed.ToString(System.Globalization.CultureInfo.InvariantCulture));
        yield return new("seed.data", cell.DataSeed.ToString(System.Globalization.CultureInfo.InvariantCulture));
    }
}
