using System.Globalization;
using Harness.Host.Matrix;
using Harness.Host.Output;

namespace Harness.Host.Reports;

public enum Verdict { Pass, Fail, NotEnoughData }

/// <summary>One group's measurement: its name, value (median over seeds, or the run's value), the bootstrap interval
/// over seeds, how many seeds had data, and whether it met the expectation (null = not judged).</summary>
public sealed record GroupValue(string Name, double Value, double Low, double High, int Seeds, bool? Met, string? Note = null);

public sealed record ClaimResult(ClaimSpec Claim, Verdict Verdict, string Expected, IReadOnlyList<GroupValue> Groups,
    int RunsUsed, int RunsExcluded, string Reason)
{
    public string VerdictText => Verdict switch { Verdict.Pass => "pass", Verdict.Fail => "fail", _ => "not enough data" };
}

/// <summary>
/// Evaluates claims (docs/reports.md) on the runs of a matrix. Runs that match <c>where</c> and completed are used;
/// diverged, failed and unfinished runs are excluded and counted. Per run: the statistic of the metric over the
/// window's finite values. Per configuration: the median of those over seeds with a 90 % bootstrap interval; a
/// configuration with fewer than <c>min_seeds</c> seeds with data is "not enough data". The verdict is "fail" when
/// a judged group fails, else "not enough data" when a group could not be judged or none exists, else "pass".
/// </summary>
public static class ClaimEvaluator
{
    public static IReadOnlyList<ClaimResult> Evaluate(IReadOnlyList<ClaimSpec> claims, ReportData data) =>
        claims.Select(c => Evaluate(c, data)).ToList();

    private sealed record Group(string Key, string Name, SortedDictionary<string, object> Labels, List<RunRecord> Runs);
    private sealed record Measured(Group Group, double Value, double Low, double High, int Seeds, string? Missing);

    public static ClaimResult Evaluate(ClaimSpec claim, ReportData data)
    {
        string expected = Describe(claim.Expect);
        var matching = data.Runs.Where(r => Matches(r, claim.Where)).ToList();
        var used = matching.Where(r => r.Usable).ToList();
        int excluded = matching.Count - used.Count;
        if (matching.Count == 0)
            return new ClaimResult(claim, Verdict.NotEnoughData, expected, [], 0, 0, "no run matches where");
        if (used.Count == 0)
            return new ClaimResult(claim, Verdict.NotEnoughData, expected, [], 0, excluded, $"all {excluded} matching run(s) diverged or did not complete");
        if (!used.Any(r => r.Trace?.Column(claim.Metric) is not null))
            return new ClaimResult(claim, Verdict.NotEnoughData, expected, [], used.Count, excluded, $"no trace has a column '{claim.Metric}'");

        var mine = Measure(claim, data, used);
        var groups = new List<GroupValue>();
        switch (claim.Expect)
        {
            case ExpectBetween b:
                groups.AddRange(mine.Select(m => Judge(m, v => v >= b.Low && v <= b.High)));
                break;
            case ExpectRelation r:
                groups.AddRange(mine.Select(m => Judge(m, v => Holds(v, r.Relation, r.Bound))));
                break;
            case ExpectMonotone mono:
                groups.AddRange(Monotone(mine, mono));
                break;
            case ExpectCompare cmp:
                var otherWhere = claim.Where.Where(kv => !cmp.Other.Any(o => o.Key == kv.Key)).Concat(cmp.Other).ToList();
                var otherRuns = data.Runs.Where(r => Matches(r, otherWhere)).ToList();
                var otherUsed = otherRuns.Where(r => r.Usable).ToList();
                excluded += otherRuns.Count - otherUsed.Count;
                var others = Measure(claim, data, otherUsed);
                foreach (var m in mine) groups.Add(CompareOne(m, others, cmp));
                break;
        }
        int usedCount = used.Count;
        Verdict verdict = groups.Count == 0 ? Verdict.NotEnoughData
            : groups.Any(g => g.Met == false) ? Verdict.Fail
            : groups.Any(g => g.Met is null) ? Verdict.NotEnoughData : Verdict.Pass;
        string reason = verdict switch
        {
            Verdict.Fail => $"{groups.Count(g => g.Met == false)} of {groups.Count} group(s) do not meet it",
            Verdict.Pass => $"all {groups.Count} group(s) meet it",
            _ => groups.Count == 0 ? "no group to judge" : string.Join("; ", groups.Where(g => g.Met is null).Select(g => $"{g.Name}: {g.Note}").Distinct()),
        };
        return new ClaimResult(claim, verdict, expected, groups, usedCount, excluded, reason);
    }

