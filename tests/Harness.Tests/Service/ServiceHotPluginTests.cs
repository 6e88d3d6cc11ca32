using System.Net;
using System.Security.Cryptography;
using System.Text.Json.Nodes;

namespace Harness.Tests.Service;

/// <summary>The hot plugin folder of a running service: a DLL copied in becomes usable without a restart (a
/// half-copied file is not used: its failed load is retried once the file changes), a corrupt DLL is reported and
/// changes nothing else, a run in progress keeps the plugin it started with when the file is overwritten, and a
/// newer version of the plugin is used by the runs submitted after it arrived.</summary>
[TestClass]
public sealed class ServiceHotPluginTests
{
    private static string Matrix(string name, long steps) => $$"""
        name: {{name}}
        models:
          - name: quadratic
            hyperparameters: { dim: 8 }
        optimizers:
          - name: abort_gd
            hyperparameters: { lr: 0.01 }
        training: { steps: {{steps}} }
        """;

    private static JsonObject Plugins(ServiceProcess svc) => svc.Json(svc.Get("/api/plugins"));
    private static bool HasOptimizer(JsonObject p, string name) => p["optimizers"]!.AsArray().Any(o => (string?)o!["name"] == name);
    private static JsonObject? ErrorFor(JsonObject p, string file) =>
        p["errors"]!.AsArray().Select(e => e!.AsObject()).FirstOrDefault(e => ((string)e["file"]!).StartsWith(file));

    [TestMethod]
    public void PluginsDroppedIntoTheFolderWhileServingAreUsedWithoutARestart()
    {
        using var svc = new ServiceProcess("svc-hot", withAbortingPlugin: false);
        svc.Start();
        svc.WaitReady();
        var unknown = svc.Send(HttpMethod.Post, "/api/matrices", Matrix("hot", 5), null);
        Assert.AreEqual(HttpStatusCode.BadRequest, unknown.StatusCode);
        StringAssert.Contains(unknown.Content.ReadAsStringAsync().Result, "unknown optimizer 'abort_gd'");

        // Half a file first: it fails to load (reported), and is loaded once the copy completes.
        string source = Path.Combine(ServiceProcess.AbortingPlugin, "AbortingOptimizer.dll");
        byte[] good = File.ReadAllBytes(source);
        string pluginDir = Path.Combine(svc.Plugins, "AbortingOptimizer");
        string dll = Path.Combine(pluginDir, "AbortingOptimizer.dll");
        Directory.CreateDirectory(pluginDir);
        File.WriteAllBytes(dll, good[..(good.Length / 2)]);
        svc.Until(() => ErrorFor(Plugins(svc), "AbortingOptimizer") is not null, TimeSpan.FromSeconds(30), "the half-copied DLL reported");
        Assert.IsFalse(HasOptimizer(Plugins(svc), "abort_gd"));
        Paths.CopyDirectory(ServiceProcess.AbortingPlugin, pluginDir);
        svc.Until(() => HasOptimizer(Plugins(svc), "abort_gd") && ErrorFor(Plugins(svc), "AbortingOptimizer") is null,
            TimeSpan.FromSeconds(30), "the completed copy loaded");

        // A long run with the new plugin; while it runs, its DLL is overwritten with garbage and a corrupt DLL appears.
        var submitted = svc.Submit(Matrix("hot", 30000));
        string runId = (string)submitted["runs"]![0]!["run_id"]!;
        svc.Until(() => (long)svc.Json(svc.Get("/api/runs/" + runId))["step"]! > 100, TimeSpan.FromSeconds(120), "the run under way");
        var garbage = new byte[good.Length];
        new Random(7).NextBytes(garbage);
        File.WriteAllBytes(dll, garbage);
        File.WriteAllBytes(Path.Combine(svc.Plugins, "Corrupt.dll"), garbage[..5000]);
        Assert.AreEqual("running", (string?)svc.Json(svc.Get("/api/runs/" + runId))["status"], "the file was overwritten under a running run");
        svc.Until(() =>
        {
            var p = Plugins(svc);
            return ErrorFor(p, "Corrupt.dll") is not null && ErrorFor(p, "AbortingOptimizer") is not null && !HasOptimizer(p, "abort_gd");
        }, TimeSpan.FromSeconds(30), "the corrupt DLLs reported");
        var corrupt = ErrorFor(Plugins(svc), "Corrupt.dll")!;
        StringAssert.Contains((string)corrupt["reason"]!, "not a loadable .NET assembly");
        Assert.IsTrue(HasOptimizer(Plugins(svc), "gd"), "the other plugins are unaffected");
        Assert.AreEqual(HttpStatusCode.OK, svc.Get("/healthz").StatusCode);

        // The running run keeps the plugin it loaded, and its manifest records that file and hash.
        var done = svc.WaitMatrix("hot", "completed", TimeSpan.FromSeconds(300));
        Assert.AreEqual("completed", (string?)done["runs"]![0]!["status"], done.ToJsonString());
        var manifest = JsonNode.Parse(File.ReadAllText(Path.Combine(svc.Results, "hot", runId, "manifest.json")))!;
        var use = manifest["plugins"]!.AsArray().Single(p => (string?)p!["kind"] == "optimizer")!;
        Assert.AreEqual("AbortingOptimizer/AbortingOptimizer.dll", (string?)use["file"]);
        Assert.AreEqual(Convert.ToHexStringLower(SHA256.HashData(good)), (string?)use["sha256"]);

        Assert.AreEqual("1.0.0.0", (string?)use["version"]);

        // A newer version of the plugin (2.0.0, same file name) replaces the broken file: new runs use it.
        string v2 = Path.Combine(ServiceProcess.AbortingPlugin + ".v2", "AbortingOptimizer.dll");
        File.Copy(v2, dll, overwrite: true);
        svc.Until(() => Plugins(svc)["optimizers"]!.AsArray().Any(o => (string?)o!["name"] == "abort_gd" && (string?)o["version"] == "2.0.0.0"),
            TimeSpan.FromSeconds(30), "version 2 loaded");
        var again = svc.Submit(Matrix("hot-again", 5));
        svc.WaitMatrix("hot-again", "completed", TimeSpan.FromSeconds(120));
        var manifest2 = JsonNode.Parse(File.ReadAllText(Path.Combine(svc.Results, "hot-again", (string)again["runs"]![0]!["run_id"]!, "manifest.json")))!;
        var use2 = manifest2["plugins"]!.AsArray().Single(p => (string?)p!["kind"] == "optimizer")!;
        Assert.AreEqual("2.0.0.0", (string?)use2["version"]);
        Assert.AreEqual(Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(v2))), (string?)use2["sha256"]);
        Assert.AreNotEqual((string?)use["sha256"], (string?)use2["sha256"]);
    }
}
