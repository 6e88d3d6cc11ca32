using Harness.Abstractions;
using Parquet;
using Parquet.Schema;

namespace Harness.Host.Output;

/// <summary>A trace column: name and Parquet type (see <see cref="MetricType"/>).</summary>
public sealed record TraceColumn(string Name, MetricType Type = MetricType.Double);

/// <summary>
/// The schema of trace.parquet: <c>step</c> (INT64, required), <c>matrix</c> and <c>run_id</c> (strings, the same on
/// every row, so dictionary-encoded: one dictionary entry per row group), then the typed value columns in order.
/// Rows are held as doubles (null = not measured) and converted per column type when a row group is written:
/// Int64 columns get the value rounded to the nearest integer, Boolean columns true for any non-zero value;
/// NaN/±Inf in an Int64 or Boolean column is written as null.
/// </summary>
public sealed class TraceSchema
{
    public const string StepColumn = "step", MatrixColumn = "matrix", RunIdColumn = "run_id";

    private readonly DataField<long> _step = new(StepColumn);
    private readonly DataField<string> _matrix = new(MatrixColumn, false);
    private readonly DataField<string> _runId = new(RunIdColumn, false);
    private readonly DataField[] _fields;

    public TraceSchema(string matrix, string runId, IReadOnlyList<TraceColumn> columns)
    {
        var reserved = new[] { StepColumn, MatrixColumn, RunIdColumn };
        var dupes = columns.GroupBy(c => c.Name).Where(g => g.Count() > 1 || reserved.Contains(g.Key)).Select(g => g.Key).ToList();
        if (dupes.Count > 0) throw new ArgumentException($"trace columns defined twice: {string.Join(", ", dupes)}");
        Matrix = matrix;
        RunId = runId;
        Columns = columns;
        _fields = columns.Select(Field).ToArray();
        Parquet = new ParquetSchema(new Field[] { _step, _matrix, _runId }.Concat(_fields));
    }

    /// <summary>A schema whose value columns are all DOUBLE.</summary>
    public static TraceSchema OfDoubles(string matrix, string runId, IEnumerable<string> names) =>
        new(matrix, runId, names.Select(n => new TraceColumn(n)).ToList());

    public string Matrix { get; }
    public string RunId { get; }
    public IReadOnlyList<TraceColumn> Columns { get; }
    public ParquetSchema Parquet { get; }

    /// <summary>Writer options: <c>matrix</c> and <c>run_id</c> dictionary-encoded (Parquet.Net writes strings PLAIN
    /// unless told otherwise).</summary>
    public ParquetOptions Options { get; } = WriterOptions();

    public static ParquetOptions WriterOptions()
    {
        var o = new ParquetOptions();
        o.ColumnEncodingHints[MatrixColumn] = EncodingHint.Dictionary;
        o.ColumnEncodingHints[RunIdColumn] = EncodingHint.Dictionary;
        return o;
    }

    private static DataField Field(TraceColumn c) => c.Type switch
    {
        MetricType.Int64 => new DataField<long?>(c.Name),
        MetricType.Boolean => new DataField<bool?>(c.Name),
        _ => new DataField<double?>(c.Name),
    };

    /// <summary>Writes one row group: <paramref name="rows"/>[r] is aligned with <see cref="Columns"/>.</summary>
    public void WriteRowGroup(ParquetRowGroupWriter rg, IReadOnlyList<long> steps, IReadOnlyList<double?[]> rows)
    {
        int n = steps.Count;
        rg.WriteAsync<long>(_step, steps.ToArray().AsMemory()).GetAwaiter().GetResult();
        var matrix = new string[n];
        Array.Fill(matrix, Matrix);
        rg.WriteAsync(_matrix, matrix).GetAwaiter().GetResult();
        var runId = new string[n];
        Array.Fill(runId, RunId);
        rg.WriteAsync(_runId, runId).GetAwaiter().GetResult();
        for (int c = 0; c < _fields.Length; c++)
        {
            switch (Columns[c].Type)
            {
                case MetricType.Int64:
                    var longs = new long?[n];
                    for (int r = 0; r < n; r++) longs[r] = ToLong(rows[r][c]);
                    rg.WriteAsync<long>(_fields[c], longs.AsMemory()).GetAwaiter().GetResult();
                    break;
                case MetricType.Boolean:
                    var flags = new bool?[n];
                    for (int r = 0; r < n; r++) flags[r] = ToBool(rows[r][c]);
                    rg.WriteAsync<bool>(_fields[c], flags.AsMemory()).GetAwaiter().GetResult();
                    break;
                default:
                    var values = new double?[n];
                    for (int r = 0; r < n; r++) values[r] = rows[r][c];
                    rg.WriteAsync<double>(_fields[c], values.AsMemory()).GetAwaiter().GetResult();
                    break;
            }
        }
    }

    public static long? ToLong(double? v) => v is { } x && double.IsFinite(x) ? (long)Math.Round(x, MidpointRounding.AwayFromZero) : null;
    public static bool? ToBool(double? v) => v is { } x && double.IsFinite(x) ? x != 0 : null;

    /// <summary>Reads a column of any numeric or boolean type of a row group as doubles (false/true as 0/1), or null
    /// when the file has no such column.</summary>
    public static double?[]? ReadAsDoubles(ParquetRowGroupReader rg, ParquetSchema schema, string name)
    {
        var field = schema.GetDataFields().FirstOrDefault(f => f.Name == name);
        if (field is null) return null;
        int n = (int)rg.RowCount;
        var result = new double?[n];
        var type = field.ClrType;
        if (type == typeof(double))
        {
            if (field.IsNullable) rg.ReadAsync<double>(field, result.AsMemory()).GetAwaiter().GetResult();
            else { var a = new double[n]; rg.ReadAsync<double>(field, a.AsMemory()).GetAwaiter().GetResult(); for (int i = 0; i < n; i++) result[i] = a[i]; }
        }
        else if (type == typeof(long))
        {
            if (field.IsNullable) { var a = new long?[n]; rg.ReadAsync<long>(field, a.AsMemory()).GetAwaiter().GetResult(); for (int i = 0; i < n; i++) result[i] = a[i]; }
            else { var a = new long[n]; rg.ReadAsync<long>(field, a.AsMemory()).GetAwaiter().GetResult(); for (int i = 0; i < n; i++) result[i] = a[i]; }
        }
        else if (type == typeof(bool))
        {
            var a = new bool?[n];
            rg.ReadAsync<bool>(field, a.AsMemory()).GetAwaiter().GetResult();
            for (int i = 0; i < n; i++) result[i] = a[i] is { } b ? (b ? 1 : 0) : null;
        }
        else return null;
        return result;
    }
}
