using System.CommandLine;
using System.Text.Json;
using Harness.Host.Conformance;
using Harness.Host.Plugins;

namespace Harness.Host.Cli;

/// <summary><c>harness verify &lt;plugin.dll&gt;</c>: runs the conformance gate on every optimizer plugin of one
/// assembly and prints each check. Exit code 0 when all pass, 1 when one fails, 2 when the file cannot be loaded or
/// holds no optimizer plugin. The verdicts are stored in the cache the plugin loader consults.</summary>
public static class VerifyCommand
{
    public static Command Create()
    {
        var file = new Argument<string>("plugin") { Description = "plugin assembly (.dll)" };
        var json = new Option<bool>("--json") { Description = "print the reports as JSON (machine-readable) instead of text" };
        var cmd = new Command("verify", "Check optimizer plugins: decrease on a quadratic and Rosenbrock, state round trip, determinism, schema and threshold.") { file, json };
        cmd.SetAction(p => Run(p.GetValue(file)!, p.GetValue(json), Console.Out, Console.Error));
        return cmd;
    }

    public static int Run(string dll, bool asJson, TextWriter output, TextWriter error)
    {
        var catalog = PluginCatalog.LoadAssembly(dll);
        foreach (var e in catalog.Errors) error.WriteLine($"error: {e.File}: {e.Reason}");
        if (catalog.Optimizers.Count == 0)
        {
            if (catalog.Errors.Count == 0) error.WriteLine($"error: {dll} holds no optimizer plugin");
            return 2;
        }
        var cache = new ConformanceCache(ConformancePolicy.FromEnvironment().ResolvedCacheDirectory);
        var reports = new List<ConformanceReport>();
        foreach (var (name, loaded) in catalog.Optimizers.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            var report = ConformanceGate.Verify(loaded.Plugin);
            cache.Store(loaded.Origin.Sha256, report);
            reports.Add(report);
            if (asJson) continue;
            output.WriteLine($"{name} ({loaded.Origin.File}): {(report.Passed ? "PASSED" : $"FAILED — {report.FailureSummary}")}");
            foreach (var c in report.Checks)
                output.WriteLine($"  {(c.Passed ? "ok  " : "FAIL")} {c.Name,-17} {c.Detail}");
        }
        if (asJson)
            output.WriteLine(JsonSerializer.Serialize(reports, new JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower }));
        return reports.All(r => r.Passed) && catalog.Errors.Count == 0 ? 0 : 1;
    }
}
