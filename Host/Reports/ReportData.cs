using Harness.Host.Output;

namespace Harness.Host.Reports;

/// <summary>One run as the report sees it: manifest, labels (<see cref="RunLabels"/>), summary row and trace (null
/// when the run wrote none).</summary>
public sealed record RunRecord(RunManifest Manifest, SortedDictionary<string, object> Labels, SummaryWriter.Row Summary, TraceFile? Trace)
{
    public string RunId => Manifest.RunId;
    public long InitSeed => Manifest.InitSeed;
    public long DataSeed => Manifest.DataSeed;
    /// <summary>Identifies the configuration: every label, not the seeds (runs differing only by seed share it).</summary>
    public string ConfigurationKey => RunLabels.ConfigurationKey(Labels);
    public string Status => Manifest.Status.ToString().ToLowerInvariant();
    public bool Usable => Manifest.Status == RunStatus.Completed;
}

/// <summary>The runs of one matrix folder, and the configurations they form.</summary>
public sealed class ReportData
{
    public required string Matrix { get; init; }
    public required string Directory { get; init; }
    public required IReadOnlyList<RunRecord> Runs { get; init; }

    /// <summary>Labels whose value differs between runs (the swept ones); legends show only these.</summary>
    /// A label a run does not carry (another optimizer's hyperparameter) does not count as a value.
    public IReadOnlyList<string> SweptLabels => _swept ??= Runs.SelectMany(r => r.Labels.Keys).Distinct()
        .Where(k => Runs.Where(r => r.Labels.ContainsKey(k)).Select(r => RunLabels.Format(r.Labels[k])).Distinct().Count() > 1)
        .Order(StringComparer.Ordinal).ToList();
    private IReadOnlyList<string>? _swept;

    /// <summary>Short name of a configuration: its optimizer (and tuner) and the swept hyperparameters, e.g. "gd lr=0.03".</summary>
    public string ConfigurationName(RunRecord run)
    {
        var parts = new List<string> { run.Manifest.Optimizer };
        if (run.Labels.GetValueOrDefault("tuner") is string t) parts.Add("+" + t);
        foreach (var k in SweptLabels.Where(k => k is not ("optimizer" or "tuner")))
            if (run.Labels.TryGetValue(k, out var v)) parts.Add($"{(k == "model" ? "" : k[(k.IndexOf('.') + 1)..] + "=")}{RunLabels.Format(v)}");
        return string.Join(" ", parts);
    }

    /// <summary>Runs grouped by configuration (seeds pooled), in run-id order of their first run.</summary>
    public IReadOnlyList<IGrouping<string, RunRecord>> Configurations() =>
        Runs.GroupBy(r => r.ConfigurationKey).OrderBy(g => g.First(), Comparer<RunRecord>.Create(Compare)).ToList();

    /// <summary>By optimizer, then by each swept label (numbers by value).</summary>
    private int Compare(RunRecord a, RunRecord b)
    {
        int c = string.CompareOrdinal(a.Manifest.Optimizer, b.Manifest.Optimizer);
        foreach (var k in SweptLabels)
        {
            if (c != 0) return c;
            bool ha = a.Labels.TryGetValue(k, out var va), hb = b.Labels.TryGetValue(k, out var vb);
            c = !ha || !hb ? ha.CompareTo(hb)
                : va is double x && vb is double y ? x.CompareTo(y) : string.CompareOrdinal(RunLabels.Format(va!), RunLabels.Format(vb!));
        }
        return c;
    }

    public static ReportData Load(string matrixDir)
    {
        var dir = Path.GetFullPath(matrixDir);
        var runs = SummaryWriter.LoadManifests(dir).Select(m =>
        {
            var trace = TraceFile.TryRead(Path.Combine(dir, m.RunId, m.TraceFile));
            var row = SummaryWriter.RowOf(m, trace);
            return new RunRecord(m, row.Labels, row, trace);
        }).ToList();
        string matrix = runs.FirstOrDefault()?.Manifest.Matrix ?? Path.GetFileName(dir.TrimEnd(Path.DirectorySeparatorChar));
        return new ReportData { Matrix = matrix, Directory = dir, Runs = runs };
    }
}
