using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Harness.Host.Service;
using Harness.Tests.Integration;
using Harness.Tests.Service;

namespace Harness.Tests.Reliability;

/// <summary>
/// The service's front door: the listen address is parsed once into one endpoint (the loopback check and Kestrel
/// read the same IP and port), a bad address or a busy port is one line and exit code 2, a busy metrics port does
/// not stop <c>run</c>, and SIGTERM stops the workers within --grace even while a request is in flight. The
/// parsing cases run without binding anything; the processes bind loopback only.
/// </summary>
[TestClass]
public sealed class FrontDoorTests
{
    public static IEnumerable<object[]> Accepted =>
    [
        ["http://127.0.0.1:4711", "127.0.0.1", 4711],
        ["http://127.0.0.1:4711/", "127.0.0.1", 4711],
        ["http://localhost:0", "127.0.0.1", 0],
        ["HTTP://LOCALHOST:9464", "127.0.0.1", 9464],
        ["http://[::1]:4711", "::1", 4711],
        // IPv4-mapped IPv6 loopback is the IPv4 address it maps (and so binds and counts as loopback).
        ["http://[::ffff:127.0.0.1]:4711", "127.0.0.1", 4711],
        ["http://0.0.0.0:80", "0.0.0.0", 80],
        ["http://[::]:65535", "::", 65535],
    ];

    [TestMethod]
    [DynamicData(nameof(Accepted))]
    public void ParsesOneEndpoint(string url, string ip, int port)
    {
        Assert.IsTrue(BindAddress.TryParse(url, out var a, out var error), error);
        Assert.AreEqual(IPAddress.Parse(ip), a!.Address);
        Assert.AreEqual(port, a.Port);
        Assert.AreEqual(IPAddress.IsLoopback(IPAddress.Parse(ip)), a.IsLoopback);
    }

    public static IEnumerable<object[]> Refused =>
    [
        // Each of these listened on every interface without a token before: the old check read the host one way
        // (loopback), Kestrel another (user@localhost is not an IP, so all interfaces; ';' added a listener).
        ["http://user@localhost:4711", "user information"],
        ["http://x@127.0.0.1:4711", "user information"],
        ["http://127.0.0.1:4711/;http://0.0.0.0:4712", "one address only"],
        ["http://127.0.0.1:4711,http://0.0.0.0:4712", "one address only"],
        ["http://127.0.0.1:4711/api", "no path"],
        ["http://127.0.0.1:4711?x=1", "not allowed"],
        ["http://example.org:4711", "not an IP address"],
        ["http://*:4711", "wildcards are not accepted"],
        ["http://+:4711", "wildcards are not accepted"],
        ["http://127.0.0.1", "port is required"],
        ["http://127.0.0.1:99999", "not a port number"],
        ["http://::1:4711", "must be in brackets"],
        ["https://127.0.0.1:4711", "https is not served"],
        ["ftp://127.0.0.1:21", "must be http://"],
        ["http://127.0.0.1 :4711", "not allowed"],
    ];

    [TestMethod]
    [DynamicData(nameof(Refused))]
    public void RefusesAnythingButOneIpAndPort(string url, string reason)
    {
        Assert.IsFalse(BindAddress.TryParse(url, out _, out var error), $"{url} was accepted");
        StringAssert.Contains(error, reason);
        Assert.DoesNotContain("\n", error!);
    }

    /// <summary>A real serve refuses a user-info address with one line and exit 2, and nothing listens on its port;
    /// the IPv4-mapped loopback address serves on 127.0.0.1 without a token.</summary>
    [TestMethod]
    public void ServeRefusesOrListensExactlyWhereItSays()
    {
        int port = ServiceProcess.FreePort();
        using (var refused = RunServe($"http://x@127.0.0.1:{port}", TimeSpan.FromSeconds(60)))
        {
            Assert.AreEqual(2, refused.ExitCode, refused.StdErr);
            Assert.AreEqual(1, Lines(refused.StdErr).Count, refused.StdErr);
            StringAssert.Contains(refused.StdErr, "user information");
        }
        Assert.IsFalse(Listening(port), "nothing listens on the port of a refused address");

        using var svc = new ServiceProcess("front-mapped", withAbortingPlugin: false);
        int mapped = ServiceProcess.FreePort();
        var p = svc.StartWithUrl($"http://[::ffff:127.0.0.1]:{mapped}");
        using var http = new HttpClient();
        svc.Until(() => http.GetAsync($"http://127.0.0.1:{mapped}/readyz").GetAwaiter().GetResult().StatusCode == HttpStatusCode.OK,
            TimeSpan.FromSeconds(90), "the mapped address serves on 127.0.0.1");
        StringAssert.Contains(svc.Log, $"API at http://127.0.0.1:{mapped}/api");
        Assert.IsFalse(p.HasExited);
    }

