using System.Globalization;
using System.Text.RegularExpressions;
using Harness.Abstractions;

namespace Harness.Tests.Optimizers;

/// <summary>docs/optimizers.md lists every built-in optimizer with every hyperparameter and its actual default.</summary>
[TestClass]
public sealed class DocsTests
{
    [TestMethod]
    public void CatalogueTableListsEveryOptimizerHyperparameterAndDefault()
    {
        var lines = File.ReadAllLines(Path.Combine(Paths.RepoRoot, "docs", "optimizers.md"));
        foreach (var (name, plugin) in OptimizerTestKit.Plugins)
        {
            var row = lines.SingleOrDefault(l => l.StartsWith($"| `{name}` |", StringComparison.Ordinal));
            Assert.IsNotNull(row, $"docs/optimizers.md has no catalogue row for {name}");
            var cells = row.Split('|');
            string hyper = cells[3];
            foreach (var spec in plugin.Hyperparameters)
            {
                var m = Regex.Match(hyper, $"`{spec.Name}`[^(`]*\\(([^)]*)\\)");
                Assert.IsTrue(m.Success, $"{name}: hyperparameter {spec.Name} is not documented with its default");
                string token = Regex.Replace(m.Groups[1].Value.Split([',', ' ', '='], StringSplitOptions.RemoveEmptyEntries)[0], "[¹²³⁴⁵⁶]", "").Replace('−', '-');
                object documented = spec.Kind == HyperparameterKind.Boolean ? bool.Parse(token) : double.Parse(token, CultureInfo.InvariantCulture);
                object actual = spec.Kind == HyperparameterKind.Boolean ? spec.Default : Convert.ToDouble(spec.Default, CultureInfo.InvariantCulture);
                Assert.AreEqual(actual, documented, $"{name}: documented default of {spec.Name}");
            }
            Assert.AreEqual(plugin.Hyperparameters.Count, Regex.Matches(hyper, "`[a-z0-9_]+`").Count, $"{name}: the row lists other hyperparameters than the schema");
        }
    }
}
