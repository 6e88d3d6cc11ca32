using System.Globalization;
using System.Text;
using Harness.Host.Matrix;
using Harness.Host.Output;
using Harness.Host.Reports;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Parquet;
using Parquet.Schema;

namespace Harness.Host.Service;

/// <summary>
/// Data over HTTP, under /api (so behind the same bearer token as the rest of the API): a run's trace and a matrix's
/// summary as Parquet or CSV, and its report (HTML page and figure files). Files are streamed by the service; no
/// server-side path is returned. See docs/service.md.
/// </summary>
public static class ServiceDataApi
{
    public const string ParquetType = "application/vnd.apache.parquet", CsvType = "text/csv; charset=utf-8";

    public static void Map(RouteGroupBuilder api)
    {
        api.MapGet("/runs/{id}/trace.parquet", (string id, MatrixService s) => Run(id, s, dir => File(Path.Combine(dir, "trace.parquet"), ParquetType, $"{id}.trace.parquet")));
        api.MapGet("/runs/{id}/trace.csv", (string id, MatrixService s) => Run(id, s, dir => Csv(Path.Combine(dir, "trace.parquet"), $"{id}.trace.csv")));
        api.MapGet("/matrices/{name}/summary.parquet", (string name, MatrixService s) => Matrix(name, s, dir => File(Path.Combine(dir, "summary.parquet"), ParquetType, $"{name}.summary.parquet")));
        api.MapGet("/matrices/{name}/summary.csv", (string name, MatrixService s) => Matrix(name, s, dir => Csv(Path.Combine(dir, "summary.parquet"), $"{name}.summary.csv")));
        api.MapGet("/matrices/{name}/report", (string name, MatrixService s, PluginRegistry plugins) => Matrix(name, s, dir => Report(dir, plugins)));
        api.MapGet("/matrices/{name}/report/{file}", (string name, string file, MatrixService s, PluginRegistry plugins) => Matrix(name, s, dir =>
        {
            if (!ServiceApi.SafeName().IsMatch(file) || !(file.EndsWith(".png", StringComparison.Ordinal) || file.EndsWith(".svg", StringComparison.Ordinal) || file == ReportWriter.Page))
                return Results.Problem(statusCode: 400, title: "invalid file", detail: $"'{file}' is not a report file (report.html, <figure>.png, <figure>.svg)");
            if (Fresh(dir, plugins) is { } error) return error;
            return File(Path.Combine(dir, ReportWriter.Folder, file), file.EndsWith(".png", StringComparison.Ordinal) ? "image/png"
                : file.EndsWith(".svg", StringComparison.Ordinal) ? "image/svg+xml" : "text/html; charset=utf-8", null);
        }));
    }

    /// <summary>URLs of a run's data, for the run details.</summary>
    public static (string Parquet, string Csv) TraceUrls(string runId) => ($"/api/runs/{runId}/trace.parquet", $"/api/runs/{runId}/trace.csv");

    private static IResult? Bad(string name, string what) => ServiceApi.SafeName().IsMatch(name) ? null :
        Results.Problem(statusCode: 400, title: $"invalid {what}", detail: $"'{name}' is not 1-100 characters of letters, digits, '_', '.', '-'");

    private static IResult Run(string id, MatrixService s, Func<string, IResult> then)
    {
        if (Bad(id, "run id") is { } bad) return bad;
        if (s.FindRun(id) is not { } info || s.Job(info.Matrix) is not { } job) return NotFound($"no run '{id}'");
        return then(Path.Combine(job.Directory, id));
    }

    private static IResult Matrix(string name, MatrixService s, Func<string, IResult> then)
    {
        if (Bad(name, "matrix name") is { } bad) return bad;
        return s.Job(name) is { } job ? then(job.Directory) : NotFound($"no matrix '{name}'");
    }

    private static IResult NotFound(string detail) => Results.Problem(statusCode: 404, title: "not found", detail: detail);

    private static IResult File(string path, string type, string? download) =>
        System.IO.File.Exists(path) ? Results.Bytes(System.IO.File.ReadAllBytes(path), type, download)
            : NotFound($"{Path.GetFileName(path)} does not exist yet (the run or matrix has not written it)");

    private static IResult Csv(string parquet, string download)
    {
        if (!System.IO.File.Exists(parquet)) return NotFound($"{Path.GetFileName(parquet)} does not exist yet (the run or matrix has not written it)");
        var text = new StringWriter(CultureInfo.InvariantCulture);
        ParquetCsv.Write(System.IO.File.ReadAllBytes(parquet), text);
        return Results.Bytes(Encoding.UTF8.GetBytes(text.ToString()), CsvType, download);
    }

