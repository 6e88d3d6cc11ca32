using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;

namespace Harness.Tests.Service;

/// <summary>A real <c>harness serve</c> process on a free loopback port, in a temporary working folder
/// (plugins/, results/, inbox/ inside it). Every wait is bounded; Dispose kills what is left.</summary>
public sealed class ServiceProcess : IDisposable
{
    public static string HostExecutable => Path.Combine(Paths.HostDirectory, "harness");
    public static string AbortingPlugin => Path.Combine(Paths.RepoRoot, "artifacts", "test-plugins", "AbortingOptimizer");

    public string Root { get; }
    public string Plugins => Path.Combine(Root, "plugins");
    public string Results => Path.Combine(Root, "results");
    public int Port { get; private set; }
    public string Url => $"http://127.0.0.1:{Port}";
    public HttpClient Http { get; } = new() { Timeout = TimeSpan.FromSeconds(30) };
    public Process? Process { get; private set; }
    private readonly StringBuilder _log = new();

    public ServiceProcess(string prefix, bool withAbortingPlugin)
    {
        Root = Paths.NewTempDirectory(prefix);
        Paths.CopyDirectory(Paths.PluginArtifacts, Plugins);
        if (withAbortingPlugin) Paths.CopyDirectory(AbortingPlugin, Path.Combine(Plugins, "AbortingOptimizer"));
    }

    public string Log { get { lock (_log) return _log.ToString(); } }


    public static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    /// <summary>Starts the process (again, after a kill, on the same folder and port).</summary>
    public Process Start(params string[] extra)
    {
        if (Port == 0) Port = FreePort();
        return StartWithUrl(Url, extra);
    }

    /// <summary>Starts the process with <paramref name="url"/> as its --metrics-url (Port and Url keep their values).</summary>
    public Process StartWithUrl(string url, params string[] extra)
    {
        var psi = new ProcessStartInfo(HostExecutable)
        {
            WorkingDirectory = Root, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        foreach (var a in new[] { "serve", "--plugins", Plugins, "--results", Results, "--inbox", Path.Combine(Root, "inbox"),
                     "--metrics-url", url, "--threads", "1" }.Concat(extra))
            psi.ArgumentList.Add(a);
        var p = new Process { StartInfo = psi };
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (_log) _log.AppendLine(e.Data); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (_log) _log.AppendLine(e.Data); };
        p.Start();
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        Process = p;
        return p;
    }

    public void WaitReady(TimeSpan? timeout = null)
    {
        Until(() => Get("/readyz").StatusCode == HttpStatusCode.OK, timeout ?? TimeSpan.FromSeconds(90), "service ready");
    }

    /// <summary>Polls <paramref name="condition"/> every 250 ms; fails the test with the service log after <paramref name="timeout"/>.</summary>
    public void Until(Func<bool> condition, TimeSpan timeout, string what)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            try { if (condition()) return; }
            catch (HttpRequestException) { }
            catch (TaskCanceledException) { }
            if (Process is { HasExited: true } p && !what.Contains("exit"))
                Assert.Fail($"the service exited (code {p.ExitCode}) while waiting for: {what}\n{Log}");
            Thread.Sleep(250);
        }
        Assert.Fail($"timed out after {timeout.TotalSeconds} s waiting for: {what}\n{Log}");
    }

    public HttpResponseMessage Get(string path, string? token = null) => Send(HttpMethod.Get, path, null, token);

    public HttpResponseMessage Send(HttpMethod method, string path, string? body, string? token = null, string contentType = "application/yaml", bool expectContinue = false)
    {
        var req = new HttpRequestMessage(method, Url + path);
        // Expect: 100-continue (as curl sends for large bodies) lets the server refuse before the body is sent.
        if (expectContinue) req.Headers.ExpectContinue = true;
        if (body is not null) req.Content = new StringContent(body, Encoding.UTF8, contentType);
        if (token is not null) req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return Http.Send(req);
    }

    public JsonObject Json(HttpResponseMessage r) => JsonNode.Parse(r.Content.ReadAsStringAsync().GetAwaiter().GetResult())!.AsObject();

    public JsonObject Submit(string yaml, string? token = null)
    {
        var r = Send(HttpMethod.Post, "/api/matrices", yaml, token);
        var text = r.Content.ReadAsStringAsync().GetAwaiter().GetResult();
        Assert.AreEqual(HttpStatusCode.Accepted, r.StatusCode, text);
        return JsonNode.Parse(text)!.AsObject();
    }

    public JsonObject Matrix(string name, string? token = null) => Json(Get("/api/matrices/" + name, token));

    /// <summary>Waits for the matrix to reach <paramref name="state"/>, checking /healthz on every poll.</summary>
    public JsonObject WaitMatrix(string name, string state, TimeSpan timeout, string? token = null)
    {
        JsonObject? last = null;
        Until(() =>
        {
            Assert.AreEqual(HttpStatusCode.OK, Get("/healthz").StatusCode, "the service answers health checks throughout");
            last = Matrix(name, token);
            return (string?)last["state"] == state;
        }, timeout, $"matrix {name} {state}");
        return last!;
    }

    /// <summary>Process ids of live worker processes of this service (their command lines name its plugin or results folder).</summary>
    public List<int> WorkerPids()
    {
        var pids = new List<int>();
        foreach (var dir in Directory.GetDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out int pid)) continue;
            try
            {
                var cmd = File.ReadAllText(Path.Combine(dir, "cmdline")).Replace('\0', ' ');
                if (cmd.Contains(" worker ") && cmd.Contains(Root)) pids.Add(pid);
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
        return pids;
    }

    public void Terminate()
    {
        if (Process is { HasExited: false } p) System.Diagnostics.Process.Start("kill", ["-TERM", p.Id.ToString()])!.WaitForExit();
    }

    public void Dispose()
    {
        try { if (Process is { HasExited: false } p) { p.Kill(entireProcessTree: true); p.WaitForExit(10_000); } } catch (InvalidOperationException) { }
        foreach (var pid in WorkerPids()) try { System.Diagnostics.Process.GetProcessById(pid).Kill(); } catch (ArgumentException) { }
        Http.Dispose();
        try { Directory.Delete(Root, recursive: true); } catch (IOException) { }
    }
}