    /// <summary>serve on a busy port: one line naming the address, exit 2, no stack trace.</summary>
    [TestMethod]
    public void ServeOnABusyPortIsOneLineAndExitTwo()
    {
        using var holder = new TcpListener(IPAddress.Loopback, 0);
        holder.Start();
        int port = ((IPEndPoint)holder.LocalEndpoint).Port;
        using var p = RunServe($"http://127.0.0.1:{port}", TimeSpan.FromSeconds(90));
        Assert.AreEqual(2, p.ExitCode, p.StdErr);
        var lines = Lines(p.StdErr);
        Assert.AreEqual(1, lines.Count, p.StdErr);
        StringAssert.Contains(lines[0], $"cannot listen at http://127.0.0.1:{port}: address already in use");
    }

    /// <summary>run with a busy metrics port: a warning, and the run trains to completion.</summary>
    [TestMethod]
    public void RunWithABusyMetricsPortWarnsAndTrains()
    {
        using var holder = new TcpListener(IPAddress.Loopback, 0);
        holder.Start();
        int port = ((IPEndPoint)holder.LocalEndpoint).Port;
        var dir = Paths.NewTempDirectory("front-run");
        File.WriteAllText(Path.Combine(dir, "m.yaml"), """
            name: busy-port
            models: [ { name: quadratic } ]
            optimizers: [ { name: gd } ]
            training: { steps: 3 }
            """);
        using var run = HarnessProcess.Run(dir, TimeSpan.FromSeconds(180), ["run", "m.yaml", .. HarnessProcess.RunOptions(Path.Combine(dir, "results"), port)]);
        Assert.AreEqual(0, run.ExitCode, run.StdErr);
        StringAssert.Contains(run.StdErr, "metrics are not served");
        Assert.IsTrue(File.Exists(Path.Combine(dir, "results", "busy-port", "summary.parquet")));
    }

    /// <summary>SIGTERM while a client is still uploading a request: the web server waits for the request (up to the
    /// host's shutdown timeout, --grace + 10 s), but the workers get SIGTERM at once and are gone within --grace.</summary>
    [TestMethod]
    public void SigtermStopsWorkersWithinGraceDespiteAnInFlightRequest()
    {
        using var svc = new ServiceProcess("front-sigterm", withAbortingPlugin: false);
        svc.Start("--grace", "2");
        svc.WaitReady();
        svc.Submit("""
            name: long
            models: [ { name: quadratic } ]
            optimizers: [ { name: gd } ]
            training: { steps: 100000000 }
            """);
        svc.Until(() => svc.WorkerPids().Count == 1 && (string?)svc.Matrix("long")["runs"]![0]!["status"] == "running", TimeSpan.FromSeconds(120), "a worker is training");
        var worker = svc.WorkerPids().Single();

        // A slow upload: headers and a first part of a 1 MB body, then 1 KB every 0.5 s (above Kestrel's minimum data rate).
        using var client = new TcpClient();
        client.Connect(IPAddress.Loopback, svc.Port);
        var stream = client.GetStream();
        var header = $"POST /api/matrices HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/yaml\r\nContent-Length: 1000000\r\n\r\n# ";
        stream.Write(System.Text.Encoding.ASCII.GetBytes(header));
        using var stopUpload = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var upload = Task.Run(async () =>
        {
            var chunk = System.Text.Encoding.ASCII.GetBytes(new string('x', 1024));
            try { while (!stopUpload.IsCancellationRequested) { await stream.WriteAsync(chunk, stopUpload.Token); await Task.Delay(500, stopUpload.Token); } }
            catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException) { }
        });
        Thread.Sleep(1500);

        var clock = Stopwatch.StartNew();
        svc.Terminate();
        while (clock.Elapsed < TimeSpan.FromSeconds(30) && Alive(worker)) Thread.Sleep(100);
        var workerGone = clock.Elapsed;
        stopUpload.Cancel();
        upload.Wait(TimeSpan.FromSeconds(10));
        Assert.IsFalse(Alive(worker), "the worker outlived 30 s after SIGTERM");
        // --grace 2 s plus the supervisor's 0.5 s poll and a loaded machine's scheduling; the host's shutdown
        // timeout (12 s) is what the worker waited for when it was stopped after the web server.
        Assert.IsLessThan(8.0, workerGone.TotalSeconds, $"worker stopped {workerGone.TotalSeconds:F1} s after SIGTERM\n{svc.Log}");
        Assert.IsTrue(svc.Process!.WaitForExit(30_000), "the service exits");
    }

    private static bool Alive(int pid)
    {
        try { return !Process.GetProcessById(pid).HasExited; }
        catch (ArgumentException) { return false; }
    }

    private static List<string> Lines(string s) => s.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList();

    private static bool Listening(int port)
    {
        try { using var c = new TcpClient(); c.Connect(IPAddress.Loopback, port); return true; }
        catch (SocketException) { return false; }
    }

    private static HarnessProcess RunServe(string url, TimeSpan timeout)
    {
        var dir = Paths.NewTempDirectory("front-serve");
        return HarnessProcess.Run(dir, timeout, "serve", "--plugins", Paths.PluginArtifacts, "--results", Path.Combine(dir, "results"),
            "--inbox", Path.Combine(dir, "inbox"), "--metrics-url", url, "--threads", "1");
    }
}
