using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Harness.Tests.Integration;

/// <summary>The real <c>harness</c> executable run as a child process, with stdout/stderr captured. Disposing kills
/// it (and its children) if it is still running, so a failing test never leaves a process behind.</summary>
public sealed class HarnessProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _stdout = new();
    private readonly StringBuilder _stderr = new();

    /// <summary>The host executable the build put next to the test assembly (the test project references Host).</summary>
    public static string Executable => Path.Combine(Paths.HostDirectory, "harness");

    private HarnessProcess(IReadOnlyList<string> args, string workingDirectory)
    {
        if (!File.Exists(Executable)) Assert.Fail($"the harness executable is missing at {Executable}; build tests/Harness.Tests first");
        var psi = new ProcessStartInfo(Executable)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        Arguments = string.Join(" ", args);
        _process = new Process { StartInfo = psi, EnableRaisingEvents = true };
        _process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (_stdout) _stdout.AppendLine(e.Data); };
        _process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (_stderr) _stderr.AppendLine(e.Data); };
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    /// <summary>Starts <c>harness &lt;args&gt;</c> in <paramref name="workingDirectory"/>.</summary>
    public static HarnessProcess Start(string workingDirectory, params string[] args) => new(args, workingDirectory);

    /// <summary>Runs <c>harness &lt;args&gt;</c> to its end (bounded) and returns the finished process.</summary>
    public static HarnessProcess Run(string workingDirectory, TimeSpan timeout, params string[] args)
    {
        var p = Start(workingDirectory, args);
        p.WaitForExit(timeout);
        return p;
    }

    /// <summary>Common options of a run: the built-in plugins, a results folder, a free metrics port, one thread, no
    /// progress bars.</summary>
    public static string[] RunOptions(string results, int? metricsPort = null) =>
    [
        "--plugins", Paths.PluginArtifacts, "--results", results,
        "--metrics-url", $"http://127.0.0.1:{metricsPort ?? FreePort()}", "--threads", "1", "--no-progress",
    ];

    public string Arguments { get; }
    public int Id => _process.Id;
    public bool HasExited => _process.HasExited;
    public int ExitCode => _process.ExitCode;
    public string StdOut { get { lock (_stdout) return _stdout.ToString(); } }
    public string StdErr { get { lock (_stderr) return _stderr.ToString(); } }
    public string Output => $"--- harness {Arguments}\n--- stdout:\n{StdOut}\n--- stderr:\n{StdErr}";

    /// <summary>Waits for the process to exit; fails the test (after killing it) when it does not within the timeout.</summary>
    public void WaitForExit(TimeSpan timeout)
    {
        if (!_process.WaitForExit(timeout))
        {
            Kill();
            Assert.Fail($"harness did not exit within {timeout.TotalSeconds:0}s\n{Output}");
        }
        _process.WaitForExit(); // drains the redirected streams
    }

    /// <summary>Polls <paramref name="condition"/> every 100 ms until it holds; fails with <paramref name="what"/> and
    /// the process output on timeout or when the process exits first (unless <paramref name="mayExit"/>).</summary>
    public void WaitUntil(Func<bool> condition, TimeSpan timeout, string what, bool mayExit = false, Func<string>? context = null)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            if (condition()) return;
            if (!mayExit && _process.HasExited)
                Assert.Fail($"harness exited (code {_process.ExitCode}) before {what}\n{Output}\n{context?.Invoke()}");
            if (DateTime.UtcNow > deadline)
                Assert.Fail($"timed out after {timeout.TotalSeconds:0}s waiting for {what}\n{Output}\n{context?.Invoke()}");
            Thread.Sleep(100);
        }
    }

    /// <summary>SIGKILL (Process.Kill on Unix sends SIGKILL): no shutdown code of the host runs.</summary>
    public void Kill()
    {
        try
        {
            if (!_process.HasExited) _process.Kill(entireProcessTree: true);
            _process.WaitForExit(10_000);
        }
        catch (InvalidOperationException) { } // already gone
    }

    public void Dispose()
    {
        Kill();
        _process.Dispose();
    }

    /// <summary>A TCP port that was free a moment ago on 127.0.0.1.</summary>
    public static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }
}
