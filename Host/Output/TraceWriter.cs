using Parquet;
using Parquet.Schema;

namespace Harness.Host.Output;

/// <summary>
/// Appends one row per step to a run's trace. Rows are buffered and written every <see cref="FlushRows"/> rows or
/// <see cref="FlushInterval"/> as a new part file, <c>trace.parts/part-NNNNNNNN.parquet</c> beside the trace (a whole
/// Parquet file of one row group, written to a .tmp name and renamed), so a flush costs the same at step 10 and at
/// step 10 million, and a killed process leaves readable parts that lack at most the last interval. While a run is
/// going (or after a kill) DuckDB reads the parts as one trace: <c>read_parquet('&lt;run&gt;/trace.parts/*.parquet')</c>.
/// <see cref="Dispose"/> compacts the parts into <c>trace.parquet</c> (one pass, written to trace.parquet.tmp and
/// renamed) and deletes them; <see cref="Recover"/> does the same for the parts a killed process left.
/// The columns and their types are <see cref="TraceSchema"/>'s.
/// </summary>
public sealed class TraceWriter : IDisposable
{
    /// <summary>Rows per row group of the compacted trace (consecutive parts are merged up to this size).</summary>
    public const int CompactedRowGroupRows = 100_000;

    private readonly string _path;
    private readonly string _parts;
    private readonly TraceSchema _schema;
    private readonly List<long> _steps = new();
    private readonly List<double?[]> _rows = new();
    private DateTime _lastFlush = DateTime.UtcNow;
    private int _nextPart;
    private bool _disposed;

    /// <summary>Starts a new trace at <paramref name="path"/>, replacing an existing one and its parts (callers keep a
    /// previous attempt first: see <see cref="Recover"/>).</summary>
    public TraceWriter(string path, TraceSchema schema)
    {
        _path = path;
        _parts = PartsFolder(path);
        _schema = schema;
        Columns = schema.Columns.Select(c => c.Name).ToList();
        if (File.Exists(path)) File.Delete(path);
        if (File.Exists(path + ".tmp")) File.Delete(path + ".tmp");
        if (Directory.Exists(_parts)) Directory.Delete(_parts, true);
    }

    public IReadOnlyList<string> Columns { get; }
    public int FlushRows { get; init; } = 10_000;
    public TimeSpan FlushInterval { get; init; } = TimeSpan.FromSeconds(2);
    public long RowsWritten { get; private set; }

    /// <summary>The folder of a trace's part files (<c>trace.parts</c> beside <c>trace.parquet</c>).</summary>
    public static string PartsFolder(string tracePath) => Path.ChangeExtension(tracePath, ".parts");

    /// <summary>Adds a row; <paramref name="values"/> is aligned with <see cref="Columns"/> (null = not measured).</summary>
    public void Append(long step, double?[] values)
    {
        if (values.Length != Columns.Count) throw new ArgumentException($"row has {values.Length} values, the trace {Columns.Count} columns");
        _steps.Add(step);
        _rows.Add(values);
        if (_rows.Count >= FlushRows || DateTime.UtcNow - _lastFlush >= FlushInterval) Flush();
    }

    /// <summary>Writes the buffered rows as the next part file (durable on return).</summary>
    public void Flush()
    {
        _lastFlush = DateTime.UtcNow;
        if (_rows.Count == 0) return;
        Directory.CreateDirectory(_parts);
        string part = Path.Combine(_parts, $"part-{_nextPart:D8}.parquet"), tmp = part + ".tmp";
        try
        {
            using (var stream = new FileStream(tmp, FileMode.Create, FileAccess.ReadWrite))
            {
                var writer = ParquetWriter.CreateAsync(_schema.Parquet, stream, _schema.Options).GetAwaiter().GetResult();
                try
                {
                    using var rg = writer.CreateRowGroup();
                    _schema.WriteRowGroup(rg, _steps, _rows);
                }
                finally { writer.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
                stream.Flush(flushToDisk: true);
            }
            File.Move(tmp, part);
        }
        catch (IOException)
        {
            // Disk full or the like: the rows stay buffered (the next flush retries) and the half-written part goes.
            TryDelete(tmp);
            throw;
        }
        _nextPart++;
        RowsWritten += _rows.Count;
        _steps.Clear();
        _rows.Clear();
    }

    /// <summary>Flushes, then compacts the parts into trace.parquet.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Flush();
        Compact(_path);
    }

    /// <summary>Turns the parts a killed process left into trace.parquet (so every reader of a trace finds one file);
    /// returns true when it did. Parts beside an existing trace.parquet are the leftovers of a compaction that
    /// finished (the rename happens before the parts are deleted) and are deleted.</summary>
    public static bool Recover(string tracePath)
    {
        string parts = PartsFolder(tracePath);
        if (!Directory.Exists(parts)) return false;
        if (File.Exists(tracePath))
        {
            Directory.Delete(parts, true);
            return false;
        }
        Compact(tracePath);
        return File.Exists(tracePath);
    }

