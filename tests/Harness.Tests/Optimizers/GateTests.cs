using System.Text.Json;
using Harness.Host.Cli;
using Harness.Host.Conformance;
using Harness.Host.Plugins;

namespace Harness.Tests.Optimizers;

/// <summary>The conformance gate: built-ins pass; deliberately broken optimizers are rejected with the right reason,
/// by <c>verify</c> and by the plugin loader (unless the user overrides); verdicts are cached by file hash.</summary>
[TestClass]
public sealed class GateTests
{
    [TestMethod]
    public void BuiltInOptimizersLoadFromThePluginFolderAndPassTheGate()
    {
        var catalog = HostFixture.Catalog;
        string[] expected =
        [
            "adafactor", "adagrad", "adam", "adamw", "amsgrad", "ema_heavy_ball", "ema_nesterov", "gd", "heavy_ball", "nadam", "nesterov",
            "padam", "precond_ema_heavy_ball", "precond_ema_nesterov", "precond_gd", "precond_heavy_ball", "precond_nesterov", "rmsprop",
            "qhm", "lion", "signum",
        ];
        CollectionAssert.IsSubsetOf(expected, catalog.Optimizers.Keys.ToList(), "missing: " + string.Join(", ", expected.Except(catalog.Optimizers.Keys)));
        Assert.IsEmpty(catalog.Errors.Where(e => e.File.Contains("Optimizers")).ToList(),
            string.Join("; ", catalog.Errors.Select(e => $"{e.File}: {e.Reason}")));
        foreach (var name in expected)
        {
            Assert.IsTrue(catalog.Conformance.TryGetValue(name, out var report), $"{name} was not gated");
            Assert.IsTrue(report.Passed, $"{name}: {report.FailureSummary}");
            CollectionAssert.AreEqual(ConformanceGate.CheckNames.ToList(), report.Checks.Select(c => c.Name).ToList());
        }
    }

    [TestMethod]
    public void BrokenOptimizersAreRejectedWithTheRightReason()
    {
        var catalog = PluginCatalog.LoadAssembly(HostFixture.BrokenPluginDll);
        Assert.IsEmpty(catalog.Errors.ToList(), string.Join("; ", catalog.Errors.Select(e => e.Reason)));
        var expected = new Dictionary<string, string>
        {
            ["broken_ascent"] = "quadratic",
            ["broken_state"] = "state_round_trip",
            ["broken_random"] = "determinism",
            ["broken_threshold"] = "threshold_boundary",
            ["broken_no_threshold"] = "threshold",
        };
        CollectionAssert.AreEquivalent(expected.Keys.ToList(), catalog.Optimizers.Keys.ToList());
        foreach (var (name, check) in expected)
        {
            var report = ConformanceGate.Verify(catalog.Optimizers[name].Plugin);
            Assert.IsFalse(report.Passed, $"{name} passed the gate");
            Assert.AreEqual(check, report.FirstFailure!.Name, $"{name} was rejected for the wrong reason: {report.FailureSummary}");
            // Everything before the reason passed: the verdict is not an accident of a crash.
            foreach (var c in report.Checks.TakeWhile(c => c.Name != check))
                Assert.IsTrue(c.Passed, $"{name}: {c.Name} failed too: {c.Detail}");
        }
    }

    [TestMethod]
    public void AFalseThresholdFailsWithTheMeasuredBoundary()
    {
        // broken_threshold is GD (truly stable up to λ = 2/η) declaring 3/η: the boundary is at 2/3 of it.
        var catalog = PluginCatalog.LoadAssembly(HostFixture.BrokenPluginDll);
        var (passed, detail, m) = ConformanceGate.MeasureBoundary(catalog.Optimizers["broken_threshold"].Plugin);
        Assert.IsFalse(passed, detail);
        Assert.IsNotNull(m.BoundaryRatio, detail);
        Assert.AreEqual(2.0 / 3.0, m.BoundaryRatio!.Value, 0.01, detail);
        StringAssert.Contains(detail, $"divergence starts at {m.BoundaryRatio.Value:F4}× it", detail);
        StringAssert.Contains(detail, "the declared threshold is false");
        var none = ConformanceGate.Verify(catalog.Optimizers["broken_no_threshold"].Plugin);
        StringAssert.Contains(none.FirstFailure!.Detail, "scales linearly with the gradient");
    }

