using System.Net;
using Harness.Tests.Integration;
using Harness.Tests.Service;

namespace Harness.Tests.Reports;

/// <summary>A run's trace, a matrix's summary and its report over the service's API, behind its token, by URL
/// (never a server-side path).</summary>
[TestClass]
public sealed class ServiceDataTests
{
    private const string Token = "data-token";

    [TestMethod]
    public void TraceSummaryAndReportAreServedBehindTheToken()
    {
        using var svc = new ServiceProcess("svc-data", withAbortingPlugin: false);
        svc.Start("--api-token", Token);
        svc.WaitReady();
        svc.Submit("""
            name: data
            models:
              - name: quadratic
            optimizers:
              - name: gd
                hyperparameters: { lr: 0.5 }
            training: { steps: 12 }
            probes:
              - name: sharpness
                every: 4
            claims:
              - id: below-edge
                text: "below the edge"
                metric: edge_ratio
                expect: { "<": 1 }
            """, Token);
        var matrix = svc.WaitMatrix("data", "completed", TimeSpan.FromMinutes(3), Token);
        string runId = (string)matrix["runs"]![0]!["run_id"]!;

        var details = svc.Json(svc.Get($"/api/runs/{runId}", Token));
        Assert.IsNull(details["trace"], "no server-side path to the trace");
        Assert.IsNull(details["directory"]);
        Assert.AreEqual($"/api/runs/{runId}/trace.parquet", (string?)details["trace_parquet"]);

        foreach (var path in new[] { $"/api/runs/{runId}/trace.parquet", $"/api/runs/{runId}/trace.csv", "/api/matrices/data/summary.parquet",
                     "/api/matrices/data/summary.csv", "/api/matrices/data/report", "/api/matrices/data/report/loss.png" })
            Assert.AreEqual(HttpStatusCode.Unauthorized, svc.Get(path).StatusCode, path);

        // The Parquet bytes are the file's; read back with DuckDB they hold the run's 13 rows.
        var parquet = svc.Get((string)details["trace_parquet"]!, Token);
        Assert.AreEqual(HttpStatusCode.OK, parquet.StatusCode);
        Assert.AreEqual("application/vnd.apache.parquet", parquet.Content.Headers.ContentType?.MediaType);
        var local = Path.Combine(Paths.NewTempDirectory("svc-data-copy"), "trace.parquet");
        File.WriteAllBytes(local, parquet.Content.ReadAsByteArrayAsync().GetAwaiter().GetResult());
        var rows = DuckDb.ReadParquet(local, "step");
        Assert.AreEqual(13, rows.Count);
        Assert.IsTrue(rows.All(r => (string?)r["run_id"] == runId && (string?)r["matrix"] == "data"));

        // The CSV has the same columns and values.
        var csv = svc.Get((string)details["trace_csv"]!, Token).Content.ReadAsStringAsync().GetAwaiter().GetResult().TrimEnd('\n').Split('\n');
        Assert.AreEqual(14, csv.Length, "header and 13 rows:\n" + string.Join("\n", csv));
        var header = csv[0].Split(',');
        CollectionAssert.AreEqual(DuckDb.Describe(local).Select(c => c.Name).ToArray(), header);
        for (int i = 0; i < rows.Count; i++)
        {
            var cells = csv[i + 1].Split(',');
            Assert.AreEqual(DuckDb.Double(rows[i]["train_loss"])!.Value, double.Parse(cells[Array.IndexOf(header, "train_loss")], System.Globalization.CultureInfo.InvariantCulture));
            Assert.AreEqual(rows[i]["sharpness_converged"] is null ? "" : ((bool)rows[i]["sharpness_converged"]! ? "true" : "false"), cells[Array.IndexOf(header, "sharpness_converged")]);
        }

        var summaryCsv = svc.Get("/api/matrices/data/summary.csv", Token).Content.ReadAsStringAsync().GetAwaiter().GetResult();
        StringAssert.StartsWith(summaryCsv, "run_id,matrix,");
        StringAssert.Contains(summaryCsv, runId);
        Assert.AreEqual(HttpStatusCode.OK, svc.Get("/api/matrices/data/summary.parquet", Token).StatusCode);

        var report = svc.Get("/api/matrices/data/report", Token);
        Assert.AreEqual(HttpStatusCode.OK, report.StatusCode, svc.Log);
        string html = report.Content.ReadAsStringAsync().GetAwaiter().GetResult();
        StringAssert.Contains(html, "id=\"report-data\"");
        StringAssert.Contains(html, "below-edge", "the claims of the submitted matrix are evaluated");
        var png = svc.Get("/api/matrices/data/report/loss.png", Token);
        Assert.AreEqual("image/png", png.Content.Headers.ContentType?.MediaType);
        Assert.IsTrue(png.Content.ReadAsByteArrayAsync().GetAwaiter().GetResult().Length > 5000);
        Assert.AreEqual(HttpStatusCode.BadRequest, svc.Get("/api/matrices/data/report/matrix.yaml", Token).StatusCode);
        Assert.AreEqual(HttpStatusCode.NotFound, svc.Get("/api/runs/gd-000000000000/trace.csv", Token).StatusCode);
    }
}
