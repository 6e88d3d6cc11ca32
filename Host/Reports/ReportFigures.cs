using Harness.Host.Output;
using ScottPlot;

namespace Harness.Host.Reports;

/// <summary>A plotted series as the page embeds it (the values drawn, not log-transformed): x, the median y over
/// seeds and the interval (equal to y for one seed).</summary>
public sealed record PlottedSeries(string Name, string Column, IReadOnlyList<string> RunIds, double[] X, double[] Y, double[] Low, double[] High);

/// <summary>One figure: id (file name), title, whether y is log scale, what it plots, and its SVG and PNG.</summary>
public sealed record Figure(string Id, string Title, string Caption, bool LogY, IReadOnlyList<PlottedSeries> Series, string Svg, byte[] Png);

/// <summary>Draws the report's figures with ScottPlot (fonts: DejaVu, from Debian's fonts-dejavu-core).</summary>
public static class ReportFigures
{
    public const int Width = 900, Height = 450;

    private enum Style { Line, Marked, Thin }

    static ReportFigures() => Fonts.Default = "DejaVu Sans";

    public static IReadOnlyList<Figure> Draw(ReportData data)
    {
        var figures = new List<Figure>();
        var configs = data.Configurations();
        Add(figures, Curves(data, configs, "loss", "Training loss", "median over seeds, shaded: 90 % bootstrap interval of the median",
            [("train_loss", Style.Line)], logY: true, yLabel: "train_loss"));
        Add(figures, Curves(data, configs, "sharpness", "Sharpness and stability threshold",
            "thick line: raw λ1(H) (sharpness); line with circles: preconditioned λ1(P^-1/2 H P^-1/2) (precond_sharpness); thin line: the optimizer's threshold",
            [("sharpness", Style.Line), ("precond_sharpness", Style.Marked), ("threshold", Style.Thin)], logY: true, yLabel: "eigenvalue",
            requireAny: ["sharpness", "precond_sharpness"]));
        Add(figures, Curves(data, configs, "edge_ratio", "Edge ratio (sharpness / threshold)",
            "thick line: edge_ratio (unpreconditioned optimizers), line with circles: precond_edge_ratio; the black line marks 1",
            [("edge_ratio", Style.Line), ("precond_edge_ratio", Style.Marked)], logY: false, yLabel: "ratio", reference: 1));
        if (data.Runs.Any(r => r.Trace?.Column("lr") is { } lr && lr.Where(v => v is not null).Select(v => v!.Value).Distinct().Count() > 1))
            Add(figures, Curves(data, configs, "learning_rate", "Learning rate η_t", "runs whose η changes (schedules, tuners)",
                [("lr", Style.Line)], logY: true, yLabel: "lr"));
        if (data.Runs.Any(r => r.Summary.TargetLoss is not null))
        {
            Add(figures, TimeToTarget(data, configs));
            Add(figures, PerformanceProfile(data));
        }
        Add(figures, ProbeCost(data));
        return figures;
    }

    private static void Add(List<Figure> figures, Figure? f) { if (f is not null) figures.Add(f); }

    private static Figure? Curves(ReportData data, IReadOnlyList<IGrouping<string, RunRecord>> configs, string id, string title, string caption,
        (string Column, Style Style)[] columns, bool logY, string yLabel, double? reference = null, string[]? requireAny = null)
    {
        if (requireAny is not null && !data.Runs.Any(r => requireAny.Any(c => r.Trace?.Column(c)?.Any(v => v is not null) == true))) return null;
        var plt = new Plot();
        var series = new List<PlottedSeries>();
        var palette = new ScottPlot.Palettes.Category10();
        int colorIndex = 0;
        foreach (var config in configs)
        {
            var color = palette.GetColor(colorIndex++);
            string name = data.ConfigurationName(config.First());
            foreach (var (column, style) in columns)
            {
                if (SeriesAggregator.Band(name, config.ToList(), column) is not { } band) continue;
                var keep = Enumerable.Range(0, band.Steps.Length).Where(i => !logY || (band.Median[i] > 0 && band.Low[i] > 0)).ToArray();
                if (keep.Length == 0) continue;
                var s = new PlottedSeries(name, column, band.RunIds, keep.Select(i => band.Steps[i]).ToArray(), keep.Select(i => band.Median[i]).ToArray(),
                    keep.Select(i => band.Low[i]).ToArray(), keep.Select(i => band.High[i]).ToArray());
                series.Add(s);
                Func<double, double> f = logY ? Math.Log10 : v => v;
                if (band.RunIds.Count > 1)
                {
                    var fill = plt.Add.FillY(s.X, s.Low.Select(f).ToArray(), s.High.Select(f).ToArray());
                    fill.FillStyle.Color = color.WithAlpha(0.2);
                    fill.LineStyle.Width = 0;
                }
                var line = s.X.Length == 1 ? (IHasLine)plt.Add.Scatter(s.X, s.Y.Select(f).ToArray()) : plt.Add.ScatterLine(s.X, s.Y.Select(f).ToArray());
                var scatter = (ScottPlot.Plottables.Scatter)line;
                scatter.Color = color;
                // Line patterns (dashes) are lost in Skia's SVG output, so series are told apart by width and markers.
                scatter.LineWidth = style == Style.Thin ? 1 : 2;
                scatter.MarkerShape = style == Style.Marked ? MarkerShape.OpenCircle : MarkerShape.None;
                scatter.MarkerSize = style == Style.Marked ? 5 : 0;
                scatter.LegendText = columns.Length > 1 ? $"{name}: {column}" : name;
            }
        }
        if (series.Count == 0) return null;
        if (reference is { } r)
        {
            var hl = plt.Add.HorizontalLine(logY ? Math.Log10(r) : r);
            hl.Color = Colors.Black;
            hl.LineWidth = 1.5f;
        }
        if (logY) LogAxis(plt, series.SelectMany(x => x.Low.Concat(x.Y)).Min(), series.SelectMany(x => x.High.Concat(x.Y)).Max());
        return Finish(plt, id, title, caption, logY, series, "step", yLabel + (logY ? " (log scale)" : ""));
    }

