using System.Text.Json;
using Harness.Abstractions;
using Harness.Host.Plugins;
using Microsoft.Extensions.Logging;

namespace Harness.Host.Conformance;

/// <summary>
/// How the plugin catalog applies the conformance gate when it loads optimizer plugins.
/// Environment: <c>HARNESS_VERIFY=0</c> turns the automatic gate off; <c>HARNESS_ALLOW_UNVERIFIED_PLUGINS=1</c> keeps
/// optimizers that fail it available (with a warning) — the user's override; <c>HARNESS_VERIFY_CACHE=&lt;dir&gt;</c>
/// moves the verdict cache (default: ~/.cache/harness/verify, or the temp folder).
/// </summary>
public sealed record ConformancePolicy(bool Enabled = true, bool AllowFailing = false, string? CacheDirectory = null)
{
    public static ConformancePolicy FromEnvironment() => new(
        Enabled: !IsOff(Environment.GetEnvironmentVariable("HARNESS_VERIFY")),
        AllowFailing: IsOn(Environment.GetEnvironmentVariable("HARNESS_ALLOW_UNVERIFIED_PLUGINS")),
        CacheDirectory: Environment.GetEnvironmentVariable("HARNESS_VERIFY_CACHE"));

    public static readonly ConformancePolicy Off = new(Enabled: false);

    private static bool IsOn(string? v) => v is not null && (v == "1" || v.Equals("true", StringComparison.OrdinalIgnoreCase) || v.Equals("yes", StringComparison.OrdinalIgnoreCase));
    private static bool IsOff(string? v) => v is not null && (v == "0" || v.Equals("false", StringComparison.OrdinalIgnoreCase) || v.Equals("off", StringComparison.OrdinalIgnoreCase));

    public string ResolvedCacheDirectory
    {
        get
        {
            if (!string.IsNullOrWhiteSpace(CacheDirectory)) return CacheDirectory;
            var home = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
            if (string.IsNullOrWhiteSpace(home))
            {
                var user = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
                home = string.IsNullOrWhiteSpace(user) ? Path.GetTempPath() : Path.Combine(user, ".cache");
            }
            return Path.Combine(home, "harness", "verify");
        }
    }
}

/// <summary>Verdicts of the gate cached by plugin file hash (SHA-256), plugin name and gate version, so a plugin
/// file is verified once, when it is first loaded. Unreadable or unwritable caches only cost a re-verification.</summary>
public sealed class ConformanceCache(string directory)
{
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    public string Directory { get; } = directory;

    private string PathFor(string sha256, string plugin) =>
        System.IO.Path.Combine(Directory, $"{sha256}.{plugin}.v{ConformanceGate.Version}.json");

    public ConformanceReport? TryGet(string sha256, string plugin)
    {
        try
        {
            var path = PathFor(sha256, plugin);
            return File.Exists(path) ? JsonSerializer.Deserialize<ConformanceReport>(File.ReadAllText(path), Json) : null;
        }
        catch (Exception e) when (e is IOException or JsonException or UnauthorizedAccessException) { return null; }
    }

    public void Store(string sha256, ConformanceReport report)
    {
        try
        {
            System.IO.Directory.CreateDirectory(Directory);
            var path = PathFor(sha256, report.Plugin);
            var tmp = $"{path}.{Environment.ProcessId}.tmp";
            File.WriteAllText(tmp, JsonSerializer.Serialize(report, Json));
            File.Move(tmp, path, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }

    /// <summary>The cached verdict, or a fresh one (stored). Inside the <c>harness</c> executable the gate runs in a
    /// child process (<c>harness verify</c>), so a plugin that aborts natively, overflows its stack or exhausts memory
    /// while being checked fails its verdict instead of taking the host down; elsewhere (tests, embedding) in-process.</summary>
    public ConformanceReport GetOrVerify(string sha256, IOptimizerPlugin plugin, string name, string? file = null)
    {
        if (TryGet(sha256, name) is { } cached && cached.Plugin == name) return cached;
        if (file is not null && HarnessExecutable() is { } exe)
            return VerifyInChildProcess(exe, file, sha256, name);
        var report = ConformanceGate.Verify(plugin);
        Store(sha256, report);
        return report;
    }

    /// <summary>The running harness executable, or null when this process is something else (a test host).</summary>
    private static string? HarnessExecutable()
    {
        var path = Environment.ProcessPath;
        return path is not null && System.IO.Path.GetFileNameWithoutExtension(path) == "harness" ? path : null;
    }

    private ConformanceReport VerifyInChildProcess(string exe, string file, string sha256, string name)
    {
        var psi = new System.Diagnostics.ProcessStartInfo(exe) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "verify", file }) psi.ArgumentList.Add(a);
        psi.Environment["HARNESS_VERIFY_CACHE"] = Directory;
        using var child = System.Diagnostics.Process.Start(psi)!;
        var stderr = child.StandardError.ReadToEndAsync();
        _ = child.StandardOutput.ReadToEndAsync();
        if (!child.WaitForExit(TimeSpan.FromMinutes(5)))
        {
            try { child.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            return Failed(name, "the gate did not finish within 5 minutes");
        }
        // Exit 0/1: every optimizer of the file was checked and its verdict stored in the cache.
        if (TryGet(sha256, name) is { } report && report.Plugin == name) return report;
        string tail = stderr.IsCompleted ? stderr.Result : "";
        if (tail.Length > 2000) tail = tail[^2000..];
        return Failed(name, $"the gate's process ended with exit code {child.ExitCode}{(child.ExitCode > 128 ? $" (signal {child.ExitCode - 128})" : "")} before a verdict: {tail.Trim()}");
    }

    /// <summary>A failed verdict that is not stored, so the plugin is checked again on the next load.</summary>
    private static ConformanceReport Failed(string name, string why) =>
        new(name, ConformanceGate.Version, [new ConformanceCheck("process", false, why)]);

    /// <summary>Applies the gate to every optimizer of a freshly loaded catalog: a failing optimizer is removed and
    /// reported among the catalog's errors with the failed check, unless the policy allows failing plugins.</summary>
    public static void Apply(PluginCatalog catalog, ConformancePolicy policy, ILogger? logger)
    {
        if (!policy.Enabled) return;
        var cache = new ConformanceCache(policy.ResolvedCacheDirectory);
        foreach (var (name, loaded) in catalog.Optimizers.OrderBy(kv => kv.Key, StringComparer.Ordinal).ToList())
        {
            var report = cache.GetOrVerify(loaded.Origin.Sha256, loaded.Plugin, name, System.IO.Path.Combine(catalog.Folder, loaded.Origin.File));
            catalog.RecordConformance(name, report);
            if (report.Passed) continue;
            string reason = $"optimizer '{name}' failed the conformance gate ({report.FailureSummary}); run 'harness verify {loaded.Origin.File}' for the full report";
            if (policy.AllowFailing)
                logger?.LogWarning("{Reason}; kept because HARNESS_ALLOW_UNVERIFIED_PLUGINS is set", reason);
            else
                catalog.RejectOptimizer(name, reason + ", or set HARNESS_ALLOW_UNVERIFIED_PLUGINS=1 to use it anyway", logger);
        }
    }
}
