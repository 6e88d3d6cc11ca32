using Parquet;

namespace Harness.Host.Output;

/// <summary>
/// Appends one row per step to a run's trace.parquet. Rows are buffered and written as a new row group (the file
/// re-closed with a complete footer each time, in a copy that atomically replaces the file) every <see cref="FlushRows"/> rows or <see cref="FlushInterval"/>,
/// so a killed process leaves a readable file that lacks at most the last interval.
/// The columns and their types are <see cref="TraceSchema"/>'s.
/// </summary>
public sealed class TraceWriter : IDisposable
{
    private readonly string _path;
    private readonly TraceSchema _schema;
    private readonly List<long> _steps = new();
    private readonly List<double?[]> _rows = new();
    private DateTime _lastFlush = DateTime.UtcNow;

    public TraceWriter(string path, TraceSchema schema)
    {
        _path = path;
        _schema = schema;
        Columns = schema.Columns.Select(c => c.Name).ToList();
        if (File.Exists(path)) File.Delete(path);
        if (File.Exists(path + ".tmp")) File.Delete(path + ".tmp");
    }

    public IReadOnlyList<string> Columns { get; }
    public int FlushRows { get; init; } = 500;
    public TimeSpan FlushInterval { get; init; } = TimeSpan.FromSeconds(2);
    public long RowsWritten { get; private set; }

    /// <summary>Adds a row; <paramref name="values"/> is aligned with <see cref="Columns"/> (null = not measured).</summary>
    public void Append(long step, double?[] values)
    {
        if (values.Length != Columns.Count) throw new ArgumentException($"row has {values.Length} values, the trace {Columns.Count} columns");
        _steps.Add(step);
        _rows.Add(values);
        if (_rows.Count >= FlushRows || DateTime.UtcNow - _lastFlush >= FlushInterval) Flush();
    }

    public void Flush()
    {
        _lastFlush = DateTime.UtcNow;
        if (_rows.Count == 0) return;
        bool append = File.Exists(_path) && new FileInfo(_path).Length > 0;
        // Appending a row group rewrites the footer in place: a process killed in the middle of that would leave a
        // file without a valid footer. So the new row group goes into a copy that replaces the file atomically.
        string tmp = _path + ".tmp";
        if (append) File.Copy(_path, tmp, overwrite: true);
        using (var stream = new FileStream(tmp, append ? FileMode.Open : FileMode.Create, FileAccess.ReadWrite))
        {
            var writer = ParquetWriter.CreateAsync(_schema.Parquet, stream, _schema.Options, append: append).GetAwaiter().GetResult();
            try
            {
                using var rg = writer.CreateRowGroup();
                _schema.WriteRowGroup(rg, _steps, _rows);
            }
            finally { writer.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
            stream.Flush(flushToDisk: true);
        }
        File.Move(tmp, _path, overwrite: true);
        RowsWritten += _rows.Count;
        _steps.Clear();
        _rows.Clear();
    }

    public void Dispose() => Flush();
}
