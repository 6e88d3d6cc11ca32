using System.Reflection;

namespace Harness.Tests;

/// <summary>Locations of the build this test run belongs to.</summary>
public static class Paths
{
    public static string RepoRoot { get; } =
        typeof(Paths).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().First(a => a.Key == "RepoRoot").Value!;

    /// <summary>The built-in plugins as the build lays them out (artifacts/plugins/&lt;Name&gt;/&lt;Name&gt;.dll).</summary>
    public static string PluginArtifacts => Path.Combine(RepoRoot, "artifacts", "plugins");

    /// <summary>The host executable's folder (tests pass --plugins PluginArtifacts: plugins/ is copied beside the host only in Host/bin).</summary>
    public static string HostDirectory => Path.GetDirectoryName(typeof(Harness.Host.HarnessOptions).Assembly.Location)!;

    public static string NewTempDirectory(string prefix)
    {
        var d = Path.Combine(Path.GetTempPath(), $"harness-{prefix}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(d);
        return d;
    }

    /// <summary>Copies a folder tree (a plugin folder, a built plugin) into <paramref name="to"/>, overwriting.</summary>
    public static void CopyDirectory(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(to, Path.GetRelativePath(from, f));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(f, target, overwrite: true);
        }
    }
}