    /// <summary>Log-scale y ticks (the plot holds log10 values): decades when the data span several, else
    /// 1-2-5 steps, or every 1..9 within about one decade, so a sharpness of 20-110 still has labelled ticks.</summary>
    private static void LogAxis(Plot plt, double min, double max)
    {
        var ticks = new ScottPlot.TickGenerators.NumericManual();
        int lo = (int)Math.Floor(Math.Log10(min)), hi = (int)Math.Ceiling(Math.Log10(max));
        double span = Math.Log10(max) - Math.Log10(min);
        int[] mantissas = span > 2.5 ? [1] : span > 1 ? [1, 2, 5] : [1, 2, 3, 4, 5, 6, 7, 8, 9];
        for (int k = lo; k <= hi; k++)
            for (int m = 1; m <= 9; m++)
            {
                double v = m * Math.Pow(10, k), y = Math.Log10(v);
                if (mantissas.Contains(m)) ticks.AddMajor(y, Label(v));
                else ticks.AddMinor(y);
            }
        plt.Axes.Left.TickGenerator = ticks;
    }

    internal static string Label(double v) => v is >= 1e-3 and < 1e4
        ? v.ToString("G3", System.Globalization.CultureInfo.InvariantCulture)
        : v.ToString("0e0", System.Globalization.CultureInfo.InvariantCulture);

    private static Figure Finish(Plot plt, string id, string title, string caption, bool logY, IReadOnlyList<PlottedSeries> series, string x, string y)
    {
        plt.Title(title);
        plt.XLabel(x);
        plt.YLabel(y);
        if (plt.GetPlottables().Any(p => p.LegendItems.Any(l => !string.IsNullOrEmpty(l.LabelText)))) plt.ShowLegend(Edge.Right);
        string svg = plt.GetSvgXml(Width, Height);
        int start = svg.IndexOf("<svg", StringComparison.Ordinal);
        return new Figure(id, title, caption, logY, series, start > 0 ? svg[start..] : svg, plt.GetImageBytes(Width, Height, ImageFormat.Png));
    }

    /// <summary>Steps to reach training.target_loss per configuration (median over the seeds that reached it).</summary>
    private static Figure? TimeToTarget(ReportData data, IReadOnlyList<IGrouping<string, RunRecord>> configs)
    {
        var rows = configs.Select(c => (name: data.ConfigurationName(c.First()), runs: c.ToList(),
            steps: c.Where(r => r.Summary.StepsToTarget is not null).Select(r => (double)r.Summary.StepsToTarget!.Value).ToList())).ToList();
        if (rows.All(r => r.steps.Count == 0)) return null;
        var plt = new Plot();
        var series = new List<PlottedSeries>();
        for (int i = 0; i < rows.Count; i++)
        {
            if (rows[i].steps.Count == 0) continue;
            var (m, lo, hi) = Bootstrap.MedianInterval(rows[i].steps);
            plt.Add.Bar(position: i, value: m);
            series.Add(new PlottedSeries(rows[i].name, "steps_to_target", rows[i].runs.Where(r => r.Summary.StepsToTarget is not null).Select(r => r.RunId).ToList(),
                [i], [m], [lo], [hi]));
        }
        plt.Axes.Bottom.SetTicks(Enumerable.Range(0, rows.Count).Select(i => (double)i).ToArray(), rows.Select(r => r.name).ToArray());
        plt.Axes.Margins(bottom: 0);
        return Finish(plt, "time_to_target", "Steps to the target loss", "median over the seeds that reached training.target_loss (configurations that never reached it have no bar)",
            false, series, "configuration", "steps");
    }

