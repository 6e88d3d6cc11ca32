using System.Diagnostics;
using Harness.Tests.Integration;

namespace Harness.Tests.Service;

/// <summary>The conformance gate runs a plugin's optimizer; inside the harness executable it does so in a child process,
/// so a plugin that aborts natively while being checked is rejected with the reason and the host goes on.</summary>
[TestClass]
public sealed class GateIsolationTests
{
    [TestMethod]
    public void APluginThatAbortsDuringTheGateIsRejectedAndTheHostSurvives()
    {
        var work = Paths.NewTempDirectory("gate-abort");
        try
        {
            var plugins = Path.Combine(work, "plugins");
            foreach (var dir in Directory.GetDirectories(Paths.PluginArtifacts))
                Paths.CopyDirectory(dir, Path.Combine(plugins, Path.GetFileName(dir)));
            Paths.CopyDirectory(ServiceProcess.AbortingPlugin, Path.Combine(plugins, "AbortingOptimizer"));

            var psi = new ProcessStartInfo(HarnessProcess.Executable) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = work };
            foreach (var a in new[] { "plugins", "--plugins", plugins }) psi.ArgumentList.Add(a);
            psi.Environment["ABORTING_OPTIMIZER_ALWAYS"] = "1";
            psi.Environment["HARNESS_VERIFY_CACHE"] = Path.Combine(work, "verify-cache"); // no verdict from other tests
            using var p = Process.Start(psi)!;
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            Assert.IsTrue(p.WaitForExit(TimeSpan.FromMinutes(4)), "harness plugins finished");
            string output = stdout.Result + stderr.Result;
            // The host itself did not abort: it exits 1 (some plugin was not loaded), not 134.
            Assert.AreEqual(1, p.ExitCode, output);
            StringAssert.Contains(output, "abort_gd", output);
            StringAssert.Contains(output, "failed the conformance gate (process: the gate's process ended with exit code 134 (signal 6)", output);
            // Every built-in optimizer was still verified and offered.
            StringAssert.Contains(output, "heavy_ball", output);
        }
        finally { Directory.Delete(work, recursive: true); }
    }

}