    /// <summary>Merges the part files, in order, into <paramref name="tracePath"/> (parts of up to
    /// <see cref="CompactedRowGroupRows"/> rows together become one row group) and deletes them. Column types are
    /// taken from the parts' schema, so every Parquet column type the writer produces is copied as it is.</summary>
    public static void Compact(string tracePath)
    {
        string parts = PartsFolder(tracePath);
        var files = Directory.Exists(parts) ? Directory.GetFiles(parts, "part-*.parquet").Order(StringComparer.Ordinal).ToList() : [];
        if (files.Count == 0)
        {
            if (Directory.Exists(parts)) Directory.Delete(parts, true);
            return;
        }
        string tmp = tracePath + ".tmp";
        try
        {
            using (var output = new FileStream(tmp, FileMode.Create, FileAccess.ReadWrite))
            {
                ParquetWriter? writer = null;
                string layout = "";
                DataField[] fields = [];
                IColumnBuffer[] buffers = [];
                long buffered = 0;
                try
                {
                    foreach (var file in files)
                    {
                        using var input = File.OpenRead(file);
                        ParquetReader reader;
                        try { reader = ParquetReader.CreateAsync(input).GetAwaiter().GetResult(); }
                        catch (Exception e) when (e is IOException or InvalidDataException or InvalidOperationException or NotSupportedException or ArgumentException)
                        {
                            throw new InvalidDataException($"{file}: not a readable Parquet part ({e.Message})", e);
                        }
                        try
                        {
                            if (writer is null)
                            {
                                writer = ParquetWriter.CreateAsync(reader.Schema, output, TraceSchema.WriterOptions()).GetAwaiter().GetResult();
                                fields = reader.Schema.GetDataFields();
                                layout = Layout(fields);
                                buffers = fields.Select(ColumnBuffer.For).ToArray();
                            }
                            else if (Layout(reader.Schema.GetDataFields()) != layout)
                                throw new InvalidDataException($"{file}: its columns differ from the first part's");
                            for (int g = 0; g < reader.RowGroupCount; g++)
                            {
                                using var rg = reader.OpenRowGroupReader(g);
                                int count = checked((int)rg.RowCount);
                                for (int c = 0; c < fields.Length; c++) buffers[c].Read(rg, fields[c], count);
                                buffered += count;
                                if (buffered >= CompactedRowGroupRows) { WriteGroup(writer, fields, buffers); buffered = 0; }
                            }
                        }
                        finally { reader.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
                    }
                    if (writer is not null && buffered > 0) WriteGroup(writer, fields, buffers);
                }
                finally { writer?.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
                output.Flush(flushToDisk: true);
            }
            File.Move(tmp, tracePath, overwrite: true);
        }
        catch
        {
            TryDelete(tmp); // the parts stay: nothing is lost, a later Recover tries again
            throw;
        }
        Directory.Delete(parts, true);
    }

    private static string Layout(DataField[] fields) => string.Join(",", fields.Select(f => $"{f.Name}:{f.ClrType.Name}:{f.IsNullable}"));

    private static void WriteGroup(ParquetWriter writer, DataField[] fields, IColumnBuffer[] buffers)
    {
        using var rg = writer.CreateRowGroup();
        for (int c = 0; c < fields.Length; c++) buffers[c].WriteAndClear(rg, fields[c]);
    }

    private static void TryDelete(string file)
    {
        try { File.Delete(file); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    /// <summary>The values of one column gathered over several row groups, of the column's own CLR type.</summary>
    private interface IColumnBuffer
    {
        void Read(ParquetRowGroupReader rg, DataField field, int count);
        void WriteAndClear(ParquetRowGroupWriter rg, DataField field);
    }

    private static class ColumnBuffer
    {
        public static IColumnBuffer For(DataField field)
        {
            var type = field.ClrType;
            if (type == typeof(string)) return new Strings();
            if (!type.IsValueType) throw new NotSupportedException($"trace column '{field.Name}' has type {type.Name}, which compaction does not copy");
            var generic = field.IsNullable ? typeof(Nullables<>) : typeof(Values<>);
            return (IColumnBuffer)Activator.CreateInstance(generic.MakeGenericType(type))!;
        }
    }

    private sealed class Values<T> : IColumnBuffer where T : struct
    {
        private readonly List<T> _data = new();
        public void Read(ParquetRowGroupReader rg, DataField field, int count)
        {
            var a = new T[count];
            rg.ReadAsync<T>(field, a.AsMemory()).GetAwaiter().GetResult();
            _data.AddRange(a);
        }
        public void WriteAndClear(ParquetRowGroupWriter rg, DataField field)
        {
            rg.WriteAsync<T>(field, _data.ToArray().AsMemory()).GetAwaiter().GetResult();
            _data.Clear();
        }
    }

    private sealed class Nullables<T> : IColumnBuffer where T : struct
    {
        private readonly List<T?> _data = new();
        public void Read(ParquetRowGroupReader rg, DataField field, int count)
        {
            var a = new T?[count];
            rg.ReadAsync<T>(field, a.AsMemory()).GetAwaiter().GetResult();
            _data.AddRange(a);
        }
        public void WriteAndClear(ParquetRowGroupWriter rg, DataField field)
        {
            rg.WriteAsync<T>(field, (ReadOnlyMemory<T?>)_data.ToArray().AsMemory()).GetAwaiter().GetResult();
            _data.Clear();
        }
    }

    private sealed class Strings : IColumnBuffer
    {
        private readonly List<string> _data = new();
        public void Read(ParquetRowGroupReader rg, DataField field, int count)
        {
            var a = new string[count];
            rg.ReadAsync(field, a.AsMemory()).GetAwaiter().GetResult();
            _data.AddRange(a);
        }
        public void WriteAndClear(ParquetRowGroupWriter rg, DataField field)
        {
            rg.WriteAsync(field, _data.ToArray()).GetAwaiter().GetResult();
            _data.Clear();
        }
    }
}