    private static GroupValue Judge(Measured m, Func<double, bool> test) =>
        m.Missing is not null ? new GroupValue(m.Group.Name, double.NaN, double.NaN, double.NaN, m.Seeds, null, m.Missing)
            : new GroupValue(m.Group.Name, m.Value, m.Low, m.High, m.Seeds, test(m.Value));

    private static IEnumerable<GroupValue> Monotone(List<Measured> mine, ExpectMonotone mono)
    {
        // Families: groups equal in every label except `over`; within each, values ordered by `over` must be strictly monotone.
        foreach (var family in mine.GroupBy(m => RunLabels.ConfigurationKey(Without(m.Group.Labels, [mono.Over]))))
        {
            var ordered = family.Where(m => m.Group.Labels.ContainsKey(mono.Over))
                .OrderBy(m => m.Group.Labels[mono.Over] is double d ? d : double.NaN).ToList();
            if (ordered.Count < 2 || ordered.Any(m => m.Missing is not null))
            {
                foreach (var m in ordered)
                    yield return new GroupValue(m.Group.Name, m.Missing is null ? m.Value : double.NaN, m.Low, m.High, m.Seeds, null,
                        m.Missing ?? $"needs at least two values of {mono.Over} to order");
                continue;
            }
            for (int i = 0; i < ordered.Count; i++)
            {
                bool ok = i == 0 || (mono.Increasing ? ordered[i].Value > ordered[i - 1].Value : ordered[i].Value < ordered[i - 1].Value);
                var m = ordered[i];
                yield return new GroupValue(m.Group.Name, m.Value, m.Low, m.High, m.Seeds, ok,
                    ok ? null : $"not {(mono.Increasing ? "above" : "below")} the value at the previous {mono.Over}");
            }
        }
    }

    private static GroupValue CompareOne(Measured m, List<Measured> others, ExpectCompare cmp)
    {
        if (m.Missing is not null) return Judge(m, _ => true);
        // The matching group: equal on every label both carry, except the labels `other` names and, when it names a
        // plugin (optimizer, model, tuner), that plugin's hyperparameters.
        var ignored = cmp.Other.Select(o => o.Key).ToHashSet(StringComparer.Ordinal);
        bool Ignored(string key) => ignored.Contains(key) || ignored.Any(i => i is "optimizer" or "model" or "tuner" && key.StartsWith(i + ".", StringComparison.Ordinal));
        var matches = others.Where(o => o.Group.Key != m.Group.Key && m.Group.Labels.Keys.Intersect(o.Group.Labels.Keys)
            .Where(k => !Ignored(k)).All(k => RunLabels.Matches(m.Group.Labels[k], o.Group.Labels[k]))).ToList();
        if (matches.Count != 1)
            return new GroupValue(m.Group.Name, m.Value, m.Low, m.High, m.Seeds, null,
                matches.Count == 0 ? "no matching group for compare.other" : $"{matches.Count} groups match compare.other (make it more specific)");
        var o = matches[0];
        if (o.Missing is not null) return new GroupValue(m.Group.Name, m.Value, m.Low, m.High, m.Seeds, null, $"{o.Group.Name}: {o.Missing}");
        bool ok = Holds(m.Value, cmp.Relation, cmp.Factor * o.Value);
        return new GroupValue(m.Group.Name, m.Value, m.Low, m.High, m.Seeds, ok, $"vs {o.Group.Name} = {Fmt(o.Value)}");
    }

    private static SortedDictionary<string, object> Without(SortedDictionary<string, object> labels, IEnumerable<string> keys)
    {
        var copy = new SortedDictionary<string, object>(labels, StringComparer.Ordinal);
        foreach (var k in keys) copy.Remove(k);
        return copy;
    }

