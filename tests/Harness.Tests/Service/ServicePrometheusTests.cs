using System.Diagnostics;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Harness.Tests.Service;

/// <summary>A real Prometheus server (Debian's prometheus, on 127.0.0.1) scrapes the service while a matrix runs in
/// worker processes; every PromQL query of deploy/grafana/harness-dashboard.json returns data. Ends by cancelling
/// the matrix through the API.</summary>
[TestClass]
public sealed class ServicePrometheusTests
{
    public TestContext TestContext { get; set; } = null!;

    private static IEnumerable<string> Expressions(JsonNode? node)
    {
        if (node is JsonObject o)
        {
            if (o["expr"] is JsonValue v && v.TryGetValue<string>(out var e)) yield return e;
            foreach (var (_, child) in o) foreach (var x in Expressions(child)) yield return x;
        }
        else if (node is JsonArray a) foreach (var child in a) foreach (var x in Expressions(child)) yield return x;
    }

    /// <summary>A dashboard query with its variables set: this matrix, every optimizer, model and run.</summary>
    private static string Substitute(string query) =>
        query.Replace("$matrix", "prom").Replace("$optimizer", ".*").Replace("$model", ".*").Replace("$run", ".*");

    [TestMethod]
    public void EveryDashboardQueryReturnsDataForARunningMatrix()
    {
        const string promBinary = "/usr/bin/prometheus";
        if (!File.Exists(promBinary))
            Assert.Inconclusive("prometheus is not installed (apt-get install prometheus; scripts/setup.sh --with-prometheus)");
        var dashboard = JsonNode.Parse(File.ReadAllText(Path.Combine(Paths.RepoRoot, "deploy", "grafana", "harness-dashboard.json")));
        var queries = Expressions(dashboard).Distinct().ToList();
        Assert.IsTrue(queries.Count >= 5, "the dashboard has its queries");

        using var svc = new ServiceProcess("svc-prom", withAbortingPlugin: false);
        // Two workers: gd reports edge_ratio, adam (preconditioned) precond_edge_ratio; the dashboard shows both. The
        // first run (gd at η = 2.5 > 2/λ1, λ1 = 1) is above the edge and diverges within steps, for the annotations;
        // its worker then takes the adam run.
        svc.Start("--workers", "2");
        svc.WaitReady();
        svc.Submit("""
            name: prom
            models:
              - name: quadratic
                hyperparameters: { dim: 20 }
            optimizers:
              - name: gd
                hyperparameters: { lr: 2.5 }
              - name: gd
                hyperparameters: { lr: 0.01 }
              - name: adam
                hyperparameters: { lr: 0.001 }
            training: { steps: 1000000 }
            probes:
              - name: sharpness
                every: 10
              - name: precond_sharpness
                every: 10
            """);

        int promPort = ServiceProcess.FreePort();
        string promDir = Path.Combine(svc.Root, "prometheus");
        Directory.CreateDirectory(promDir);
        File.WriteAllText(Path.Combine(promDir, "prometheus.yml"), $$"""
            global: { scrape_interval: 1s, evaluation_interval: 1s }
            scrape_configs:
              - job_name: harness
                static_configs: [ { targets: ['127.0.0.1:{{svc.Port}}'] } ]
            """);
        var psi = new ProcessStartInfo(promBinary) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { $"--config.file={Path.Combine(promDir, "prometheus.yml")}", $"--storage.tsdb.path={Path.Combine(promDir, "data")}",
                     $"--web.listen-address=127.0.0.1:{promPort}" })
            psi.ArgumentList.Add(a);
        using var prom = Process.Start(psi)!;
        prom.BeginErrorReadLine();
        prom.BeginOutputReadLine();
        try
        {
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
            var missing = new List<string>(queries);
            var clock = Stopwatch.StartNew();
            while (missing.Count > 0 && clock.Elapsed < TimeSpan.FromSeconds(180))
            {
                Thread.Sleep(1000);
                foreach (var q in missing.ToList())
                {
                    string expr = Substitute(q);
                    HttpResponseMessage response;
                    try { response = http.GetAsync($"http://127.0.0.1:{promPort}/api/v1/query?query={Uri.EscapeDataString(expr)}").GetAwaiter().GetResult(); }
                    catch (HttpRequestException) { break; } // Prometheus not listening yet
                    using var _ = response;
                    if (response.StatusCode == System.Net.HttpStatusCode.ServiceUnavailable) break; // Prometheus still starting
                    var body = response.EnsureSuccessStatusCode().Content.ReadAsStringAsync().GetAwaiter().GetResult();
                    var result = JsonNode.Parse(body)!["data"]?["result"]?.AsArray();
                    if (result is { Count: > 0 }) missing.Remove(q);
                }
            }
            Assert.AreEqual(0, missing.Count, "queries without data after 180 s:\n" + string.Join("\n", missing) + "\n" + svc.Log);
            // Every variable of the dashboard (label_values(<selector>, <label>)) finds its values.
            JsonArray Instant(string expr) => JsonNode.Parse(http.GetStringAsync(
                $"http://127.0.0.1:{promPort}/api/v1/query?query={Uri.EscapeDataString(expr)}").GetAwaiter().GetResult())!["data"]!["result"]!.AsArray();
            var variables = dashboard!["templating"]!["list"]!.AsArray().Where(v => (string?)v!["type"] == "query").ToList();
            CollectionAssert.AreEqual(new[] { "matrix", "optimizer", "model", "run" }, variables.Select(v => (string)v!["name"]!).ToArray());
            foreach (var v in variables)
            {
                var lv = Regex.Match((string)v!["query"]!, @"^label_values\((.+), (\w+)\)$");
                Assert.IsTrue(lv.Success, (string?)v["query"]);
                var values = Instant(Substitute(lv.Groups[1].Value)).Select(r => (string?)r!["metric"]![lv.Groups[2].Value]).Distinct().ToList();
                Assert.IsTrue(values.Count > 0 && values.All(x => x is not null), $"variable {v["name"]}: {string.Join(",", values)}");
            }
            foreach (var q in queries)
            {
                var result = Instant(Substitute(q));
                TestContext.WriteLine($"{result.Count} series: {string.Join("; ", result.Select(r => $"{r!["metric"]!["config"]} = {r["value"]![1]}"))}  <- {q}");
            }
            // harness_run_info: legends read the swept values; defaults and values every run shares are not labels.
            var info = Instant("harness_run_info{matrix=\"prom\"}");
            CollectionAssert.AreEquivalent(new[] { "adam lr=0.001", "gd lr=0.01", "gd lr=2.5" },
                info.Select(r => (string)r!["metric"]!["config"]!).ToArray(), info.ToJsonString());
            foreach (var r in info)
            {
                var labels = r!["metric"]!.AsObject().Select(kv => kv.Key).Where(k => k is not ("__name__" or "job" or "instance" or "otel_scope_name" or "otel_scope_version")).Order().ToArray();
                CollectionAssert.AreEqual(new[] { "config", "matrix", "model", "optimizer", "optimizer_lr", "run" }, labels, r.ToJsonString());
                Assert.AreEqual("1", (string)r["value"]![1]!);
            }
        }
        finally
        {
            try { prom.Kill(); prom.WaitForExit(10_000); } catch (InvalidOperationException) { }
        }

