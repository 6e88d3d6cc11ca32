using Harness.Abstractions;
using Harness.Host.Plugins;

namespace Harness.Tests.Integration;

/// <summary>Plugin loading from a real folder of DLLs: the built-ins, a corrupt file, a plugin built against another
/// contract version, a plugin whose constructor throws and a plugin folder with a malformed .deps.json. The bad ones are reported by file and reason and skipped;
/// everything else loads.</summary>
[TestClass]
public sealed class PluginLoadingTests
{
    private static string _folder = "";

    public static string TestPlugin(string name)
    {
        var path = Path.Combine(Paths.RepoRoot, "artifacts", "test-plugins", name, name + ".dll");
        if (!File.Exists(path)) Assert.Fail($"test plugin {path} is missing: tests/TestPlugins/{name} is built by building tests/Harness.Tests");
        return path;
    }

    [ClassInitialize]
    public static void CreatePluginFolder(TestContext _)
    {
        _folder = Paths.NewTempDirectory("plugins");
        var builtIns = Directory.GetDirectories(Paths.PluginArtifacts);
        Assert.IsNotEmpty(builtIns, $"no built-in plugin folders in {Paths.PluginArtifacts}");
        foreach (var dir in builtIns) Paths.CopyDirectory(dir, Path.Combine(_folder, Path.GetFileName(dir)));
        File.Copy(TestPlugin("IncompatiblePlugin"), Path.Combine(_folder, "IncompatiblePlugin.dll"));
        File.Copy(TestPlugin("ThrowingPlugin"), Path.Combine(_folder, "ThrowingPlugin.dll"));
        // A plugin folder whose .deps.json is malformed (the runtime's dependency resolver refuses it).
        Directory.CreateDirectory(Path.Combine(_folder, "BadDeps"));
        File.Copy(TestPlugin("ThrowingPlugin"), Path.Combine(_folder, "BadDeps", "BadDeps.dll"));
        File.WriteAllText(Path.Combine(_folder, "BadDeps", "BadDeps.deps.json"), "{ not json");
        var garbage = new byte[4096];
        new Random(42).NextBytes(garbage);
        File.WriteAllBytes(Path.Combine(_folder, "X.dll"), garbage);
    }

    [ClassCleanup]
    public static void DeletePluginFolder()
    {
        // The load contexts keep the DLLs open on Linux, which does not prevent deletion.
        try { Directory.Delete(_folder, recursive: true); } catch (IOException) { }
    }

    [TestMethod]
    public void BadFilesAreReportedByNameAndReasonAndEverythingElseLoads()
    {
        var mixed = PluginCatalog.Load(_folder);
        var pristine = PluginCatalog.Load(Paths.PluginArtifacts);
        Assert.IsEmpty(pristine.Errors, "the built-in plugin folder alone loads without errors: " + string.Join("; ", pristine.Errors));

        // Every built-in plugin still loads next to the bad files.
        foreach (var name in new[] { "gd", "heavy_ball", "adam" }) Assert.IsTrue(mixed.Optimizers.ContainsKey(name), $"optimizer {name} missing");
        foreach (var name in new[] { "quadratic", "fashion_mlp" }) Assert.IsTrue(mixed.Models.ContainsKey(name), $"model {name} missing");
        foreach (var name in new[] { "sharpness", "accuracy" }) Assert.IsTrue(mixed.Probes.ContainsKey(name), $"probe {name} missing");
        CollectionAssert.AreEquivalent(pristine.Optimizers.Keys.ToList(), mixed.Optimizers.Keys.ToList());
        CollectionAssert.AreEquivalent(pristine.Models.Keys.ToList(), mixed.Models.Keys.ToList());
        CollectionAssert.AreEquivalent(pristine.Probes.Keys.ToList(), mixed.Probes.Keys.ToList());
        Assert.IsFalse(mixed.Optimizers.ContainsKey("incompatible_gd"), "a plugin of another contract version was registered");
        Assert.IsFalse(mixed.Optimizers.ContainsKey("throwing"), "a plugin whose constructor throws was registered");
        Assert.AreEqual(Path.Combine("Harness.Plugins.Optimizers", "Harness.Plugins.Optimizers.dll"), mixed.Optimizers["gd"].Origin.File);
        Assert.AreEqual(64, mixed.Optimizers["gd"].Origin.Sha256.Length);

        string errors = string.Join("\n", mixed.Errors.Select(e => $"{e.File}: {e.Reason}"));
        Assert.HasCount(4, mixed.Errors, errors);

        var corrupt = mixed.Errors.Single(e => e.File == "X.dll");
        StringAssert.Contains(corrupt.Reason, "not a loadable .NET assembly", errors);
        StringAssert.Contains(corrupt.Reason, "BadImageFormatException", errors);

        var incompatible = mixed.Errors.Single(e => e.File == "IncompatiblePlugin.dll");
        StringAssert.Contains(incompatible.Reason, $"built against contract version {Contract.Version + 1}", errors);
        StringAssert.Contains(incompatible.Reason, $"the host implements version {Contract.Version}", errors);

        var badDeps = mixed.Errors.Single(e => e.File == Path.Combine("BadDeps", "BadDeps.dll"));
        StringAssert.Contains(badDeps.Reason, "cannot be loaded (InvalidOperationException", errors);
        StringAssert.Contains(badDeps.Reason, "BadDeps.deps.json", errors);

        var throwing = mixed.Errors.Single(e => e.File.StartsWith("ThrowingPlugin.dll", StringComparison.Ordinal));
        StringAssert.Contains(throwing.File, "Harness.TestPlugins.Throwing.ThrowingOptimizerPlugin", errors);
        StringAssert.Contains(throwing.Reason, "constructor threw InvalidOperationException", errors);
        StringAssert.Contains(throwing.Reason, "refuses to be constructed", errors);
    }

    [TestMethod]
    public void PluginsCommandListsTheLoadedPluginsAndTheFailedFiles()
    {
        var work = Paths.NewTempDirectory("plugins-cli");
        using var p = HarnessProcess.Run(work, TimeSpan.FromSeconds(60), "plugins", "--plugins", _folder);
        Assert.AreEqual(1, p.ExitCode, "harness plugins exits 1 when a file failed to load\n" + p.Output);
        foreach (var name in new[] { "gd", "quadratic", "sharpness" }) StringAssert.Contains(p.StdOut, name, p.Output);
        var notLoaded = p.StdOut.Split('\n').Where(l => l.StartsWith("not loaded:", StringComparison.Ordinal)).ToList();
        Assert.HasCount(4, notLoaded, p.Output);
        Assert.IsTrue(notLoaded.Any(l => l.StartsWith("not loaded: X.dll: not a loadable", StringComparison.Ordinal)), p.Output);
        Assert.IsTrue(notLoaded.Any(l => l.StartsWith("not loaded: IncompatiblePlugin.dll: built against contract version", StringComparison.Ordinal)), p.Output);
        Assert.IsTrue(notLoaded.Any(l => l.StartsWith("not loaded: ThrowingPlugin.dll", StringComparison.Ordinal)), p.Output);
        Directory.Delete(work, true);
    }

}
