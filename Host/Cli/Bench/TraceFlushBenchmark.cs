using System.Diagnostics;
using System.Globalization;
using Harness.Host.Output;

namespace Harness.Host.Cli.Bench;

/// <summary><c>harness bench trace-flush</c>: the cost of one trace flush (500 rows, the row group of a fast run) when
/// the trace already holds 10 000 and 1 000 000 rows, with the column count of a run with a few probes (24 float64
/// columns). The trace is first filled with large flushes (how it got there does not matter: the cost of a flush
/// can only depend on what is on disk), then <see cref="Flushes"/> flushes are timed (median) and the bytes written
/// to disk during them counted from /proc/self/io. A flush cost independent of the run's length shows as equal figures
/// in both rows.</summary>
public sealed class TraceFlushBenchmark : IBenchmark
{
    public string Name => "trace-flush";
    public string Description => "time and bytes written of one 500-row trace flush at 10 k and 1 M rows already in the trace";
    public const int Flushes = 20, RowsPerFlush = 500, Columns = 24;

    public int Run(BenchContext context, TextWriter output)
    {
        var sizes = context.Quick ? new long[] { 10_000, 100_000 } : [10_000, 1_000_000];
        output.WriteLine($"{Columns} float64 columns + step; fill with 100 000-row flushes, then {Flushes} flushes of {RowsPerFlush} rows (median); bytes from /proc/self/io write_bytes");
        output.WriteLine($"{"rows before",12} {"flush_ms",10} {"flush_max_ms",13} {"bytes_written/flush",20} {"trace MB",9}");
        foreach (long n in sizes)
        {
            var dir = Path.Combine(Path.GetTempPath(), $"harness-trace-flush-{Guid.NewGuid():N}");
            Directory.CreateDirectory(dir);
            try
            {
                string path = Path.Combine(dir, "trace.parquet");
                var columns = Enumerable.Range(0, Columns).Select(i => $"c{i}").ToList();
                var rng = new Random(1);
                var row = new double?[Columns];
                long step = 0;
                var times = new List<double>();
                using (var writer = new TraceWriter(path, TraceSchema.OfDoubles("bench", "flush", columns)) { FlushRows = int.MaxValue, FlushInterval = TimeSpan.FromDays(1) })
                {
                    for (; step < n; step++)
                    {
                        for (int c = 0; c < Columns; c++) row[c] = c % 3 == 0 && step % 7 != 0 ? null : rng.NextDouble();
                        writer.Append(step, (double?[])row.Clone());
                        if ((step + 1) % 100_000 == 0) writer.Flush();
                    }
                    writer.Flush();
                    long bytes0 = WriteBytes();
                    for (int f = 0; f < Flushes; f++)
                    {
                        for (int r = 0; r < RowsPerFlush; r++, step++)
                        {
                            for (int c = 0; c < Columns; c++) row[c] = rng.NextDouble();
                            writer.Append(step, (double?[])row.Clone());
                        }
                        var clock = Stopwatch.StartNew();
                        writer.Flush();
                        times.Add(clock.Elapsed.TotalMilliseconds);
                    }
                    long bytes = WriteBytes() - bytes0;
                    times.Sort();
                    double mb = Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length) / 1e6;
                    output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"{n,12} {times[times.Count / 2],10:F2} {times[^1],13:F2} {bytes / Flushes,20} {mb,9:F1}"));
                }
            }
            finally { Directory.Delete(dir, true); }
        }
        return 0;
    }

    private static long WriteBytes()
    {
        foreach (var line in File.ReadLines("/proc/self/io"))
            if (line.StartsWith("write_bytes:", StringComparison.Ordinal)) return long.Parse(line[12..].Trim(), CultureInfo.InvariantCulture);
        return 0;
    }
}
