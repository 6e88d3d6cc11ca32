using Harness.Host.Output;
using Harness.Tests.Service;

namespace Harness.Tests.Reliability;

/// <summary>The trace is written as part files (one per flush) and compacted at the end: a flush never rewrites what
/// earlier flushes wrote (so its cost does not grow with the run), DuckDB reads the parts of a running or killed run as
/// one trace, and the compacted trace.parquet holds every row once, in order.</summary>
[TestClass]
public sealed class TraceWriterTests
{
    private static double?[] Row(long step) => [step * 0.5, step % 3 == 0 ? null : -step];

    [TestMethod]
    public void AFlushLeavesEarlierFlushesUntouchedAndDuckDbReadsThePartsAsOneTrace()
    {
        var dir = Paths.NewTempDirectory("trace-parts");
        try
        {
            string path = Path.Combine(dir, "trace.parquet"), parts = TraceWriter.PartsFolder(path);
            var writer = new TraceWriter(path, TraceSchema.OfDoubles("m", "r", ["a", "b"])) { FlushRows = int.MaxValue, FlushInterval = TimeSpan.FromDays(1) };
            for (long s = 0; s < 100; s++) writer.Append(s, Row(s));
            writer.Flush();
            Assert.IsTrue(Directory.Exists(parts), "a flush writes a part file");
            var first = Directory.GetFiles(parts, "*.parquet").Single();
            var firstBytes = File.ReadAllBytes(first);
            var firstWrite = File.GetLastWriteTimeUtc(first);
            for (int f = 1; f < 5; f++)
            {
                for (long s = f * 100; s < (f + 1) * 100; s++) writer.Append(s, Row(s));
                writer.Flush();
            }
            Assert.HasCount(5, Directory.GetFiles(parts, "*.parquet"));
            CollectionAssert.AreEqual(firstBytes, File.ReadAllBytes(first), "later flushes do not rewrite the first one");
            Assert.AreEqual(firstWrite, File.GetLastWriteTimeUtc(first));
            Assert.IsFalse(File.Exists(path), "no trace.parquet until the end");

            // While the run goes on (or after a kill), the parts are one trace to DuckDB.
            var live = ParquetQuery.Rows($"SELECT count(*), count(DISTINCT step), min(step), max(step), sum(a) FROM read_parquet({ParquetQuery.Q(Path.Combine(parts, "*.parquet"))})")[0];
            Assert.AreEqual(500L, Convert.ToInt64(live[0]));
            Assert.AreEqual(500L, Convert.ToInt64(live[1]));
            Assert.AreEqual(0L, Convert.ToInt64(live[2]));
            Assert.AreEqual(499L, Convert.ToInt64(live[3]));
            Assert.AreEqual(Enumerable.Range(0, 500).Sum(i => i * 0.5), Convert.ToDouble(live[4]));

            writer.Dispose();
            Assert.IsFalse(Directory.Exists(parts), "the parts are deleted once compacted");
            var rows = ParquetQuery.Rows($"SELECT step, a, b FROM read_parquet({ParquetQuery.Q(path)})");
            Assert.HasCount(500, rows);
            for (int i = 0; i < rows.Count; i++)
            {
                Assert.AreEqual((long)i, Convert.ToInt64(rows[i][0]), "rows in step order, once each");
                Assert.AreEqual(i * 0.5, Convert.ToDouble(rows[i][1]));
                Assert.AreEqual(Row(i)[1], rows[i][2] is null ? null : Convert.ToDouble(rows[i][2]));
            }
        }
        finally { Directory.Delete(dir, true); }
    }

    [TestMethod]
    public void RecoverTurnsTheLeftPartsOfAKilledWriterIntoTheTrace()
    {
        var dir = Paths.NewTempDirectory("trace-recover");
        try
        {
            string path = Path.Combine(dir, "trace.parquet"), parts = TraceWriter.PartsFolder(path);
            var writer = new TraceWriter(path, TraceSchema.OfDoubles("m", "r", ["a", "b"])) { FlushRows = 10, FlushInterval = TimeSpan.FromDays(1) };
            for (long s = 0; s < 35; s++) writer.Append(s, Row(s));
            // Killed here: 30 rows flushed, 5 buffered, never disposed; a half-written part is left too.
            File.WriteAllText(Path.Combine(parts, "part-00000003.parquet.tmp"), "half");
            Assert.IsTrue(TraceWriter.Recover(path));
            Assert.IsFalse(Directory.Exists(parts));
            var n = ParquetQuery.Rows($"SELECT count(*), max(step) FROM read_parquet({ParquetQuery.Q(path)})")[0];
            Assert.AreEqual(30L, Convert.ToInt64(n[0]));
            Assert.AreEqual(29L, Convert.ToInt64(n[1]));
            Assert.IsFalse(TraceWriter.Recover(path), "nothing left to recover");
        }
        finally { Directory.Delete(dir, true); }
    }

    [TestMethod]
    public void ACorruptPartIsNamedAndKept()
    {
        var dir = Paths.NewTempDirectory("trace-corrupt");
        try
        {
            string path = Path.Combine(dir, "trace.parquet"), parts = TraceWriter.PartsFolder(path);
            var writer = new TraceWriter(path, TraceSchema.OfDoubles("m", "r", ["a", "b"])) { FlushRows = 10, FlushInterval = TimeSpan.FromDays(1) };
            for (long s = 0; s < 20; s++) writer.Append(s, Row(s));
            var second = Directory.GetFiles(parts, "*.parquet").Order(StringComparer.Ordinal).Last();
            File.WriteAllBytes(second, File.ReadAllBytes(second)[..40]);
            var e = Assert.ThrowsExactly<InvalidDataException>(() => TraceWriter.Recover(path));
            StringAssert.Contains(e.Message, second);
            Assert.IsTrue(File.Exists(second), "nothing is deleted when compaction fails");
            Assert.IsFalse(File.Exists(path + ".tmp"));
        }
        finally { Directory.Delete(dir, true); }
    }
}
