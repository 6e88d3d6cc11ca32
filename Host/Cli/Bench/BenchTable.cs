using System.Globalization;

namespace Harness.Host.Cli.Bench;

/// <summary>A plain-text table for benchmark reports: a header row, then rows of cells, each column as wide as its
/// widest cell (the first column left-aligned, the others right-aligned unless listed in <c>leftAligned</c>).</summary>
public sealed class BenchTable(params string[] headers)
{
    private readonly List<string[]> _rows = new();
    private readonly HashSet<int> _left = [0];

    /// <summary>Columns (by index) printed left-aligned besides the first.</summary>
    public BenchTable LeftAligned(params int[] columns) { foreach (var c in columns) _left.Add(c); return this; }

    public void Add(params string[] cells) => _rows.Add(cells);

    public int Count => _rows.Count;

    public void Print(TextWriter output)
    {
        int n = Math.Max(headers.Length, _rows.Count == 0 ? 0 : _rows.Max(r => r.Length));
        var widths = Enumerable.Range(0, n).Select(c => new[] { headers }.Concat(_rows).Max(r => c < r.Length ? r[c].Length : 0)).ToArray();
        foreach (var row in new[] { headers }.Concat(_rows))
            output.WriteLine(string.Join("  ", Enumerable.Range(0, n).Select(c =>
            {
                string cell = c < row.Length ? row[c] : "";
                return _left.Contains(c) ? cell.PadRight(widths[c]) : cell.PadLeft(widths[c]);
            })).TrimEnd());
    }

    /// <summary>Invariant-culture number formatting for benchmark cells.</summary>
    public static string F(double x, string format = "F3") => x.ToString(format, CultureInfo.InvariantCulture);

    public static double Median(IEnumerable<double> values)
    {
        var xs = values.OrderBy(x => x).ToList();
        if (xs.Count == 0) return double.NaN;
        return xs.Count % 2 == 1 ? xs[xs.Count / 2] : (xs[xs.Count / 2 - 1] + xs[xs.Count / 2]) / 2;
    }

    /// <summary>The 1-, 5- and 15-minute load averages (/proc/loadavg), or "n/a".</summary>
    public static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? string.Join(" ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";
}
