namespace Harness.Host.Reports;

/// <summary>Medians over seeds with a percentile-bootstrap interval of the median. The resampling is seeded, so a
/// report is reproducible; with one value the interval is that value.</summary>
public static class Bootstrap
{
    public const int Resamples = 2000;
    public const double Level = 0.9;

    public static double Median(IReadOnlyList<double> values)
    {
        if (values.Count == 0) return double.NaN;
        var s = values.Order().ToArray();
        int n = s.Length;
        return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    }

    /// <summary>Median and its (1 − <paramref name="level"/>)/2 … (1 + level)/2 percentile-bootstrap interval.</summary>
    public static (double Median, double Low, double High) MedianInterval(IReadOnlyList<double> values, double level = Level,
        int resamples = Resamples, int seed = 20261202)
    {
        double m = Median(values);
        if (values.Count <= 1) return (m, m, m);
        var rng = new Random(seed);
        var medians = new double[resamples];
        var sample = new double[values.Count];
        for (int b = 0; b < resamples; b++)
        {
            for (int i = 0; i < sample.Length; i++) sample[i] = values[rng.Next(values.Count)];
            medians[b] = Median(sample);
        }
        Array.Sort(medians);
        return (m, Percentile(medians, (1 - level) / 2), Percentile(medians, (1 + level) / 2));
    }

    /// <summary>Linear interpolation between order statistics of a sorted array.</summary>
    public static double Percentile(double[] sorted, double q)
    {
        double pos = q * (sorted.Length - 1);
        int lo = (int)Math.Floor(pos), hi = (int)Math.Ceiling(pos);
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
    }
}

/// <summary>A curve of one configuration: at each step measured by all its seeds' runs, the median over seeds and
/// the bootstrap interval (equal to the value when there is one seed).</summary>
public sealed record SeriesBand(string Name, IReadOnlyList<string> RunIds, double[] Steps, double[] Median, double[] Low, double[] High);

public static class SeriesAggregator
{
    /// <summary>The band of <paramref name="column"/> over the runs (seeds) of one configuration: steps where every
    /// run has a finite value. Null when no step qualifies.</summary>
    public static SeriesBand? Band(string name, IReadOnlyList<RunRecord> runs, string column)
    {
        var perRun = runs.Where(r => r.Trace?.Column(column) is not null).Select(r =>
        {
            var c = r.Trace!.Column(column)!;
            var d = new Dictionary<long, double>();
            for (int i = 0; i < c.Length; i++)
                if (c[i] is { } v && double.IsFinite(v)) d[r.Trace.Steps[i]] = v;
            return (r.RunId, d);
        }).Where(x => x.d.Count > 0).ToList();
        if (perRun.Count == 0) return null;
        var steps = perRun.Select(x => (IEnumerable<long>)x.d.Keys).Aggregate((a, b) => a.Intersect(b)).Order().ToArray();
        if (steps.Length == 0) return null;
        var med = new double[steps.Length]; var lo = new double[steps.Length]; var hi = new double[steps.Length];
        for (int i = 0; i < steps.Length; i++)
        {
            var values = perRun.Select(x => x.d[steps[i]]).ToList();
            (med[i], lo[i], hi[i]) = Bootstrap.MedianInterval(values);
        }
        return new SeriesBand(name, perRun.Select(x => x.RunId).ToList(), steps.Select(s => (double)s).ToArray(), med, lo, hi);
    }
}
