using System.Text.RegularExpressions;
using YamlDotNet.RepresentationModel;

namespace Harness.Host.Matrix;

/// <summary>The <c>claims:</c> section (format: docs/reports.md). Kept apart from the rest of the parser; it uses the
/// same located errors. Whether a claim's metric exists can only be known from the traces, so the report checks it.</summary>
public sealed partial class MatrixParser
{
    private static readonly string[] ClaimKeys = ["id", "text", "source", "metric", "where", "window", "statistic", "per", "expect", "min_seeds", "must_pass"];
    private static readonly string[] Relations = [">", ">=", "<", "<="];
    private static readonly Dictionary<string, ClaimStatistic> Statistics = new()
    {
        ["median"] = ClaimStatistic.Median, ["mean"] = ClaimStatistic.Mean, ["min"] = ClaimStatistic.Min, ["max"] = ClaimStatistic.Max,
        ["final"] = ClaimStatistic.Final, ["slope"] = ClaimStatistic.Slope, ["fraction_true"] = ClaimStatistic.FractionTrue,
    };

    [GeneratedRegex("^[a-z0-9_.-]+$")]
    private static partial Regex ClaimId();

    private List<ClaimSpec> Claims(YamlMappingNode root, List<ComponentSpec> models, List<ComponentSpec> optimizers, List<ProbeSpec> probes)
    {
        var result = new List<ClaimSpec>();
        var node = Get(root, "claims");
        if (node is null) return result;
        if (node is not YamlSequenceNode seq) { Error(node, "claims", "must be a list of claims (each with id, text, metric and expect)"); return result; }
        var ids = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < seq.Children.Count; i++)
        {
            string path = $"claims[{i}]";
            if (seq.Children[i] is not YamlMappingNode m) { Error(seq.Children[i], path, "must be a mapping with id, text, metric and expect"); continue; }
            int errors = _errors.Count;
            CheckKeys(m, path, ClaimKeys);
            string? id = Str(m, "id", path + ".id", required: true);
            if (id is not null && !ClaimId().IsMatch(id)) Error(Get(m, "id")!, path + ".id", $"'{id}' must be lower-case letters, digits, '_', '.', '-'");
            else if (id is not null && !ids.Add(id)) Error(Get(m, "id")!, path + ".id", $"claim id '{id}' is used twice");
            string? text = Str(m, "text", path + ".text", required: true);
            string? source = Str(m, "source", path + ".source");
            string? metric = Str(m, "metric", path + ".metric", required: true);
            var where = Get(m, "where") is { } wn ? LabelFilter(wn, path + ".where", models, optimizers, probes) : [];
            var window = Get(m, "window") is { } win ? ClaimWindowOf(win, path + ".window") : ClaimWindow.Whole;
            var statistic = ClaimStatistic.Median;
            if (Str(m, "statistic", path + ".statistic") is { } st && !Statistics.TryGetValue(st, out statistic))
                Error(Get(m, "statistic")!, path + ".statistic", $"unknown statistic '{st}' (one of: {string.Join(", ", Statistics.Keys)})");
            bool perRun = false;
            if (Str(m, "per", path + ".per") is { } per)
            {
                if (per is not ("configuration" or "run")) Error(Get(m, "per")!, path + ".per", $"'{per}' is not one of configuration, run");
                perRun = per == "run";
            }
            int minSeeds = (int)(Number(m, "min_seeds", path + ".min_seeds", min: 1, integer: true) ?? 1);
            bool mustPass = false;
            if (Str(m, "must_pass", path + ".must_pass") is { } mp)
            {
                if (mp is not ("true" or "false")) Error(Get(m, "must_pass")!, path + ".must_pass", $"'{mp}' is not one of true, false");
                mustPass = mp == "true";
            }
            ClaimExpectation? expect = null;
            if (Get(m, "expect") is not { } en) Error(m, path + ".expect", "required: one of between, >, >=, <, <=, monotone, compare");
            else expect = Expectation(en, path + ".expect", models, optimizers, probes);
            if (_errors.Count == errors && id is not null && text is not null && metric is not null && expect is not null)
                result.Add(new ClaimSpec(id, text, source, metric, where, window, statistic, perRun, expect, minSeeds, Loc(m)) { MustPass = mustPass });
        }
        return result;
    }

    private ClaimWindow ClaimWindowOf(YamlNode node, string path)
    {
        if (node is not YamlMappingNode m) { Error(node, path, "must be { from: <fraction>, to: <fraction> } or { from_step: <step>, to_step: <step> }"); return ClaimWindow.Whole; }
        CheckKeys(m, path, "from", "to", "from_step", "to_step");
        bool fractions = Get(m, "from") is not null || Get(m, "to") is not null;
        bool steps = Get(m, "from_step") is not null || Get(m, "to_step") is not null;
        if (fractions && steps) { Error(m, path, "give fractions (from, to) or steps (from_step, to_step), not both"); return ClaimWindow.Whole; }
        if (steps)
        {
            long? a = (long?)Number(m, "from_step", path + ".from_step", min: 0, integer: true);
            long? b = (long?)Number(m, "to_step", path + ".to_step", min: 0, integer: true);
            if (a is { } x && b is { } y && y < x) Error(m, path, $"the window is empty: to_step {y} < from_step {x}");
            return new ClaimWindow(FromStep: a ?? 0, ToStep: b);
        }
        double from = Number(m, "from", path + ".from", min: 0, max: 1) ?? 0, to = Number(m, "to", path + ".to", min: 0, max: 1) ?? 1;
        if (to <= from) Error(m, path, $"the window is empty: need from < to (got {from} and {to}); they are fractions of each run's steps");
        return new ClaimWindow(from, to);
    }

    private ClaimExpectation? Expectation(YamlNode node, string path, List<ComponentSpec> models, List<ComponentSpec> optimizers, List<ProbeSpec> probes)
    {
        string[] kinds = ["between", .. Relations, "monotone", "compare"];
        if (node is not YamlMappingNode m || m.Children.Count != 1)
        {
            Error(node, path, $"must be a mapping with exactly one of: {string.Join(", ", kinds)}");
            return null;
        }
        var (keyNode, value) = m.Children.First();
        string key = (keyNode as YamlScalarNode)?.Value ?? "";
        string at = $"{path}.{key}";
        switch (key)
        {
            case "between":
                if (value is not YamlSequenceNode { Children.Count: 2 } pair) { Error(value, at, "must be [low, high]"); return null; }
                var lo = Scalar(pair.Children[0], at); var hi = Scalar(pair.Children[1], at);
                if (AsDouble(lo) is not { } l || AsDouble(hi) is not { } h) { Error(value, at, "low and high must be numbers"); return null; }
                if (h < l) { Error(value, at, $"high {h} is below low {l}"); return null; }
                return new ExpectBetween(l, h);
            case ">" or ">=" or "<" or "<=":
                if (AsDouble(Scalar(value, at)) is not { } bound) { Error(value, at, "must be a number"); return null; }
                return new ExpectRelation(key, bound);
            case "monotone":
                if (value is not YamlMappingNode mono) { Error(value, at, "must be { over: <label such as optimizer.lr>, direction: increasing | decreasing }"); return null; }
                CheckKeys(mono, at, "over", "direction");
                var over = Str(mono, "over", at + ".over", required: true);
                if (over is not null) CheckLabel(Get(mono, "over")!, at + ".over", over, models, optimizers, probes);
                var direction = Str(mono, "direction", at + ".direction", required: true);
                if (direction is not null and not ("increasing" or "decreasing"))
                    Error(Get(mono, "direction")!, at + ".direction", $"'{direction}' is not one of increasing, decreasing");
                return over is null || direction is null ? null : new ExpectMonotone(over, direction == "increasing");
            case "compare":
                if (value is not YamlMappingNode cmp) { Error(value, at, "must be { other: { <label>: <value> }, relation: > | >= | < | <=, factor: <number> }"); return null; }
                CheckKeys(cmp, at, "other", "relation", "factor");
                var otherNode = Get(cmp, "other");
                if (otherNode is null) { Error(cmp, at + ".other", "required: the labels that select the other group, e.g. { optimizer: sgd }"); return null; }
                var other = LabelFilter(otherNode, at + ".other", models, optimizers, probes);
                if (other.Count == 0) { Error(otherNode, at + ".other", "must name at least one label"); return null; }
                var relation = Str(cmp, "relation", at + ".relation") ?? ">";
                if (!Relations.Contains(relation)) { Error(Get(cmp, "relation")!, at + ".relation", $"'{relation}' is not one of {string.Join(", ", Relations)}"); return null; }
                double factor = Number(cmp, "factor", at + ".factor") ?? 1;
                return new ExpectCompare(other, relation, factor);
            default:
                Error(keyNode, at, $"unknown expectation (one of: {string.Join(", ", kinds)})");
                return null;
        }
    }

    private static double? AsDouble(object? v) => v switch { long l => l, double d => d, _ => null };

    /// <summary>A mapping label: value or label: [values] over run labels (optimizer, model, tuner, optimizer.&lt;hp&gt;, …).</summary>
    private List<KeyValuePair<string, IReadOnlyList<object>>> LabelFilter(YamlNode node, string path, List<ComponentSpec> models,
        List<ComponentSpec> optimizers, List<ProbeSpec> probes)
    {
        var result = new List<KeyValuePair<string, IReadOnlyList<object>>>();
        if (node is not YamlMappingNode m) { Error(node, path, "must be a mapping label: value (or label: [values]), e.g. { optimizer: gd, optimizer.lr: 0.03 }"); return result; }
        foreach (var (k, v) in m.Children)
        {
            if (k is not YamlScalarNode { Value: { } label }) { Error(k, path, "keys must be plain labels"); continue; }
            string at = $"{path}.{label}";
            if (!CheckLabel(k, at, label, models, optimizers, probes)) continue;
            var items = v is YamlSequenceNode s ? s.Children.ToList() : [v];
            if (items.Count == 0) { Error(v, at, "an empty list matches no run"); continue; }
            var values = new List<object>();
            foreach (var item in items)
                if (Scalar(item, at) is { } x) values.Add(x);
            if (values.Count == items.Count) result.Add(new(label, values));
        }
        return result;
    }

    /// <summary>True when the label is one the matrix's runs carry (a plugin name key, or a hyperparameter of a
    /// listed optimizer, model, tuner or probe).</summary>
    private bool CheckLabel(YamlNode node, string path, string label, List<ComponentSpec> models, List<ComponentSpec> optimizers, List<ProbeSpec> probes)
    {
        if (label is "optimizer" or "model" or "tuner") return true;
        var parts = label.Split('.');
        IEnumerable<string> known = [];
        string what = "";
        switch (parts[0])
        {
            case "optimizer" when parts.Length == 2:
                known = optimizers.Where(o => plugins.Optimizers.ContainsKey(o.Name)).SelectMany(o => plugins.Optimizers[o.Name].Plugin.Hyperparameters.Select(h => h.Name));
                what = "the matrix's optimizers"; break;
            case "model" when parts.Length == 2:
                known = models.Where(o => plugins.Models.ContainsKey(o.Name)).SelectMany(o => plugins.Models[o.Name].Plugin.Hyperparameters.Select(h => h.Name));
                what = "the matrix's models"; break;
            case "tuner" when parts.Length == 2:
                known = optimizers.Where(o => o.Tuner is not null && plugins.Tuners.ContainsKey(o.Tuner.Name))
                    .SelectMany(o => plugins.Tuners[o.Tuner!.Name].Plugin.Hyperparameters.Select(h => h.Name));
                what = "the matrix's tuners"; break;
            case "probe" when parts.Length == 3:
                if (!probes.Any(p => p.Name == parts[1])) { Error(node, path, $"the matrix has no probe '{parts[1]}' (it has: {string.Join(", ", probes.Select(p => p.Name))})"); return false; }
                known = plugins.Probes[parts[1]].Plugin.Hyperparameters.Select(h => h.Name);
                what = $"probe '{parts[1]}'"; break;
            default:
                Error(node, path, "unknown label: use optimizer, model, tuner, optimizer.<hp>, model.<hp>, tuner.<hp> or probe.<probe>.<hp>");
                return false;
        }
        var names = known.Distinct().Order(StringComparer.Ordinal).ToList();
        if (names.Contains(parts[^1])) return true;
        Error(node, path, $"no hyperparameter '{parts[^1]}' in {what} (they have: {string.Join(", ", names)})");
        return false;
    }
}
