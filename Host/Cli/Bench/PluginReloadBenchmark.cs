using System.Globalization;
using Harness.Host.Service;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Harness.Host.Cli.Bench;

/// <summary><c>harness bench plugin-reload</c>: the service's hot plugin folder reloaded 200 times in-process (a copy of
/// the plugin folder, one file touched per reload, the registry's own poll loop driven by hand) and the process's RSS
/// (VmRSS, after full garbage collections) after 10, 20, 30, 50, 100, 150 and 200 reloads. Replaced catalogs are disposed,
/// their collectible load contexts unloaded and the native heap trimmed, so the figures should be within a few MB.</summary>
public sealed class PluginReloadBenchmark : IBenchmark
{
    public string Name => "plugin-reload";
    public string Description => "host RSS after 10 and after 200 plugin-folder reloads";

    public int Run(BenchContext context, TextWriter output)
    {
        int total = context.Quick ? 40 : 200;
        var folder = Path.Combine(Path.GetTempPath(), $"harness-reload-{Guid.NewGuid():N}");
        string? verify = Environment.GetEnvironmentVariable("HARNESS_VERIFY");
        Environment.SetEnvironmentVariable("HARNESS_VERIFY", "0"); // the reload cost, not the conformance gate's
        try
        {
            CopyDirectory(context.PluginDirectory, folder);
            var touched = Directory.GetFiles(folder, "*.dll", SearchOption.AllDirectories).Order(StringComparer.Ordinal).First();
            var options = Options.Create(new HarnessOptions { PluginDirectory = folder });
            var registry = new PluginRegistry(options, new PassThroughGate(), NullLogger<PluginRegistry>.Instance);
            var rss = new SortedDictionary<int, double>();
            var when = new[] { 10, 20, 30, 50, 100, 150, total };
            for (int i = 1; i <= total; i++)
            {
                File.SetLastWriteTimeUtc(touched, DateTime.UtcNow.AddSeconds(i));
                registry.Poll();                                   // sees the change
                if (!registry.Poll()) throw new InvalidOperationException($"reload {i} did not load a new catalog");
                if (when.Contains(i)) rss[i] = RssMb();
            }
            int contexts = System.Runtime.Loader.AssemblyLoadContext.All.Count(c => c.IsCollectible);
            output.WriteLine($"collectible load contexts alive after {total} reloads: {contexts}");
            output.WriteLine($"plugin folder {context.PluginDirectory} ({Directory.GetFiles(folder, "*.dll", SearchOption.AllDirectories).Length} dlls); generation {registry.Current.Generation}; retired-but-leased catalogs {registry.RetiredCatalogs}");
            output.WriteLine($"{"reloads",8} {"RSS MB",8}");
            foreach (var (n, mb) in rss) output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{n,8} {mb,8:F1}"));
            double growth = rss[total] - rss[10];
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"growth 10 → {total}: {growth:F1} MB ({growth / (total - 10) * 1024:F0} KB per reload)"));
            return 0;
        }
        finally
        {
            Environment.SetEnvironmentVariable("HARNESS_VERIFY", verify);
            try { Directory.Delete(folder, true); } catch (IOException) { }
        }
    }

    private static double RssMb()
    {
        for (int k = 0; k < 5; k++) { GC.Collect(); GC.WaitForPendingFinalizers(); }
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        var line = File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024.0;
    }

    private static void CopyDirectory(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from)) File.Copy(f, Path.Combine(to, Path.GetFileName(f)));
        foreach (var d in Directory.GetDirectories(from)) CopyDirectory(d, Path.Combine(to, Path.GetFileName(d)));
    }
}
