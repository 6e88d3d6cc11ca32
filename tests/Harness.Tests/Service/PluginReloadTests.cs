using System.Runtime.CompilerServices;
using System.Runtime.Loader;
using Harness.Host;
using Harness.Host.Service;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Harness.Tests.Service;

/// <summary>The hot plugin folder gives memory back: a replaced catalog's load contexts are unloaded and collected,
/// but not while a lease on it is open (a validation that started before the reload finishes on the old plugins).</summary>
[TestClass]
public sealed class PluginReloadTests
{
    [TestMethod]
    public void AReplacedCatalogsLoadContextIsCollectedOnceItsLeaseEnds()
    {
        var folder = Paths.NewTempDirectory("reload");
        string? verify = Environment.GetEnvironmentVariable("HARNESS_VERIFY");
        Environment.SetEnvironmentVariable("HARNESS_VERIFY", "0");
        try
        {
            Paths.CopyDirectory(Paths.PluginArtifacts, folder);
            var touched = Directory.GetFiles(folder, "*.dll", SearchOption.AllDirectories).Order(StringComparer.Ordinal).First();
            var registry = new PluginRegistry(Options.Create(new HarnessOptions { PluginDirectory = folder }), new PassThroughGate(), NullLogger<PluginRegistry>.Instance);
            Reload(registry, touched, 1); // generation 1: generation 0 is the DI container's and stays loaded

            var context = LeaseAcrossAReload(registry, touched);
            Assert.AreEqual(0, registry.RetiredCatalogs);
            for (int i = 0; i < 20 && context.IsAlive; i++) { GC.Collect(); GC.WaitForPendingFinalizers(); }
            Assert.IsFalse(context.IsAlive, "the replaced catalog's load context was not collected after 20 full collections");
        }
        finally
        {
            Environment.SetEnvironmentVariable("HARNESS_VERIFY", verify);
            Directory.Delete(folder, true);
        }
    }

    private static void Reload(PluginRegistry registry, string touched, int generation)
    {
        File.SetLastWriteTimeUtc(touched, DateTime.UtcNow.AddMinutes(generation));
        Assert.IsFalse(registry.Poll(), "a change is loaded only once the folder settled");
        Assert.IsTrue(registry.Poll());
        Assert.AreEqual(generation, registry.Current.Generation);
    }

    /// <summary>In its own frame, so no local of the test keeps the catalog alive.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static WeakReference LeaseAcrossAReload(PluginRegistry registry, string touched)
    {
        var lease = registry.Lease();
        var context = ContextOf(lease);
        Reload(registry, touched, 2);
        Assert.AreEqual(1, registry.RetiredCatalogs, "a leased catalog is not disposed");
        Assert.AreEqual("gd", UseOptimizer(lease), "the leased catalog's plugins still work after the reload");
        Assert.IsTrue(context.IsAlive);
        lease.Dispose();
        return context;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static WeakReference ContextOf(PluginRegistry.CatalogLease lease)
    {
        var context = AssemblyLoadContext.GetLoadContext(lease.Catalog.Optimizers["gd"].Plugin.GetType().Assembly)!;
        Assert.IsTrue(context.IsCollectible, "plugins load into collectible contexts");
        return new WeakReference(context);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static string UseOptimizer(PluginRegistry.CatalogLease lease) => lease.Catalog.Optimizers["gd"].Plugin.Name;
}
