using System.Diagnostics;
using Harness.Host.Matrix;
using Harness.Host.Plugins;
using Harness.Host.Telemetry;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using OpenTelemetry.Metrics;

namespace Harness.Host.Cli.Bench;

/// <summary><c>harness bench metrics-series</c>: the series count of /metrics (the real OpenTelemetry Prometheus
/// exporter, scraped over loopback) while 1 000 runs end one after another and 4 keep running, with a 2 s retention
/// of ended runs. The count after the retention must be that of the 4 running runs plus the run-independent series.</summary>
public sealed class MetricsSeriesBenchmark : IBenchmark
{
    public string Name => "metrics-series";
    public string Description => "series count in /metrics after 1 000 finished runs (4 running, retention 2 s)";

    public int Run(BenchContext context, TextWriter output)
    {
        int finished = context.Quick ? 200 : 1000;
        const int running = 4;
        var retention = TimeSpan.FromSeconds(2);
        var catalog = PluginCatalog.Load(context.PluginDirectory);
        string lrs = string.Join(", ", Enumerable.Range(1, finished + running).Select(i => (i * 1e-4).ToString("R", System.Globalization.CultureInfo.InvariantCulture)));
        var spec = new MatrixParser(catalog).Parse($"name: series\nmodels: [{{ name: quadratic }}]\noptimizers: [{{ name: gd, hyperparameters: {{ lr: [{lrs}] }} }}]\ntraining: {{ steps: 10 }}\n", "series.yaml");
        var cells = MatrixExpander.Expand(spec);

        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        builder.Logging.ClearProviders();
        var metrics = new HarnessMetrics(retention);
        builder.Services.AddSingleton(metrics);
        builder.Services.AddOpenTelemetry().WithMetrics(m => m.AddMeter(HarnessMetrics.MeterName).AddPrometheusExporter());
        builder.WebHost.ConfigureKestrel(k => k.Listen(System.Net.IPAddress.Loopback, 0));
        using var app = builder.Build();
        app.UseOpenTelemetryPrometheusScrapingEndpoint();
        app.Start();
        metrics.CollectRetired = () => app.Services.GetRequiredService<MeterProvider>().ForceFlush();
        string url = app.Urls.First() + "/metrics";
        using var http = new HttpClient();
        int Series() => http.GetStringAsync(url).Result.Split('\n').Count(l => l.StartsWith("harness_", StringComparison.Ordinal));
        int RunSeries() => http.GetStringAsync(url).Result.Split('\n').Count(l => l.StartsWith("harness_", StringComparison.Ordinal) && l.Contains("run=\"", StringComparison.Ordinal));

        int baseline = Series();
        var live = cells.Take(running).Select(c => metrics.StartRun(c, [])).ToList();
        foreach (var g in live) { g.Loss = 1; metrics.RecordStep(g, 0.001); }
        int withRunning = Series();
        var clock = Stopwatch.StartNew();
        int peak = 0;
        for (int i = 0; i < finished; i++)
        {
            var g = metrics.StartRun(cells[running + i], []);
            for (int s = 0; s < 10; s++) { g.Loss = 1.0 / (s + 1); g.Progress = (s + 1) / 10.0; metrics.RecordStep(g, 0.002); }
            metrics.EndRun(g, "completed");
            if (i % 50 == 49) peak = Math.Max(peak, Series());
        }
        int atEnd = Series();
        double seconds = clock.Elapsed.TotalSeconds;
        Thread.Sleep(retention * 2.5);
        metrics.Prune();
        // A disposed meter's streams are exported one last time by the next collection, then dropped.
        Series();
        Thread.Sleep(1000);
        int after = Series(), afterRun = RunSeries();
        output.WriteLine($"retention {retention.TotalSeconds} s; {running} running runs; {finished} runs of 10 steps ended in {seconds:F1} s");
        output.WriteLine($"{"no runs",10} {"4 running",10} {"peak",8} {"at end",8} {"after retention",16} {"(of them with a run label)",27}");
        output.WriteLine($"{baseline,10} {withRunning,10} {peak,8} {atEnd,8} {after,16} {afterRun,27}");
        bool bounded = after <= withRunning;
        output.WriteLine(bounded ? $"bounded: {after} series after {finished} finished runs <= {withRunning} (the running runs' series + constant)"
            : $"NOT bounded: {after} series after {finished} finished runs > {withRunning}");
        app.StopAsync().Wait();
        metrics.Dispose();
        return bounded ? 0 : 1;
    }
}
