using System.Diagnostics;

namespace Harness.Tests.Integration;

/// <summary>Runs a command-line tool as a child process.</summary>
public static class Exec
{
    /// <summary>Runs a command to its end (bounded): exit code, stdout, stderr.</summary>
    public static (int code, string stdout, string stderr) Run(string exe, IEnumerable<string> args, TimeSpan timeout,
        Dictionary<string, string>? env = null, string? workingDirectory = null)
    {
        var psi = new ProcessStartInfo(exe) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (workingDirectory is not null) psi.WorkingDirectory = workingDirectory;
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (k, v) in env ?? []) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(true);
            Assert.Fail($"{exe} {string.Join(" ", args)} did not finish in {timeout.TotalSeconds:0}s");
        }
        p.WaitForExit();
        return (p.ExitCode, stdout.Result, stderr.Result);
    }
}
