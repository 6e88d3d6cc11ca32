using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;

namespace Harness.Tests.Integration;

/// <summary>A real Prometheus server scrapes a running <c>harness run</c>; its HTTP API returns the sharpness series
/// of the running matrix. Both processes are stopped at the end, also when the test fails.</summary>
[TestClass]
public sealed class PrometheusTests
{
    // The quadratic's sharpness is exactly lambda_max = 10, so the scraped value can be checked, not just seen.
    private const string Matrix = """
        name: scraped
        dtype: float64
        models:
          - name: quadratic
            hyperparameters: { dim: 16, lambda_max: 10, lambda_min: 0.1 }
        optimizers:
          - name: gd
            hyperparameters: { lr: 0.1 }
        training:
          steps: 10000000
        probes:
          - name: sharpness
            every: 20
            hyperparameters: { tolerance: 0.000001 }
        """;

    public static string PrometheusBinary()
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Append("/usr/bin").Append("/usr/local/bin"))
        {
            var candidate = Path.Combine(dir, "prometheus");
            if (dir.Length > 0 && File.Exists(candidate)) return candidate;
        }
        Assert.Fail("the Prometheus server is not installed (no 'prometheus' on PATH): run scripts/setup.sh --with-prometheus");
        return "";
    }

    [TestMethod]
    public void PrometheusScrapesTheSharpnessSeriesOfTheRunningMatrix()
    {
        string prometheus = PrometheusBinary();
        var work = Paths.NewTempDirectory("prometheus");
        var results = Path.Combine(work, "results");
        var matrix = Path.Combine(work, "scraped.yaml");
        File.WriteAllText(matrix, Matrix);
        int metricsPort = HarnessProcess.FreePort();
        int prometheusPort = HarnessProcess.FreePort();
        while (prometheusPort == metricsPort) prometheusPort = HarnessProcess.FreePort();
        var config = Path.Combine(work, "prometheus.yml");
        File.WriteAllText(config, $"""
            global:
              scrape_interval: 1s
              scrape_timeout: 1s
              evaluation_interval: 1s
            scrape_configs:
              - job_name: harness
                metrics_path: /metrics
                static_configs:
                  - targets: ['127.0.0.1:{metricsPort}']
            """);

        Process? server = null;
        var serverLog = new StringBuilder();
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{prometheusPort}"), Timeout = TimeSpan.FromSeconds(5) };
        try
        {
            var psi = new ProcessStartInfo(prometheus)
            {
                RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = work,
            };
            foreach (var a in new[] { $"--config.file={config}", $"--storage.tsdb.path={Path.Combine(work, "tsdb")}",
                                       $"--web.listen-address=127.0.0.1:{prometheusPort}" })
                psi.ArgumentList.Add(a);
            server = Process.Start(psi)!;
            server.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (serverLog) serverLog.AppendLine(e.Data); };
            server.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (serverLog) serverLog.AppendLine(e.Data); };
            server.BeginOutputReadLine();
            server.BeginErrorReadLine();
            string ServerLog() { lock (serverLog) return serverLog.ToString(); }
            WaitUntil(() => Get(http, "/-/ready") is not null, server, TimeSpan.FromSeconds(60), "Prometheus to become ready", ServerLog);

            using var host = HarnessProcess.Start(work, ["run", matrix, .. HarnessProcess.RunOptions(results, metricsPort)]);

            // Prometheus scrapes the host and reports the target up.
            host.WaitUntil(() => Get(http, "/api/v1/targets") is { } t && t.Contains("\"health\":\"up\"", StringComparison.Ordinal),
                TimeSpan.FromSeconds(60), "Prometheus to report the harness target up", context: ServerLog);

            // The sharpness series of the running matrix, by the instant-query API ...
            JsonArray? series = null;
            string query = Uri.EscapeDataString("harness_sharpness{matrix=\"scraped\"}");
            host.WaitUntil(() => (series = Query(http, $"/api/v1/query?query={query}")) is { Count: > 0 },
                TimeSpan.FromSeconds(60), "harness_sharpness in Prometheus", context: ServerLog);
            Assert.HasCount(1, series!);
            var metric = series![0]!["metric"]!;
            Assert.AreEqual("harness_sharpness", (string?)metric["__name__"]);
            Assert.AreEqual("harness", (string?)metric["job"]);
            Assert.AreEqual("gd", (string?)metric["optimizer"]);
            Assert.AreEqual("quadratic", (string?)metric["model"]);
            string run = (string)metric["run"]!;
            Assert.IsTrue(Directory.Exists(Path.Combine(results, "scraped", run)), $"the run label {run} names the run's folder");
            double value = double.Parse((string)series[0]!["value"]![1]!, CultureInfo.InvariantCulture);
            Assert.AreEqual(10.0, value, 1e-4, "λ1 of the quadratic is lambda_max");

            // ... and as a range: several scrapes (1 s apart) of the same series.
            long now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
            JsonArray? range = null;
            host.WaitUntil(() => (range = Query(http, $"/api/v1/query_range?query={query}&start={now - 120}&end={now + 120}&step=1"))
                    is [{ } s] && s["values"] is JsonArray { Count: >= 3 },
                TimeSpan.FromSeconds(60), "three scraped samples of harness_sharpness", context: ServerLog);
            foreach (var sample in range![0]!["values"]!.AsArray())
                Assert.AreEqual(10.0, double.Parse((string)sample![1]!, CultureInfo.InvariantCulture), 1e-4);

            // The loss of the same run is there too, labelled the same way.
            var loss = Query(http, $"/api/v1/query?query={Uri.EscapeDataString($"harness_train_loss{{run=\"{run}\"}}")}");
            Assert.HasCount(1, loss!);
            Assert.IsFalse(host.HasExited, "the run was still going while Prometheus scraped it\n" + host.Output);
        }
        finally
        {
            if (server is not null)
            {
                try { if (!server.HasExited) server.Kill(entireProcessTree: true); server.WaitForExit(10_000); }
                catch (InvalidOperationException) { }
                server.Dispose();
            }
        }
        try { Directory.Delete(work, true); } catch (IOException) { }
    }

    private static string? Get(HttpClient http, string path)
    {
        try
        {
            using var response = http.GetAsync(path).GetAwaiter().GetResult();
            return response.IsSuccessStatusCode ? response.Content.ReadAsStringAsync().GetAwaiter().GetResult() : null;
        }
        catch (HttpRequestException) { return null; }
        catch (TaskCanceledException) { return null; }
    }

    /// <summary>The data.result array of a Prometheus API answer, or null.</summary>
    private static JsonArray? Query(HttpClient http, string path)
    {
        var body = Get(http, path);
        if (body is null) return null;
        var json = JsonNode.Parse(body)!;
        Assert.AreEqual("success", (string?)json["status"], body);
        return json["data"]!["result"]!.AsArray();
    }

    private static void WaitUntil(Func<bool> condition, Process process, TimeSpan timeout, string what, Func<string> log)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (process.HasExited) Assert.Fail($"prometheus exited (code {process.ExitCode}) before {what}\n{log()}");
            if (DateTime.UtcNow > deadline) Assert.Fail($"timed out after {timeout.TotalSeconds:0}s waiting for {what}\n{log()}");
            Thread.Sleep(200);
        }
    }
}
