using Parquet;

namespace Harness.Host.Output;

/// <summary>A trace.parquet read into memory: the steps and every value column as doubles (null = not measured;
/// Int64 and Boolean columns converted, false/true as 0/1). Rows are sorted by step.</summary>
public sealed class TraceFile
{
    public required long[] Steps { get; init; }
    public required IReadOnlyDictionary<string, double?[]> Columns { get; init; }

    public double?[]? Column(string name) => Columns.TryGetValue(name, out var c) ? c : null;

    /// <summary>Reads the file, or returns null when it is missing or unreadable (a run that never wrote a row).</summary>
    public static TraceFile? TryRead(string path)
    {
        if (!File.Exists(path) || new FileInfo(path).Length == 0) return null;
        try
        {
            using var stream = File.OpenRead(path);
            var reader = ParquetReader.CreateAsync(stream).GetAwaiter().GetResult();
            try { return Read(reader); }
            finally { reader.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
        }
        catch (Exception e) when (e is IOException or InvalidDataException or NotSupportedException or ArgumentException or InvalidOperationException) { return null; }
    }

    private static TraceFile Read(ParquetReader reader)
    {
        var fields = reader.Schema.GetDataFields();
        var stepField = fields.First(f => f.Name == TraceSchema.StepColumn);
        var names = fields.Where(f => f.Name is not (TraceSchema.StepColumn or TraceSchema.MatrixColumn or TraceSchema.RunIdColumn))
            .Select(f => f.Name).ToList();
        var steps = new List<long>();
        var columns = names.ToDictionary(n => n, _ => new List<double?>(), StringComparer.Ordinal);
        for (int g = 0; g < reader.RowGroupCount; g++)
        {
            using var rg = reader.OpenRowGroupReader(g);
            var s = new long[rg.RowCount];
            rg.ReadAsync<long>(stepField, s.AsMemory()).GetAwaiter().GetResult();
            steps.AddRange(s);
            foreach (var n in names) columns[n].AddRange(TraceSchema.ReadAsDoubles(rg, reader.Schema, n) ?? new double?[s.Length]);
        }
        var order = Enumerable.Range(0, steps.Count).OrderBy(i => steps[i]).ToArray();
        return new TraceFile
        {
            Steps = order.Select(i => steps[i]).ToArray(),
            Columns = columns.ToDictionary(kv => kv.Key, kv => order.Select(i => kv.Value[i]).ToArray(), StringComparer.Ordinal),
        };
    }
}