    private static readonly object ReportLock = new();

    /// <summary>Rebuilds the report when it is missing or older than the summary (claims from the matrix file the
    /// service keeps in the matrix folder).</summary>
    private static IResult? Fresh(string dir, PluginRegistry plugins)
    {
        string page = Path.Combine(dir, ReportWriter.Folder, ReportWriter.Page), summary = Path.Combine(dir, "summary.parquet");
        if (!System.IO.File.Exists(summary)) return NotFound("the matrix has no summary yet (no run has finished)");
        lock (ReportLock)
        {
            if (System.IO.File.Exists(page) && System.IO.File.GetLastWriteTimeUtc(page) >= System.IO.File.GetLastWriteTimeUtc(summary)) return null;
            IReadOnlyList<ClaimSpec> claims = [];
            if (ReportWriter.ClaimsSource(dir) is { } m)
            {
                try { claims = MatrixParser.ParseFile(m, plugins.Catalog).Claims; }
                catch (MatrixValidationException) { /* the report is still useful without the claims */ }
            }
            ReportWriter.Write(dir, claims);
        }
        return null;
    }

    private static IResult Report(string dir, PluginRegistry plugins) =>
        Fresh(dir, plugins) ?? File(Path.Combine(dir, ReportWriter.Folder, ReportWriter.Page), "text/html; charset=utf-8", null);
}

/// <summary>Any flat Parquet file of the harness (trace, summary) as CSV: header of column names, one line per row,
/// empty field for null, numbers in invariant culture with round-trip precision, booleans as true/false.</summary>
public static class ParquetCsv
{
    public static void Write(byte[] parquet, TextWriter csv)
    {
        using var stream = new MemoryStream(parquet);
        var reader = ParquetReader.CreateAsync(stream).GetAwaiter().GetResult();
        try
        {
            var fields = reader.Schema.GetDataFields();
            csv.Write(string.Join(",", fields.Select(f => Quote(f.Name))));
            csv.Write('\n');
            for (int g = 0; g < reader.RowGroupCount; g++)
            {
                using var rg = reader.OpenRowGroupReader(g);
                int n = (int)rg.RowCount;
                var columns = fields.Select(f => Read(rg, f, n)).ToArray();
                for (int r = 0; r < n; r++)
                {
                    for (int c = 0; c < columns.Length; c++)
                    {
                        if (c > 0) csv.Write(',');
                        csv.Write(columns[c][r]);
                    }
                    csv.Write('\n');
                }
            }
        }
        finally { reader.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
    }

    private static string[] Read(ParquetRowGroupReader rg, DataField f, int n)
    {
        static string D(double v) => v.ToString("R", CultureInfo.InvariantCulture);
        // Parquet.Net reports string columns of a file read back as ReadOnlyMemory<char>; both read as strings.
        if (f.ClrType == typeof(string) || f.ClrType == typeof(ReadOnlyMemory<char>)) { var a = new string?[n]; rg.ReadAsync(f, a.AsMemory()!).GetAwaiter().GetResult(); return a.Select(s => s is null ? "" : Quote(s)).ToArray(); }
        if (f.ClrType == typeof(double) && f.IsNullable) { var a = new double?[n]; rg.ReadAsync<double>(f, a.AsMemory()).GetAwaiter().GetResult(); return a.Select(v => v is { } x ? D(x) : "").ToArray(); }
        if (f.ClrType == typeof(double)) { var a = new double[n]; rg.ReadAsync<double>(f, a.AsMemory()).GetAwaiter().GetResult(); return a.Select(D).ToArray(); }
        if (f.ClrType == typeof(long) && f.IsNullable) { var a = new long?[n]; rg.ReadAsync<long>(f, a.AsMemory()).GetAwaiter().GetResult(); return a.Select(v => v?.ToString(CultureInfo.InvariantCulture) ?? "").ToArray(); }
        if (f.ClrType == typeof(long)) { var a = new long[n]; rg.ReadAsync<long>(f, a.AsMemory()).GetAwaiter().GetResult(); return a.Select(v => v.ToString(CultureInfo.InvariantCulture)).ToArray(); }
        if (f.ClrType == typeof(bool)) { var a = new bool?[n]; rg.ReadAsync<bool>(f, a.AsMemory()).GetAwaiter().GetResult(); return a.Select(v => v is { } b ? (b ? "true" : "false") : "").ToArray(); }
        throw new NotSupportedException($"column '{f.Name}' has type {f.ClrType.Name}, which the CSV export does not handle");
    }

    private static string Quote(string s) => s.IndexOfAny([',', '"', '\n', '\r']) < 0 ? s : "\"" + s.Replace("\"", "\"\"") + "\"";
}
