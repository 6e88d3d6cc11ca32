using Harness.Host;
using Harness.Host.Conformance;
using Harness.Host.Matrix;
using Harness.Host.Plugins;
using Harness.Host.Telemetry;
using Harness.Host.Training;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Harness.Tests.Optimizers;

/// <summary>Plugin catalogs and matrix runs for the optimizer tests. The gate's verdict cache lives in one temp
/// folder per test process, so the built-ins are verified once per run of the tests.</summary>
public static class HostFixture
{
    public static string GateCache { get; } = Paths.NewTempDirectory("verify-cache");

    public static ConformancePolicy Gate(bool allowFailing = false) => new(Enabled: true, AllowFailing: allowFailing, CacheDirectory: GateCache);

    private static readonly Lazy<PluginCatalog> BuiltIns = new(() => PluginCatalog.Load(Paths.PluginArtifacts, null, Gate()));

    /// <summary>The built-in plugins, loaded from artifacts/plugins through the gate.</summary>
    public static PluginCatalog Catalog => BuiltIns.Value;

    public static string BrokenPluginDll =>
        Path.Combine(Paths.RepoRoot, "artifacts", "test-plugins", "BrokenOptimizers", "BrokenOptimizers.dll");

    private sealed class Silent : IRunProgress;

    /// <summary>Writes <paramref name="yaml"/> to a file in <paramref name="dir"/>, validates and runs it.</summary>
    public static (MatrixSpec spec, MatrixOutcome outcome) Run(string yaml, string dir, PluginCatalog? catalog = null)
    {
        catalog ??= Catalog;
        var path = Path.Combine(dir, "matrix.yaml");
        File.WriteAllText(path, yaml);
        var spec = MatrixParser.ParseFile(path, catalog);
        using var metrics = new HarnessMetrics();
        var runner = new MatrixRunner(catalog, metrics, Options.Create(new HarnessOptions { ResultsDirectory = Path.Combine(dir, "results") }),
            NullLogger<MatrixRunner>.Instance);
        return (spec, runner.Run(spec, new Silent(), CancellationToken.None));
    }

    /// <summary>The validation errors of <paramref name="yaml"/> (empty when valid).</summary>
    public static IReadOnlyList<MatrixError> Errors(string yaml, string dir)
    {
        var path = Path.Combine(dir, $"m{Guid.NewGuid():N}.yaml");
        File.WriteAllText(path, yaml);
        try { MatrixExpander.Expand(MatrixParser.ParseFile(path, Catalog)); return []; }
        catch (MatrixValidationException e) { return e.Errors; }
    }
}
