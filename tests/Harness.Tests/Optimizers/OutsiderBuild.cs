using System.Diagnostics;
using System.IO.Compression;

namespace Harness.Tests.Optimizers;

/// <summary>
/// Builds a plugin project the way a user outside this repository does: the project's files are copied into a temp
/// folder (outside the clone, so none of the repository's Directory.Build.props, central package versions or
/// nuget.config apply), next to a nuget.config that offers Harness.* from the local feed artifacts/feed only, with a
/// package cache of its own (so the contract package can only come from that feed).
/// </summary>
public static class OutsiderBuild
{
    public static string Feed => Path.Combine(Paths.RepoRoot, "artifacts", "feed");

    /// <summary>The Harness.Abstractions version the build packed (from the .nupkg in the feed).</summary>
    public static string PackageVersion
    {
        get
        {
            var nupkgs = Directory.Exists(Feed) ? Directory.GetFiles(Feed, "Harness.Abstractions.*.nupkg") : [];
            if (nupkgs.Length == 0) Assert.Fail($"no Harness.Abstractions package in {Feed}: build Abstractions (it packs itself)");
            using var zip = ZipFile.OpenRead(nupkgs.OrderByDescending(File.GetLastWriteTimeUtc).First());
            using var reader = new StreamReader(zip.GetEntry("Harness.Abstractions.nuspec")!.Open());
            var nuspec = System.Xml.Linq.XDocument.Parse(reader.ReadToEnd());
            return nuspec.Descendants().First(e => e.Name.LocalName == "version").Value;
        }
    }

    /// <summary>A fresh folder outside the repository with the feed-only nuget.config.</summary>
    public static string NewWorkFolder(string prefix)
    {
        var work = Paths.NewTempDirectory(prefix);
        Assert.IsFalse(Path.GetFullPath(work).StartsWith(Path.GetFullPath(Paths.RepoRoot), StringComparison.Ordinal), $"{work} is inside the repository");
        string user = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        // The user's cache serves TorchSharp read-only, unless it holds a Harness.Abstractions (which could be stale).
        string fallback = Directory.Exists(user) && !Directory.Exists(Path.Combine(user, "harness.abstractions"))
            ? $"<fallbackPackageFolders><add key=\"user-cache\" value=\"{user}\" /></fallbackPackageFolders>" : "";
        File.WriteAllText(Path.Combine(work, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <clear />
                <add key="harness-local" value="{Feed}" />
                <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
              </packageSources>
              <packageSourceMapping>
                <packageSource key="harness-local"><package pattern="Harness.*" /></packageSource>
                <packageSource key="nuget.org"><package pattern="*" /></packageSource>
              </packageSourceMapping>
              {fallback}
            </configuration>
            """);
        return work;
    }

    /// <summary>Copies <paramref name="projectDirectory"/> (without bin/obj) into a new outside folder, builds it in
    /// Release and returns its plugin folder bin/plugin/&lt;project&gt;/.</summary>
    public static string Build(string projectDirectory, string prefix)
    {
        var work = NewWorkFolder(prefix);
        string name = Path.GetFileName(projectDirectory.TrimEnd('/'));
        string target = Path.Combine(work, name);
        foreach (var f in Directory.GetFiles(projectDirectory, "*", SearchOption.AllDirectories))
        {
            var rel = Path.GetRelativePath(projectDirectory, f);
            if (rel.StartsWith("bin/", StringComparison.Ordinal) || rel.StartsWith("obj/", StringComparison.Ordinal)) continue;
            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(target, rel))!);
            File.Copy(f, Path.Combine(target, rel));
        }
        return BuildInPlace(target, work);
    }

    /// <summary>Builds the project in <paramref name="projectFolder"/> (inside an outside work folder) and returns its
    /// plugin folder.</summary>
    public static string BuildInPlace(string projectFolder, string work)
    {
        var psi = new ProcessStartInfo("dotnet") { WorkingDirectory = projectFolder, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "build", "-c", "Release", "-nologo", "-v", "q", "-clp:ErrorsOnly" }) psi.ArgumentList.Add(a);
        psi.Environment["NUGET_PACKAGES"] = Path.Combine(work, "packages");
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        psi.Environment.Remove("MSBuildExtensionsPath");
        psi.Environment.Remove("MSBUILD_EXE_PATH");
        psi.Environment.Remove("MSBuildSDKsPath");
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromMinutes(10))) { p.Kill(entireProcessTree: true); Assert.Fail($"dotnet build of {projectFolder} did not finish in 10 minutes"); }
        Assert.AreEqual(0, p.ExitCode, $"dotnet build {projectFolder} failed:\n{stdout.Result}\n{stderr.Result}");
        string name = Path.GetFileName(projectFolder.TrimEnd('/'));
        var assets = File.ReadAllText(Path.Combine(projectFolder, "obj", "project.assets.json"));
        StringAssert.Contains(assets, $"\"Harness.Abstractions/{PackageVersion}\"", "the plugin must resolve the contract package of this build");
        return Path.Combine(projectFolder, "bin", "plugin", name);
    }

    /// <summary>The files of a plugin folder, relative; a plugin folder must hold only the plugin's own files.</summary>
    public static void AssertOnlyOwnFiles(string pluginFolder, string assembly)
    {
        var files = Directory.GetFileSystemEntries(pluginFolder, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(pluginFolder, f)).Order(StringComparer.Ordinal).ToList();
        CollectionAssert.AreEquivalent(new[] { $"{assembly}.deps.json", $"{assembly}.dll", $"{assembly}.pdb" }, files,
            $"{pluginFolder} must hold only the plugin's own files (no host assemblies, TorchSharp or native runtimes): {string.Join(", ", files)}");
    }
}
