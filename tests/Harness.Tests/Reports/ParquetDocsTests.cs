using System.Text.RegularExpressions;
using Harness.Abstractions;
using Harness.Host.Plugins;
using Harness.Tests.Integration;

namespace Harness.Tests.Reports;

/// <summary>docs/parquet.md lists every column the files hold, with the type DuckDB reads: checked against the files
/// of a real run and against the metrics every built-in probe declares.</summary>
[TestClass]
public sealed partial class ParquetDocsTests
{
    private sealed record Documented(Regex Name, string Text, string[] Types);

    [GeneratedRegex("`([^`]+)`")]
    private static partial Regex Backticked();

    /// <summary>The table rows of one "## file" section: names (with &lt;placeholders&gt; as wildcards) and types.</summary>
    private static List<Documented> Section(string heading)
    {
        var text = File.ReadAllText(Path.Combine(Paths.RepoRoot, "docs", "parquet.md"));
        int start = text.IndexOf("\n## " + heading, StringComparison.Ordinal);
        Assert.IsTrue(start >= 0, $"docs/parquet.md has no section '## {heading}'");
        int end = text.IndexOf("\n## ", start + 4, StringComparison.Ordinal);
        var rows = new List<Documented>();
        foreach (var line in text[start..(end < 0 ? text.Length : end)].Split('\n').Where(l => l.StartsWith("| `", StringComparison.Ordinal)))
        {
            var cells = line.Split(" | ");
            var types = Regex.Matches(cells[1], "BIGINT|DOUBLE|BOOLEAN|VARCHAR").Select(m => m.Value).ToArray();
            foreach (Match m in Backticked().Matches(cells[0]))
                rows.Add(new Documented(new Regex("^" + Regex.Replace(Regex.Escape(m.Groups[1].Value), "<[^>]+>", "[A-Za-z0-9_.]+") + "$"), m.Groups[1].Value, types));
        }
        return rows;
    }

    private static void Check(List<Documented> docs, string column, string type, string where)
    {
        var doc = docs.FirstOrDefault(d => d.Name.IsMatch(column));
        Assert.IsNotNull(doc, $"{where}: column '{column}' ({type}) is not documented in docs/parquet.md");
        CollectionAssert.Contains(doc.Types, type, $"{where}: column '{column}' is {type}, docs/parquet.md says {string.Join("/", doc.Types)} ({doc.Text})");
    }

    [TestMethod]
    public void EveryColumnOfARealTraceAndSummaryIsDocumentedWithItsType()
    {
        var trace = Section("trace.parquet");
        var traces = Directory.GetFiles(ReportFixture.MatrixDirectory, "trace.parquet", SearchOption.AllDirectories);
        Assert.IsTrue(traces.Length > 0);
        foreach (var f in traces)
            foreach (var (name, type) in DuckDb.Describe(f)) Check(trace, name, type, Path.GetRelativePath(ReportFixture.MatrixDirectory, f));
        var summary = Section("summary.parquet");
        foreach (var (name, type) in DuckDb.Describe(Path.Combine(ReportFixture.MatrixDirectory, "summary.parquet"))) Check(summary, name, type, "summary.parquet");
    }

    [TestMethod]
    public void EveryMetricOfTheBuiltInProbesIsDocumentedWithItsType()
    {
        var trace = Section("trace.parquet");
        var catalog = PluginCatalog.Load(Paths.PluginArtifacts);
        Assert.IsTrue(catalog.Probes.Count >= 10, "the built-in probes loaded");
        foreach (var (name, probe) in catalog.Probes)
        {
            // every optional output on: top-k and the smallest eigenvalue add columns
            var values = new Dictionary<string, object>();
            foreach (var hp in probe.Plugin.Hyperparameters)
                if (hp.Name == "top_k") values[hp.Name] = 3L;
                else if (hp.Name == "smallest") values[hp.Name] = true;
            var metrics = probe.Plugin.MetricsFor(new HyperparameterValues(probe.Plugin.Hyperparameters, values));
            foreach (var m in metrics)
                Check(trace, m.Name, TypeName(m.Type), $"probe {name}");
        }
    }

    [TestMethod]
    public void EveryMetricOfTheBuiltInTunersIsDocumentedWithItsType()
    {
        var trace = Section("trace.parquet");
        var catalog = PluginCatalog.Load(Paths.PluginArtifacts);
        Assert.IsTrue(catalog.Tuners.Count >= 7, "the built-in tuners loaded");
        foreach (var (name, tuner) in catalog.Tuners)
            foreach (var m in tuner.Plugin.MetricsFor(new HyperparameterValues(tuner.Plugin.Hyperparameters, new Dictionary<string, object>())))
                Check(trace, "tuner_" + m.Name, TypeName(m.Type), $"tuner {name}");
    }

    private static string TypeName(MetricType t) => t switch { MetricType.Int64 => "BIGINT", MetricType.Boolean => "BOOLEAN", _ => "DOUBLE" };
}
