using System.Diagnostics;
using System.Net;
using Harness.Tests.Service;

namespace Harness.Tests.Reliability;

/// <summary>The results root on a small tmpfs that fills up while a matrix runs: the service keeps answering, the
/// runs fail with a reason that names the problem, the matrix reaches a final state in the API, and no
/// <c>checkpoint.tmp</c> folder is left behind.</summary>
[TestClass]
public sealed class DiskFullTests
{
    [TestMethod]
    public void AFullResultsDiskFailsRunsWithTheReasonAndTheServiceGoesOn()
    {
        using var svc = new ServiceProcess("svc-diskfull", withAbortingPlugin: false);
        Directory.CreateDirectory(svc.Results);
        if (!Mount(svc.Results, "4m")) Assert.Inconclusive("cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN)");
        try
        {
            svc.Start();
            svc.WaitReady();
            svc.Submit("""
                name: full
                models: [ { name: quadratic, hyperparameters: { dim: 3 } } ]
                optimizers: [ { name: gd, hyperparameters: { lr: [0.01, 0.02, 0.03] } } ]
                training: { steps: 2000000, checkpoint_every: 50 }
                """);
            svc.Until(() => (string?)svc.Matrix("full")["state"] == "running"
                && Directory.EnumerateFiles(svc.Results, "trace*", SearchOption.AllDirectories).Any(), TimeSpan.FromMinutes(2), "the matrix running and writing");
            Fill(Path.Combine(svc.Results, "filler.bin"));

            System.Text.Json.Nodes.JsonObject matrix = null!;
            svc.Until(() => (string?)(matrix = svc.Matrix("full"))["state"] is "completed" or "failed", TimeSpan.FromMinutes(3),
                "the matrix in a final state");
            Assert.AreEqual(HttpStatusCode.OK, svc.Get("/healthz").StatusCode);
            Assert.IsFalse(svc.Process!.HasExited, "the service is still running");
            var runs = matrix["runs"]!.AsArray();
            Assert.IsTrue(runs.Count > 0);
            foreach (var run in runs)
            {
                string status = (string)run!["status"]!, reason = (string?)run["reason"] ?? "";
                Assert.AreEqual("failed", status, run.ToJsonString());
                StringAssert.Contains(reason, "No space left on device", run.ToJsonString());
            }
            var left = Directory.EnumerateDirectories(svc.Results, "checkpoint.tmp*", SearchOption.AllDirectories).ToList();
            Assert.IsEmpty(left, string.Join("\n", left));

            // With space again the service takes the next matrix.
            File.Delete(Path.Combine(svc.Results, "filler.bin"));
            svc.Submit("""
                name: after
                models: [ { name: quadratic, hyperparameters: { dim: 3 } } ]
                optimizers: [ { name: gd, hyperparameters: { lr: 0.01 } } ]
                training: { steps: 5 }
                """);
            svc.WaitMatrix("after", "completed", TimeSpan.FromMinutes(2));
        }
        finally
        {
            try { if (svc.Process is { HasExited: false } p) { p.Kill(entireProcessTree: true); p.WaitForExit(10_000); } } catch (InvalidOperationException) { }
            foreach (var pid in svc.WorkerPids()) try { Process.GetProcessById(pid).Kill(); } catch (ArgumentException) { }
            Thread.Sleep(500);
            Umount(svc.Results);
        }
    }

    /// <summary>Writes until the file system refuses (ENOSPC), then closes the file (the bytes stay).</summary>
    private static void Fill(string path)
    {
        var block = new byte[4096];
        using var f = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1, FileOptions.WriteThrough);
        try { while (true) f.Write(block); }
        catch (IOException) { }
        try { f.Flush(); } catch (IOException) { }
    }

    private static bool Mount(string dir, string size) => Run("mount", "-t", "tmpfs", "-o", $"size={size}", "tmpfs", dir) == 0;

    private static void Umount(string dir)
    {
        for (int i = 0; i < 10 && Run("umount", dir) != 0; i++) Thread.Sleep(500);
    }

    private static int Run(string file, params string[] args)
    {
        try
        {
            var psi = new ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true };
            foreach (var a in args) psi.ArgumentList.Add(a);
            using var p = Process.Start(psi)!;
            p.WaitForExit(10_000);
            return p.HasExited ? p.ExitCode : -1;
        }
        catch (System.ComponentModel.Win32Exception) { return -1; }
    }
}