    [TestMethod]
    public void EveryDeclaredBuiltInThresholdIsTheMeasuredBoundaryWithinTwoPercent()
    {
        // The gate's own numbers (also in `harness verify` output): each built-in with a threshold diverges within 2% of
        // it on ½λθ²; the sign-based ones declare none; Lion passes at its user-facing default lr = 1e-4.
        var catalog = HostFixture.Catalog;
        foreach (var name in catalog.Optimizers.Keys.Where(n => catalog.Optimizers[n].Origin.File.Contains("Harness.Plugins.Optimizers")))
        {
            var report = catalog.Conformance[name];
            var boundary = report.Checks.Single(c => c.Name == "threshold_boundary");
            Assert.IsTrue(boundary.Passed, $"{name}: {boundary.Detail}");
            if (name is "lion" or "signum") { StringAssert.Contains(boundary.Detail, "no linear threshold declared"); continue; }
            var ratio = System.Text.RegularExpressions.Regex.Match(boundary.Detail, @"measured boundary ([0-9.]+)×");
            Assert.IsTrue(ratio.Success, $"{name}: {boundary.Detail}");
            Assert.AreEqual(1.0, double.Parse(ratio.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), ConformanceGate.BoundaryTolerance, $"{name}: {boundary.Detail}");
        }
        Assert.AreEqual(1e-4, (double)catalog.Optimizers["lion"].Plugin.Hyperparameters.Single(h => h.Name == "lr").Default);
    }

    [TestMethod]
    public void LoaderDropsFailingOptimizersUnlessOverriddenAndCachesVerdictsByHash()
    {
        var folder = Paths.NewTempDirectory("broken-plugins");
        var cache = Paths.NewTempDirectory("broken-cache");
        File.Copy(HostFixture.BrokenPluginDll, Path.Combine(folder, "BrokenOptimizers.dll"));
        var strict = PluginCatalog.Load(folder, null, new ConformancePolicy(Enabled: true, CacheDirectory: cache));
        Assert.IsEmpty(strict.Optimizers.Keys.ToList(), "failing optimizers must not be offered to matrices");
        var ascent = strict.Errors.Single(e => e.File.Contains("broken_ascent"));
        StringAssert.Contains(ascent.Reason, "quadratic");
        StringAssert.Contains(ascent.Reason, "harness verify");
        StringAssert.Contains(strict.Errors.Single(e => e.File.Contains("broken_random")).Reason, "determinism");
        StringAssert.Contains(strict.Errors.Single(e => e.File.Contains("broken_state")).Reason, "state_round_trip");

        var lenient = PluginCatalog.Load(folder, null, new ConformancePolicy(Enabled: true, AllowFailing: true, CacheDirectory: cache));
        CollectionAssert.AreEquivalent(new[] { "broken_ascent", "broken_random", "broken_state", "broken_threshold", "broken_no_threshold" }, lenient.Optimizers.Keys.ToList());

        // The verdict comes from the cache (keyed by the file's SHA-256): a forged "passed" verdict is believed.
        var files = Directory.GetFiles(cache, "*.broken_ascent.v*.json");
        Assert.HasCount(1, files);
        StringAssert.StartsWith(Path.GetFileName(files[0]), Sha(folder));
        var forged = new ConformanceReport("broken_ascent", ConformanceGate.Version,
            ConformanceGate.CheckNames.Select(n => new ConformanceCheck(n, true, "forged")).ToList());
        File.WriteAllText(files[0], JsonSerializer.Serialize(forged, new JsonSerializerOptions { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower }));
        var cached = PluginCatalog.Load(folder, null, new ConformancePolicy(Enabled: true, CacheDirectory: cache));
        CollectionAssert.AreEquivalent(new[] { "broken_ascent" }, cached.Optimizers.Keys.ToList());
    }

    private static string Sha(string folder)
    {
        using var s = File.OpenRead(Path.Combine(folder, "BrokenOptimizers.dll"));
        return Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(s));
    }

    [TestMethod]
    public void VerifyCommandReportsEveryCheckAndFails()
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int rc = VerifyCommand.Run(HostFixture.BrokenPluginDll, asJson: false, output, error);
        Assert.AreEqual(1, rc, error.ToString());
        var text = output.ToString();
        StringAssert.Contains(text, "broken_ascent (BrokenOptimizers.dll): FAILED — quadratic:");
        StringAssert.Contains(text, "broken_state (BrokenOptimizers.dll): FAILED — state_round_trip:");
        StringAssert.Contains(text, "broken_random (BrokenOptimizers.dll): FAILED — determinism:");
        StringAssert.Contains(text, "broken_threshold (BrokenOptimizers.dll): FAILED — threshold_boundary: the declared threshold is false");

        var json = new StringWriter();
        Assert.AreEqual(1, VerifyCommand.Run(HostFixture.BrokenPluginDll, asJson: true, json, error));
        using var doc = JsonDocument.Parse(json.ToString());
        Assert.AreEqual(5, doc.RootElement.GetArrayLength());

        Assert.AreEqual(2, VerifyCommand.Run(Path.Combine(Paths.NewTempDirectory("none"), "missing.dll"), false, output, error));
        Assert.IsTrue(HarnessCli.Build().Subcommands.Any(c => c.Name == "verify"), "verify is registered on the command line");
    }
}
