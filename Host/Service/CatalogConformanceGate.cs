using Harness.Host.Plugins;

namespace Harness.Host.Service;

/// <summary>The service's gate: the conformance gate already ran when the catalog was loaded (PluginCatalog.Load applies
/// it, cached by file SHA-256, and removes failing optimizers unless HARNESS_ALLOW_UNVERIFIED_PLUGINS=1); this reports
/// its verdict for GET /api/plugins.</summary>
public sealed class CatalogConformanceGate : IOptimizerGate
{
    public GateResult Check(PluginCatalog catalog, string optimizer, PluginOrigin origin) =>
        catalog.Conformance.TryGetValue(optimizer, out var report)
            ? new GateResult(report.Passed, report.Passed ? $"passed {report.Checks.Count} checks" : report.FailureSummary)
            : new GateResult(true, "gate not run (HARNESS_VERIFY=0)");
}