        // Cancel one run through the API: it ends as cancelled, the other keeps running.
        var runs = svc.Matrix("prom")["runs"]!.AsArray();
        Assert.AreEqual("diverged", (string?)runs[0]!["status"], runs.ToJsonString());
        string gdRun = (string)runs.Single(r => ((string)r!["run_id"]!).StartsWith("gd-") && (string?)r["status"] == "running")!["run_id"]!;
        string adamRun = (string)runs.Single(r => ((string)r!["run_id"]!).StartsWith("adam-"))!["run_id"]!;
        Assert.AreEqual(System.Net.HttpStatusCode.Accepted, svc.Send(HttpMethod.Post, $"/api/runs/{gdRun}/cancel", "", null).StatusCode);
        svc.Until(() => (string?)svc.Json(svc.Get("/api/runs/" + gdRun))["status"] == "cancelled", TimeSpan.FromSeconds(60), "the gd run cancelled");
        Assert.AreEqual("running", (string?)svc.Json(svc.Get("/api/runs/" + adamRun))["status"]);
        Assert.AreEqual(System.Net.HttpStatusCode.Conflict, svc.Send(HttpMethod.Post, $"/api/runs/{gdRun}/cancel", "", null).StatusCode);
        var gdManifest = JsonNode.Parse(File.ReadAllText(Path.Combine(svc.Results, "prom", gdRun, "manifest.json")))!;
        Assert.AreEqual("cancelled", (string?)gdManifest["status"]);

        // Cancel the matrix: the remaining run ends as cancelled, the matrix as cancelled.
        var cancel = svc.Send(HttpMethod.Post, "/api/matrices/prom/cancel", "", null);
        Assert.AreEqual(System.Net.HttpStatusCode.Accepted, cancel.StatusCode);
        var m = svc.WaitMatrix("prom", "cancelled", TimeSpan.FromSeconds(60));
        Assert.IsTrue(m["runs"]!.AsArray().Skip(1).All(r => (string?)r!["status"] == "cancelled"), m.ToJsonString());
    }
}