    private static List<Measured> Measure(ClaimSpec claim, ReportData data, List<RunRecord> runs)
    {
        IEnumerable<Group> groups = claim.PerRun
            ? runs.Select(r => new Group(r.RunId, $"{data.ConfigurationName(r)} seeds {r.InitSeed}/{r.DataSeed}", WithSeeds(r), [r]))
            : runs.GroupBy(r => r.ConfigurationKey).Select(g => new Group(g.Key, data.ConfigurationName(g.First()), g.First().Labels, g.ToList()));
        var result = new List<Measured>();
        foreach (var g in groups)
        {
            var values = g.Runs.Select(r => RunValue(claim, r)).Where(v => v is not null).Select(v => v!.Value).ToList();
            if (values.Count == 0) { result.Add(new Measured(g, double.NaN, double.NaN, double.NaN, 0, $"'{claim.Metric}' has no finite value in the window ({claim.Window})")); continue; }
            if (!claim.PerRun && values.Count < claim.MinSeeds)
            {
                result.Add(new Measured(g, double.NaN, double.NaN, double.NaN, values.Count, $"{values.Count} seed(s) with data, min_seeds is {claim.MinSeeds}"));
                continue;
            }
            var (med, lo, hi) = Bootstrap.MedianInterval(values);
            result.Add(new Measured(g, med, lo, hi, values.Count, null));
        }
        return result;
    }

    private static SortedDictionary<string, object> WithSeeds(RunRecord r) =>
        new(r.Labels, StringComparer.Ordinal) { ["init_seed"] = (double)r.InitSeed, ["data_seed"] = (double)r.DataSeed };

    /// <summary>The claim's statistic of one run over its window, or null when the window holds no finite value.</summary>
    public static double? RunValue(ClaimSpec claim, RunRecord run)
    {
        if (run.Trace?.Column(claim.Metric) is not { } column || run.Trace.Steps.Length == 0) return null;
        var steps = run.Trace.Steps;
        long last = steps[^1];
        var w = claim.Window;
        double from = w.FromStep ?? w.From * last, to = w.ToStep ?? (w.FromStep is not null ? long.MaxValue : w.To * last);
        var xs = new List<double>(); var ys = new List<double>();
        for (int i = 0; i < steps.Length; i++)
            if (steps[i] >= from && steps[i] <= to && column[i] is { } v && double.IsFinite(v)) { xs.Add(steps[i]); ys.Add(v); }
        if (ys.Count == 0) return null;
        return claim.Statistic switch
        {
            ClaimStatistic.Median => Bootstrap.Median(ys),
            ClaimStatistic.Mean => ys.Average(),
            ClaimStatistic.Min => ys.Min(),
            ClaimStatistic.Max => ys.Max(),
            ClaimStatistic.Final => ys[^1],
            ClaimStatistic.FractionTrue => ys.Count(y => y != 0) / (double)ys.Count,
            ClaimStatistic.Slope => ys.Count < 2 ? null : Slope(xs, ys),
            _ => null,
        };
    }

    /// <summary>Least-squares slope of y on x (per step).</summary>
    public static double Slope(IReadOnlyList<double> x, IReadOnlyList<double> y)
    {
        double mx = x.Average(), my = y.Average(), sxy = 0, sxx = 0;
        for (int i = 0; i < x.Count; i++) { sxy += (x[i] - mx) * (y[i] - my); sxx += (x[i] - mx) * (x[i] - mx); }
        return sxx == 0 ? double.NaN : sxy / sxx;
    }

    private static bool Matches(RunRecord r, IReadOnlyList<KeyValuePair<string, IReadOnlyList<object>>> where) =>
        where.All(kv => r.Labels.TryGetValue(kv.Key, out var v) && kv.Value.Any(w => RunLabels.Matches(v, w)));

    private static bool Holds(double v, string relation, double bound) => relation switch
    {
        ">" => v > bound, ">=" => v >= bound, "<" => v < bound, "<=" => v <= bound, _ => false,
    };

    public static string Describe(ClaimExpectation e) => e switch
    {
        // Bounds as written in the file (an exact toy's [3.7499999999, 3.7500000001] must not read as [3.75, 3.75]).
        ExpectBetween b => $"in [{Exact(b.Low)}, {Exact(b.High)}]",
        ExpectRelation r => $"{r.Relation} {Exact(r.Bound)}",
        ExpectMonotone m => $"{(m.Increasing ? "increasing" : "decreasing")} in {m.Over}",
        ExpectCompare c => $"{c.Relation} {(c.Factor == 1 ? "" : Fmt(c.Factor) + " × ")}the group with {string.Join(", ", c.Other.Select(o => $"{o.Key}={string.Join("|", o.Value.Select(RunLabels.Format))}"))}",
        _ => "",
    };

    private static string Exact(double v) => v.ToString("R", CultureInfo.InvariantCulture);

    public static string Fmt(double v) => double.IsNaN(v) ? "–" : v.ToString("G4", CultureInfo.InvariantCulture);
}
