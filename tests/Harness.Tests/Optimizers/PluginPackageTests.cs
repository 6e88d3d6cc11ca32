using System.Text.RegularExpressions;
using Harness.Abstractions;
using Harness.Host.Conformance;
using Harness.Host.Plugins;

namespace Harness.Tests.Optimizers;

/// <summary>
/// The outsider path's pieces: the contract package's version follows the contract; the README's plugin listing is the
/// template's files, and built verbatim outside the repository against the package from the local feed alone it gives
/// a plugin folder with only the plugin's own files that passes the conformance gate; docs/optimizers.md names the
/// same package reference and template.
/// </summary>
[TestClass]
public sealed class PluginPackageTests
{
    private static string Template(string file) => File.ReadAllText(Path.Combine(Paths.RepoRoot, "templates", "HarnessOptimizer", file));

    /// <summary>The fenced block after <c>&lt;!-- listing: path --&gt;</c> and before <c>&lt;!-- end listing --&gt;</c>.</summary>
    public static string Listing(string markdown, string path)
    {
        var m = Regex.Match(markdown, $@"<!-- listing: {Regex.Escape(path)} -->\n```[a-z]*\n(.*?)```\n<!-- end listing -->", RegexOptions.Singleline);
        Assert.IsTrue(m.Success, $"README.md has no listing of {path} between '<!-- listing: {path} -->' and '<!-- end listing -->'");
        return m.Groups[1].Value;
    }

    [TestMethod]
    public void PackageVersionFollowsTheContractEverywhere()
    {
        string version = OutsiderBuild.PackageVersion;
        Assert.AreEqual(Contract.Version, int.Parse(version.Split('.')[0]), $"Harness.Abstractions {version}: the major must be Contract.Version");
        Assert.IsTrue(File.Exists(Path.Combine(OutsiderBuild.Feed, $"Harness.Templates.{version}.nupkg")), "the template package has the contract package's version");
        string reference = $"<PackageReference Include=\"Harness.Abstractions\" Version=\"{version}\" ExcludeAssets=\"runtime;native\" />";
        foreach (var file in new[] { "templates/HarnessOptimizer/MyOptimizer.csproj", "examples/MinimalOptimizer/MinimalOptimizer.csproj",
                     "examples/AdaBeliefOptimizer/AdaBeliefOptimizer.csproj", "README.md", "docs/optimizers.md" })
            StringAssert.Contains(File.ReadAllText(Path.Combine(Paths.RepoRoot, file)), reference, $"{file} must reference the package as the template does");
        foreach (var file in new[] { "README.md", "docs/optimizers.md" })
            StringAssert.Contains(File.ReadAllText(Path.Combine(Paths.RepoRoot, file)), "dotnet new harness-optimizer -n MyOptimizer", $"{file} names the template");
    }

    [TestMethod]
    public void ReadmeListingIsTheTemplateAndBuildsOutsideTheRepositoryIntoAPluginThatPassesTheGate()
    {
        var readme = File.ReadAllText(Path.Combine(Paths.RepoRoot, "README.md"));
        string csproj = Listing(readme, "templates/HarnessOptimizer/MyOptimizer.csproj");
        string source = Listing(readme, "templates/HarnessOptimizer/MyOptimizer.cs");
        Assert.AreEqual(Template("MyOptimizer.csproj"), csproj, "README's csproj listing is the template's file");
        Assert.AreEqual(Template("MyOptimizer.cs"), source, "README's source listing is the template's file");

        var work = OutsiderBuild.NewWorkFolder("readme-listing");
        try
        {
            var project = Path.Combine(work, "MyOptimizer");
            Directory.CreateDirectory(project);
            File.WriteAllText(Path.Combine(project, "MyOptimizer.csproj"), csproj);
            File.WriteAllText(Path.Combine(project, "MyOptimizer.cs"), source);
            var folder = OutsiderBuild.BuildInPlace(project, work);
            OutsiderBuild.AssertOnlyOwnFiles(folder, "MyOptimizer");

            var catalog = PluginCatalog.LoadAssembly(Path.Combine(folder, "MyOptimizer.dll"));
            Assert.IsEmpty(catalog.Errors.ToList(), string.Join("; ", catalog.Errors.Select(e => e.Reason)));
            var report = ConformanceGate.Verify(catalog.Optimizers["myoptimizer"].Plugin);
            Assert.IsTrue(report.Passed, report.FailureSummary);
            StringAssert.Contains(report.Checks.Single(c => c.Name == "threshold").Detail, "linear recurrence");
        }
        finally { Directory.Delete(work, recursive: true); }
    }

    [TestMethod]
    public void DocsPluginGuideDescribesTheTemplatesProject()
    {
        var docs = File.ReadAllText(Path.Combine(Paths.RepoRoot, "docs", "optimizers.md"));
        var template = Template("MyOptimizer.csproj");
        foreach (var property in new[] { "<EnableDynamicLoading>true</EnableDynamicLoading>", "<ImplicitUsings>enable</ImplicitUsings>" })
        {
            StringAssert.Contains(template, property);
            StringAssert.Contains(docs, property, $"docs/optimizers.md must name {property} like the template");
        }
        StringAssert.Contains(docs, "ThresholdCheckSettings");
        StringAssert.Contains(docs, "examples/outsider-path.sh");
    }
}
