using System.Globalization;

namespace Harness.Abstractions;

/// <summary>Kinds of hyperparameter values. <see cref="Text"/> is free text that the plugin parses itself (e.g. a small
/// matrix "1 0.9; 0.9 1"); a YAML list in a matrix file stays a grid axis, so structured values are written as text.</summary>
public enum HyperparameterKind { Real, Integer, Boolean, Choice, Text }

/// <summary>One entry of a plugin's hyperparameter schema: name, type, default, admissible range, doc.
/// The host validates every matrix value against it before any training starts.</summary>
public sealed record HyperparameterSpec
{
    public required string Name { get; init; }
    public required HyperparameterKind Kind { get; init; }
    public required object Default { get; init; }
    public required string Doc { get; init; }
    public double? Min { get; init; }
    public double? Max { get; init; }
    /// <summary>When true the range excludes <see cref="Min"/> (e.g. a learning rate must be &gt; 0).</summary>
    public bool MinExclusive { get; init; }
    public bool MaxExclusive { get; init; }
    public IReadOnlyList<string>? Choices { get; init; }

    public static HyperparameterSpec Real(string name, double @default, string doc, double? min = null, double? max = null,
        bool minExclusive = false, bool maxExclusive = false) =>
        new() { Name = name, Kind = HyperparameterKind.Real, Default = @default, Doc = doc, Min = min, Max = max,
                MinExclusive = minExclusive, MaxExclusive = maxExclusive };

    public static HyperparameterSpec Integer(string name, long @default, string doc, long? min = null, long? max = null) =>
        new() { Name = name, Kind = HyperparameterKind.Integer, Default = @default, Doc = doc, Min = min, Max = max };

    public static HyperparameterSpec Boolean(string name, bool @default, string doc) =>
        new() { Name = name, Kind = HyperparameterKind.Boolean, Default = @default, Doc = doc };

    public static HyperparameterSpec Choice(string name, string @default, string doc, params string[] choices) =>
        new() { Name = name, Kind = HyperparameterKind.Choice, Default = @default, Doc = doc, Choices = choices };

    /// <summary>Free text, parsed by the plugin (which reports malformed text with a clear error when it is created).</summary>
    public static HyperparameterSpec Text(string name, string @default, string doc) =>
        new() { Name = name, Kind = HyperparameterKind.Text, Default = @default, Doc = doc };

    /// <summary>Human-readable range, e.g. "(0, 1]" or "{mse, cross_entropy}".</summary>
    public string RangeText => Kind switch
    {
        HyperparameterKind.Boolean => "true | false",
        HyperparameterKind.Choice => "{" + string.Join(", ", Choices ?? []) + "}",
        HyperparameterKind.Text => "text",
        _ => (MinExclusive ? "(" : "[") + (Min is { } lo ? Fmt(lo) : "-inf") + ", " +
             (Max is { } hi ? Fmt(hi) : "inf") + (MaxExclusive ? ")" : "]"),
    };

    private static string Fmt(double x) => x.ToString("G", CultureInfo.InvariantCulture);

    /// <summary>Checks and converts a raw value (double, long, bool or string from a matrix file).
    /// Returns null and an error message when the value does not fit this spec.</summary>
    public object? Coerce(object raw, out string? error)
    {
        error = null;
        switch (Kind)
        {
            case HyperparameterKind.Boolean:
                if (raw is bool b) return b;
                if (raw is string s && bool.TryParse(s, out var pb)) return pb;
                error = $"expected true or false, got '{raw}'";
                return null;
            case HyperparameterKind.Choice:
                var str = Convert.ToString(raw, CultureInfo.InvariantCulture) ?? "";
                if (Choices is not null && Choices.Contains(str, StringComparer.Ordinal)) return str;
                error = $"'{str}' is not one of {RangeText}";
                return null;
            case HyperparameterKind.Text:
                if (raw is string text) return text;
                if (raw is double or long or int) return Convert.ToString(raw, CultureInfo.InvariantCulture)!;
                error = $"expected text, got '{raw}'";
                return null;
            case HyperparameterKind.Integer:
            case HyperparameterKind.Real:
                double x;
                if (raw is double d) x = d;
                else if (raw is long l) x = l;
                else if (raw is int i) x = i;
                else if (raw is string t && double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out var pt)) x = pt;
                else { error = $"expected a number, got '{raw}'"; return null; }
                if (double.IsNaN(x) || double.IsInfinity(x)) { error = $"{x} is not a finite number"; return null; }
                if (Kind == HyperparameterKind.Integer && x != Math.Floor(x)) { error = $"expected an integer, got {Fmt(x)}"; return null; }
                bool below = Min is { } min && (MinExclusive ? x <= min : x < min);
                bool above = Max is { } max && (MaxExclusive ? x >= max : x > max);
                if (below || above) { error = $"value {Fmt(x)} is outside {RangeText}"; return null; }
                return Kind == HyperparameterKind.Integer ? (object)(long)x : x;
        }
        error = $"unsupported kind {Kind}";
        return null;
    }
}

/// <summary>Validated hyperparameter values for one plugin instance: every schema entry present
/// (defaults filled in), every value in range. Built by the host; plugins read it with typed getters.</summary>
public sealed class HyperparameterValues
{
    private readonly IReadOnlyDictionary<string, object> _values;

    public HyperparameterValues(IReadOnlyList<HyperparameterSpec> schema, IReadOnlyDictionary<string, object>? given = null)
    {
        var values = new Dictionary<string, object>(StringComparer.Ordinal);
        foreach (var spec in schema)
        {
            object raw = given is not null && given.TryGetValue(spec.Name, out var g) ? g : spec.Default;
            values[spec.Name] = spec.Coerce(raw, out var err)
                ?? throw new ArgumentException($"hyperparameter '{spec.Name}': {err}");
        }
        if (given is not null)
            foreach (var key in given.Keys)
                if (!values.ContainsKey(key))
                    throw new ArgumentException($"unknown hyperparameter '{key}'");
        _values = values;
    }

    public IReadOnlyDictionary<string, object> All => _values;
    public double Real(string name) => Convert.ToDouble(Get(name), CultureInfo.InvariantCulture);
    public long Integer(string name) => Convert.ToInt64(Get(name), CultureInfo.InvariantCulture);
    public bool Boolean(string name) => (bool)Get(name);
    public string Choice(string name) => (string)Get(name);
    public string Text(string name) => (string)Get(name);

    private object Get(string name) =>
        _values.TryGetValue(name, out var v) ? v : throw new KeyNotFoundException($"no hyperparameter '{name}' in the schema");
}
