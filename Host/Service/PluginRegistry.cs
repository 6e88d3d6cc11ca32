using System.Collections.Concurrent;
using Harness.Host.Plugins;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Harness.Host.Service;

/// <summary>Result of the conformance gate for one optimizer plugin.</summary>
public sealed record GateResult(bool Passed, string Detail);

/// <summary>
/// The conformance gate an optimizer plugin must pass before the service accepts matrices using it. The default
/// accepts everything; the conformance checks (<c>harness verify</c>) plug in here by registering another
/// implementation. Results are cached per (optimizer, file SHA-256), so a gate runs once per plugin version.
/// A gate should run the plugin in a worker process (the plugin folder is trusted code, but can still crash).
/// </summary>
public interface IOptimizerGate
{
    GateResult Check(PluginCatalog catalog, string optimizer, PluginOrigin origin);
}

public sealed class PassThroughGate : IOptimizerGate
{
    public GateResult Check(PluginCatalog catalog, string optimizer, PluginOrigin origin) => new(true, "no conformance gate configured");
}

/// <summary>
/// The hot plugin folder: keeps the current <see cref="PluginCatalog"/> (used to validate submitted matrices and
/// to list plugins) and polls the folder every <see cref="HarnessOptions.PluginPollSeconds"/>. A change (a file
/// added, removed, resized or touched) is loaded once the folder has looked the same for two polls in a row, so a
/// half-copied DLL is never loaded; a file that fails to load is listed with its reason and tried again when it
/// changes. Runs are not affected: each worker loads the folder itself when it starts. A replaced catalog is
/// disposed (its collectible load contexts unloaded) as soon as no <see cref="Lease"/> on it is open; the first
/// catalog is never disposed (the DI container hands it out as <see cref="PluginCatalog"/>).
/// </summary>
public sealed class PluginRegistry : BackgroundService
{
    private readonly HarnessOptions _o;
    private readonly IOptimizerGate _gate;
    private readonly ILogger<PluginRegistry> _logger;
    private readonly ConcurrentDictionary<(string, string), GateResult> _gateCache = new();
    private volatile Snapshot _current;

    public sealed record Snapshot(PluginCatalog Catalog, IReadOnlyDictionary<string, GateResult> Gates, DateTime LoadedUtc, int Generation);

    public PluginRegistry(IOptions<HarnessOptions> options, IOptimizerGate gate, ILogger<PluginRegistry> logger)
    {
        _o = options.Value;
        _gate = gate;
        _logger = logger;
        _current = Load(0);
        _first = _current.Catalog;
        _seen = _loaded = Fingerprint();
    }

    public Snapshot Current => _current;
    /// <summary>The current catalog, for a use that ends before the next reload could dispose it (prefer <see cref="Lease"/>).</summary>
    public PluginCatalog Catalog => _current.Catalog;

    private readonly object _leaseLock = new();
    private readonly Dictionary<PluginCatalog, int> _leases = new(ReferenceEqualityComparer.Instance);
    private readonly HashSet<PluginCatalog> _retired = new(ReferenceEqualityComparer.Instance);
    private PluginCatalog? _first;

    /// <summary>The current catalog, kept loaded until the lease is disposed (a reload meanwhile does not unload it).</summary>
    public CatalogLease Lease()
    {
        lock (_leaseLock)
        {
            var c = _current.Catalog;
            _leases[c] = _leases.GetValueOrDefault(c) + 1;
            return new CatalogLease(this, c);
        }
    }

    /// <summary>Catalogs replaced but still leased (disposed when their last lease ends).</summary>
    public int RetiredCatalogs { get { lock (_leaseLock) return _retired.Count; } }

    private void Release(PluginCatalog c)
    {
        lock (_leaseLock)
        {
            if (--_leases[c] > 0) return;
            _leases.Remove(c);
            if (_retired.Remove(c)) Unload(c);
        }
    }

    private void Retire(PluginCatalog c)
    {
        if (ReferenceEquals(c, _first)) return;
        lock (_leaseLock)
        {
            if (_leases.ContainsKey(c)) _retired.Add(c);
            else Unload(c);
        }
    }

