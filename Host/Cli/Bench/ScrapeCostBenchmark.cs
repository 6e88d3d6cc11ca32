using System.Diagnostics;
using System.Globalization;
using Parquet;
using Parquet.Schema;

namespace Harness.Host.Cli.Bench;

/// <summary>Step-time cost of a 10 Hz Prometheus scrape of the service's /metrics: the same run (a Fashion-MNIST
/// MLP, mini-batches) executed by the service alternately without and with a client fetching /metrics every 100 ms;
/// compares the median step_seconds of the traces.</summary>
public sealed class ScrapeCostBenchmark : IBenchmark
{
    public string Name => "scrape-cost";
    public string Description => "step-time cost of scraping the service's /metrics at 10 Hz";

    public int Run(BenchContext context, TextWriter output)
    {
        int pairs = context.Quick ? 1 : 3;
        int steps = context.Quick ? 1000 : 6000;
        // One libtorch thread: on a shared machine, multi-threaded steps stall at OpenMP barriers whenever another
        // process takes a core, and those stalls would drown the effect measured here.
        using var svc = new BenchService(context.PluginDirectory, "--threads", "1");
        output.WriteLine($"service {svc.Url}; {pairs} pair(s) of runs (off, on), {steps} steps each: fashion_mlp 784-100-100-10, batch 100, 1 thread");
        double cpuOff = 0, cpuOn = 0, wallOff = 0, wallOn = 0;
        var off = new List<double>();
        var on = new List<double>();
        int scrapes = 0;
        double scrapeMs = 0;
        for (int k = 0; k < pairs * 2; k++)
        {
            bool scrape = k % 2 == 1;
            string name = $"scrape-{k}";
            var r = svc.Post("/api/matrices", $$"""
                name: {{name}}
                models:
                  - name: fashion_mlp
                    hyperparameters: { depth: 2, width: 100, train_size: 1000, test_size: 10 }
                optimizers: [ { name: gd, hyperparameters: { lr: 0.05 } } ]
                training: { steps: {{steps}}, batch_size: 100 }
                """);
            if (!r.IsSuccessStatusCode) throw new InvalidOperationException(r.Content.ReadAsStringAsync().Result);
            using var stop = new CancellationTokenSource();
            double cpu0 = svc.CpuSeconds();
            var wall = Stopwatch.StartNew();
            var scraper = Task.Run(async () =>
            {
                if (!scrape) return (0, 0.0);
                int n = 0;
                double total = 0;
                using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(100));
                try
                {
                    while (await timer.WaitForNextTickAsync(stop.Token))
                    {
                        var clock = Stopwatch.StartNew();
                        _ = await svc.Http.GetStringAsync(svc.Url + "/metrics", stop.Token);
                        total += clock.Elapsed.TotalMilliseconds;
                        n++;
                    }
                }
                catch (OperationCanceledException) { }
                return (n, total);
            });
            svc.WaitMatrix(name, "completed", TimeSpan.FromMinutes(10));
            stop.Cancel();
            if (scrape) { cpuOn += svc.CpuSeconds() - cpu0; wallOn += wall.Elapsed.TotalSeconds; }
            else { cpuOff += svc.CpuSeconds() - cpu0; wallOff += wall.Elapsed.TotalSeconds; }
            var (n, total) = scraper.Result;
            scrapes += n;
            scrapeMs += total;
            string runDir = Directory.GetDirectories(Path.Combine(svc.Root, "results", name)).Single();
            (scrape ? on : off).AddRange(StepSeconds(Path.Combine(runDir, "trace.parquet")).Skip(10));
        }
        double medOff = Median(off) * 1000, medOn = Median(on) * 1000;
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"median step without scraping  {medOff:F2} ms  (p90 {Quantile(off, 0.9) * 1000:F2} ms, mean {off.Average() * 1000:F2} ms, {off.Count} steps)"));
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"median step with 10 Hz scrape {medOn:F2} ms  (p90 {Quantile(on, 0.9) * 1000:F2} ms, mean {on.Average() * 1000:F2} ms, {on.Count} steps)"));
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"cost: {(medOn / medOff - 1) * 100:+0.0;-0.0} % of the median step; {scrapes} scrapes, mean {scrapeMs / Math.Max(1, scrapes):F2} ms each"));
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"service process CPU: {cpuOff / wallOff * 100:F1} % of a core without scraping, {cpuOn / wallOn * 100:F1} % with; {(cpuOn - cpuOff * wallOn / wallOff) / Math.Max(1, scrapes) * 1000:F2} ms CPU per scrape"));
        return 0;
    }

    private static double Quantile(List<double> xs, double q)
    {
        var s = xs.Order().ToList();
        return s.Count == 0 ? double.NaN : s[Math.Min(s.Count - 1, (int)(q * s.Count))];
    }

    private static double Median(List<double> xs)
    {
        var s = xs.Order().ToList();
        return s.Count == 0 ? double.NaN : s.Count % 2 == 1 ? s[s.Count / 2] : (s[s.Count / 2 - 1] + s[s.Count / 2]) / 2;
    }

    private static List<double> StepSeconds(string trace)
    {
        using var stream = File.OpenRead(trace);
        var reader = ParquetReader.CreateAsync(stream).GetAwaiter().GetResult();
        try
        {
            var field = reader.Schema.GetDataFields().First(f => f.Name == "step_seconds");
            var result = new List<double>();
            for (int g = 0; g < reader.RowGroupCount; g++)
            {
                using var rg = reader.OpenRowGroupReader(g);
                var values = new double?[rg.RowCount];
                rg.ReadAsync<double>(field, values.AsMemory()).GetAwaiter().GetResult();
                result.AddRange(values.Where(v => v.HasValue).Select(v => v!.Value));
            }
            return result;
        }
        finally { reader.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
    }
}