    /// <summary>AlgoPerf-style performance profile: per optimizer, the fraction of workloads (model configurations)
    /// on which its best configuration reached the target within τ times the steps of the fastest optimizer.</summary>
    public static IReadOnlyList<PlottedSeries> ProfileSeries(ReportData data)
    {
        var reached = data.Runs.Where(r => r.Usable && r.Summary.StepsToTarget is not null).ToList();
        var workloads = data.Runs.GroupBy(Workload).Select(g => g.Key).ToList();
        var optimizers = data.Runs.Select(r => r.Manifest.Optimizer + (r.Labels.GetValueOrDefault("tuner") is string t ? "+" + t : "")).Distinct().Order(StringComparer.Ordinal).ToList();
        // best (fewest steps, median over seeds) configuration of each optimizer on each workload
        var best = new Dictionary<(string, string), double>();
        foreach (var g in reached.GroupBy(r => (Opt(r), Workload(r))))
            best[g.Key] = g.GroupBy(r => r.ConfigurationKey).Min(c => Bootstrap.Median(c.Select(r => (double)r.Summary.StepsToTarget!.Value).ToList()));
        var ratios = optimizers.ToDictionary(o => o, o => workloads.Select(w =>
        {
            var fastest = optimizers.Where(x => best.ContainsKey((x, w))).Select(x => best[(x, w)]).DefaultIfEmpty(double.NaN).Min();
            return best.TryGetValue((o, w), out var s) ? s / fastest : double.PositiveInfinity;
        }).ToList());
        var finite = ratios.Values.SelectMany(v => v).Where(double.IsFinite).ToList();
        if (finite.Count == 0) return [];
        double tauMax = Math.Max(finite.Max() * 1.25, 1.5);
        var taus = finite.Append(1).Append(tauMax).Distinct().Order().ToArray();
        return optimizers.Select(o => new PlottedSeries(o, "performance_profile", reached.Where(r => Opt(r) == o).Select(r => r.RunId).ToList(),
            taus, taus.Select(tau => ratios[o].Count(r => r <= tau) / (double)workloads.Count).ToArray(),
            taus.Select(_ => double.NaN).ToArray(), taus.Select(_ => double.NaN).ToArray())).ToList();
    }

    private static string Opt(RunRecord r) => r.Manifest.Optimizer + (r.Labels.GetValueOrDefault("tuner") is string t ? "+" + t : "");
    private static string Workload(RunRecord r) => RunLabels.ConfigurationKey(new SortedDictionary<string, object>(
        r.Labels.Where(kv => kv.Key == "model" || kv.Key.StartsWith("model.", StringComparison.Ordinal)).ToDictionary(kv => kv.Key, kv => kv.Value), StringComparer.Ordinal));

    private static Figure? PerformanceProfile(ReportData data)
    {
        var series = ProfileSeries(data);
        if (series.Count == 0) return null;
        var plt = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        for (int i = 0; i < series.Count; i++)
        {
            var s = series[i];
            var line = plt.Add.ScatterLine(s.X, s.Y);
            line.ConnectStyle = ConnectStyle.StepHorizontal;
            line.Color = palette.GetColor(i);
            line.LineWidth = 2;
            line.LegendText = s.Name;
        }
        plt.Axes.SetLimitsY(-0.05, 1.05);
        return Finish(plt, "performance_profile", "Performance profile (steps to target)",
            "ρ(τ): fraction of workloads on which the optimizer's best configuration reached the target within τ × the steps of the fastest optimizer",
            false, series, "τ (ratio to the fastest)", "fraction of workloads");
    }

    /// <summary>Hessian-vector products per run of each probe (median over runs), as bars.</summary>
    private static Figure? ProbeCost(ReportData data)
    {
        var probes = data.Runs.Where(r => r.Trace is not null).SelectMany(r => r.Trace!.Columns.Keys)
            .Where(c => c.StartsWith("probe_", StringComparison.Ordinal) && c.EndsWith("_hvps", StringComparison.Ordinal)).Distinct().Order(StringComparer.Ordinal).ToList();
        if (probes.Count == 0) return null;
        var plt = new Plot();
        var series = new List<PlottedSeries>();
        for (int i = 0; i < probes.Count; i++)
        {
            var totals = data.Runs.Where(r => r.Trace?.Column(probes[i]) is not null)
                .Select(r => (r.RunId, total: r.Trace!.Column(probes[i])!.Sum(v => v ?? 0))).ToList();
            double m = Bootstrap.Median(totals.Select(t => t.total).ToList());
            plt.Add.Bar(position: i, value: m);
            series.Add(new PlottedSeries(probes[i]["probe_".Length..^"_hvps".Length], probes[i], totals.Select(t => t.RunId).ToList(), [i], [m],
                [totals.Min(t => t.total)], [totals.Max(t => t.total)]));
        }
        plt.Axes.Bottom.SetTicks(Enumerable.Range(0, probes.Count).Select(i => (double)i).ToArray(), series.Select(s => s.Name).ToArray());
        plt.Axes.Margins(bottom: 0);
        return Finish(plt, "probe_cost", "Probe cost: Hessian-vector products per run", "median over runs of each probe's total HVPs (counted, not timed)",
            false, series, "probe", "HVPs per run");
    }
}