    private int _unloaded;

    private void Unload(PluginCatalog c)
    {
        c.Dispose();
        Interlocked.Increment(ref _unloaded);
    }

    /// <summary>After load contexts were unloaded: a full collection frees them, and returning the native heap's free
    /// pages to the system keeps a service that reloads for weeks at a flat RSS (glibc keeps freed pages otherwise).
    /// Reloads are rare, so the cost of a blocking collection here does not matter.</summary>
    private void ReclaimUnloaded()
    {
        if (Interlocked.Exchange(ref _unloaded, 0) == 0) return;
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        NativeHeap.Trim();
    }

    public sealed class CatalogLease(PluginRegistry owner, PluginCatalog catalog) : IDisposable
    {
        private int _done;
        public PluginCatalog Catalog { get; } = catalog;
        public void Dispose() { if (Interlocked.Exchange(ref _done, 1) == 0) owner.Release(Catalog); }
    }

    private string _seen, _loaded;

    private Snapshot Load(int generation)
    {
        var catalog = PluginCatalog.Load(_o.PluginDirectory, _logger);
        var gates = new Dictionary<string, GateResult>(StringComparer.Ordinal);
        foreach (var (name, plugin) in catalog.Optimizers.ToList())
        {
            GateResult result;
            try { result = _gateCache.GetOrAdd((name, plugin.Origin.Sha256), _ => _gate.Check(catalog, name, plugin.Origin)); }
            catch (Exception e) { result = new GateResult(false, $"the gate threw {e.GetType().Name}: {e.Message}"); }
            gates[name] = result;
            if (!result.Passed) catalog.RejectOptimizer(name, $"failed the conformance gate: {result.Detail}");
        }
        return new Snapshot(catalog, gates, DateTime.UtcNow, generation);
    }

    /// <summary>Every file under the folder with its size and modification time.</summary>
    private string Fingerprint()
    {
        if (!Directory.Exists(_o.PluginDirectory)) return "";
        return string.Join("\n", Directory.EnumerateFiles(_o.PluginDirectory, "*", SearchOption.AllDirectories)
            .Order(StringComparer.Ordinal)
            .Select(f => { var i = new FileInfo(f); return $"{f}|{i.Length}|{i.LastWriteTimeUtc.Ticks}"; }));
    }

    /// <summary>One poll: returns true when a new catalog was loaded.</summary>
    public bool Poll()
    {
        ReclaimUnloaded();
        var now = Fingerprint();
        if (now != _seen) { _seen = now; return false; } // still changing (or just changed): wait for it to settle
        if (now == _loaded) return false;
        _loaded = now;
        var old = _current;
        var next = Load(old.Generation + 1);
        lock (_leaseLock) _current = next;
        Retire(old.Catalog);
        _logger.LogInformation("plugin folder changed: {Optimizers} optimizer(s), {Models} model(s), {Probes} probe(s), {Errors} file(s) not loaded",
            next.Catalog.Optimizers.Count, next.Catalog.Models.Count, next.Catalog.Probes.Count, next.Catalog.Errors.Count);
        return true;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var period = TimeSpan.FromSeconds(_o.PluginPollSeconds);
        while (!stoppingToken.IsCancellationRequested)
        {
            try { await Task.Delay(period, stoppingToken); } catch (OperationCanceledException) { break; }
            try { Poll(); }
            catch (Exception e) { _logger.LogWarning("plugin folder poll failed: {Message}", e.Message); }
        }
    }
}

/// <summary>Returns free pages of the C heap to the system (glibc's malloc_trim; a no-op where it does not exist).</summary>
internal static class NativeHeap
{
    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "malloc_trim")]
    private static extern int MallocTrim(nuint pad);

    private static bool _unavailable;

    public static void Trim()
    {
        if (_unavailable || !OperatingSystem.IsLinux()) return;
        try { MallocTrim(0); }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { _unavailable = true; }
    }
}
