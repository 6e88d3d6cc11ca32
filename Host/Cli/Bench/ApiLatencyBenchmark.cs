using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Harness.Host.Workers;

namespace Harness.Host.Cli.Bench;

/// <summary>A <c>harness serve</c> child process on a free loopback port in a temporary folder, for benchmarks.</summary>
internal sealed class BenchService : IDisposable
{
    public string Root { get; } = Path.Combine(Path.GetTempPath(), $"harness-bench-{Guid.NewGuid():N}");
    public string Url { get; }
    public HttpClient Http { get; } = new() { Timeout = TimeSpan.FromSeconds(60) };
    private readonly Process _process;
    public int Pid => _process.Id;

    /// <summary>CPU seconds (user + system) the service process has used so far, from /proc/&lt;pid&gt;/stat.</summary>
    public double CpuSeconds()
    {
        var stat = File.ReadAllText($"/proc/{_process.Id}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return (long.Parse(fields[11]) + long.Parse(fields[12])) / 100.0; // utime, stime in clock ticks (USER_HZ = 100)
    }

    public BenchService(string plugins, params string[] extra)
    {
        Directory.CreateDirectory(Root);
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        Url = $"http://127.0.0.1:{port}";
        var psi = new ProcessStartInfo(WorkerPool.Executable())
        {
            WorkingDirectory = Root, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        foreach (var a in new[] { "serve", "--plugins", Path.GetFullPath(plugins), "--results", "results", "--inbox", "inbox", "--metrics-url", Url }.Concat(extra))
            psi.ArgumentList.Add(a);
        _process = Process.Start(psi)!;
        _process.OutputDataReceived += (_, _) => { };
        _process.ErrorDataReceived += (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        var clock = Stopwatch.StartNew();
        while (true)
        {
            try { if (Http.GetAsync(Url + "/readyz").Result.IsSuccessStatusCode) break; }
            catch (AggregateException) { }
            if (_process.HasExited || clock.Elapsed > TimeSpan.FromSeconds(90)) throw new InvalidOperationException("the service did not become ready");
            Thread.Sleep(200);
        }
    }

    public HttpResponseMessage Post(string path, string body) =>
        Http.PostAsync(Url + path, new StringContent(body, Encoding.UTF8, "application/yaml")).GetAwaiter().GetResult();

    public JsonObject GetJson(string path) => JsonNode.Parse(Http.GetStringAsync(Url + path).GetAwaiter().GetResult())!.AsObject();

    public void WaitMatrix(string name, string state, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while ((string?)GetJson("/api/matrices/" + name)["state"] != state)
        {
            if (clock.Elapsed > timeout) throw new TimeoutException($"matrix {name} not {state} after {timeout}");
            Thread.Sleep(200);
        }
    }

    public void Dispose()
    {
        try { if (!_process.HasExited) { _process.Kill(entireProcessTree: true); _process.WaitForExit(10_000); } } catch (InvalidOperationException) { }
        Http.Dispose();
        try { Directory.Delete(Root, true); } catch (IOException) { }
    }
}

/// <summary>Latency of the service's API under 50 concurrent requests: POST /api/matrices (validation, copy into the
/// results tree, queueing) and GET /api/matrices (listing). A real <c>harness serve</c> process on loopback.</summary>
public sealed class ApiLatencyBenchmark : IBenchmark
{
    public string Name => "api-latency";
    public string Description => "service API latency (submit, list) under 50 concurrent requests";
    public const int Concurrency = 50;

    public static string Report(string what, List<double> ms)
    {
        ms.Sort();
        double P(double q) => ms[Math.Min(ms.Count - 1, (int)Math.Ceiling(q * ms.Count) - 1)];
        return string.Create(CultureInfo.InvariantCulture,
            $"{what,-28} n={ms.Count,4}  p50 {P(0.5),7:F1} ms  p95 {P(0.95),7:F1} ms  p99 {P(0.99),7:F1} ms  max {ms[^1],7:F1} ms");
    }

    private static List<double> Burst(int rounds, Func<int, HttpResponseMessage> request, HttpStatusCode expected)
    {
        var all = new List<double>();
        for (int r = 0; r < rounds; r++)
        {
            using var start = new Barrier(Concurrency);
            var tasks = Enumerable.Range(0, Concurrency).Select(i => Task.Factory.StartNew(() =>
            {
                start.SignalAndWait();
                var clock = Stopwatch.StartNew();
                using var response = request(r * Concurrency + i);
                double ms = clock.Elapsed.TotalMilliseconds;
                if (response.StatusCode != expected) throw new InvalidOperationException($"HTTP {(int)response.StatusCode}: {response.Content.ReadAsStringAsync().Result}");
                return ms;
            }, TaskCreationOptions.LongRunning)).ToArray();
            Task.WaitAll(tasks);
            all.AddRange(tasks.Select(t => t.Result));
        }
        return all;
    }

    public int Run(BenchContext context, TextWriter output)
    {
        int rounds = context.Quick ? 2 : 10;
        using var svc = new BenchService(context.PluginDirectory);
        output.WriteLine($"service {svc.Url}, {Concurrency} concurrent requests per round, {rounds} round(s); matrices of one 1-step quadratic run");
        output.WriteLine("submit: while the queue executes the submitted matrices (1 worker); list/get/plugins: after cancelling them, queue idle");
        // Warm-up (JIT, connection pool).
        for (int i = 0; i < 5; i++) svc.Http.GetStringAsync(svc.Url + "/api/matrices").GetAwaiter().GetResult();
        var submit = Burst(rounds, i => svc.Post("/api/matrices", $$"""
            name: bench-{{i}}
            models: [ { name: quadratic } ]
            optimizers: [ { name: gd, hyperparameters: { lr: 0.1 } } ]
            training: { steps: 1 }
            """), HttpStatusCode.Accepted);
        // List with the queue idle, so the figure is the API's own cost and not the CPU taken by the workers that
        // execute the submitted matrices: cancel them all first (their runs end as cancelled without starting).
        var names = Enumerable.Range(0, submit.Count).Select(i => $"bench-{i}").ToList();
        foreach (var n in names) svc.Http.PostAsync(svc.Url + $"/api/matrices/{n}/cancel", null).GetAwaiter().GetResult().Dispose();
        var idle = Stopwatch.StartNew();
        while (svc.Http.GetStringAsync(svc.Url + "/api/matrices").GetAwaiter().GetResult() is var all
               && (all.Contains("\"state\":\"queued\"") || all.Contains("\"state\":\"running\"")))
        {
            if (idle.Elapsed > TimeSpan.FromMinutes(5)) throw new TimeoutException("the queue did not drain");
            Thread.Sleep(500);
        }
        var list = Burst(rounds, _ => svc.Http.GetAsync(svc.Url + "/api/matrices").GetAwaiter().GetResult(), HttpStatusCode.OK);
        var one = Burst(rounds, i => svc.Http.GetAsync(svc.Url + $"/api/matrices/bench-{i % submit.Count}").GetAwaiter().GetResult(), HttpStatusCode.OK);
        var plugins = Burst(rounds, _ => svc.Http.GetAsync(svc.Url + "/api/plugins").GetAwaiter().GetResult(), HttpStatusCode.OK);
        output.WriteLine(Report("POST /api/matrices (submit)", submit));
        output.WriteLine(Report($"GET /api/matrices ({submit.Count} listed)", list));
        output.WriteLine(Report("GET /api/matrices/{name}", one));
        output.WriteLine(Report("GET /api/plugins", plugins));
        return 0;
    }
}
