using System.Reflection;
using System.Security.Cryptography;
using Harness.Abstractions;
using Harness.Host.Conformance;
using McMaster.NETCore.Plugins;
using Microsoft.Extensions.Logging;

namespace Harness.Host.Plugins;

public enum PluginKind { Optimizer, Model, Probe, Tuner }

/// <summary>Where a plugin came from: recorded in every run's manifest.</summary>
public sealed record PluginOrigin(string File, string Sha256, string AssemblyName, string AssemblyVersion);

public sealed record LoadedPlugin<T>(T Plugin, PluginOrigin Origin);

/// <summary>A plugin file (or type inside it) that could not be used, with the reason.</summary>
public sealed record PluginLoadError(string File, string Reason);

/// <summary>
/// Loads every plugin assembly of a folder, each in its own load context (McMaster.NETCore.Plugins) that shares
/// only the contract (Harness.Abstractions) and TorchSharp with the host. Layout: either
/// <c>&lt;folder&gt;/&lt;Name&gt;/&lt;Name&gt;.dll</c> (a plugin with its dependencies) or a single
/// <c>&lt;folder&gt;/&lt;Name&gt;.dll</c>. A file that fails (not .NET, another contract version, a constructor
/// that throws, a duplicate name) is reported with its reason and every other plugin still loads.
/// </summary>
public sealed class PluginCatalog : IDisposable
{
    private readonly List<PluginLoader> _loaders = new();
    private readonly Dictionary<string, LoadedPlugin<IOptimizerPlugin>> _optimizers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, LoadedPlugin<IModelPlugin>> _models = new(StringComparer.Ordinal);
    private readonly Dictionary<string, LoadedPlugin<IProbePlugin>> _probes = new(StringComparer.Ordinal);
    private readonly Dictionary<string, LoadedPlugin<ILearningRateTunerPlugin>> _tuners = new(StringComparer.Ordinal);
    private readonly List<PluginLoadError> _errors = new();

    public string Folder { get; }
    public IReadOnlyDictionary<string, LoadedPlugin<IOptimizerPlugin>> Optimizers => _optimizers;
    public IReadOnlyDictionary<string, LoadedPlugin<IModelPlugin>> Models => _models;
    public IReadOnlyDictionary<string, LoadedPlugin<IProbePlugin>> Probes => _probes;
    public IReadOnlyDictionary<string, LoadedPlugin<ILearningRateTunerPlugin>> Tuners => _tuners;
    public IReadOnlyList<PluginLoadError> Errors => _errors;

    private PluginCatalog(string folder) => Folder = folder;

    /// <summary>A catalog of plugin instances that did not come from a folder (tests, embedding). Their origin
    /// says "(in memory)" with the defining assembly's name.</summary>
    public static PluginCatalog FromInstances(IEnumerable<object> plugins)
    {
        var catalog = new PluginCatalog("(in memory)");
        foreach (var plugin in plugins)
        {
            var asm = plugin.GetType().Assembly.GetName();
            var origin = new PluginOrigin("(in memory)", "", asm.Name ?? "", asm.Version?.ToString() ?? "");
            if (plugin is IOptimizerPlugin o) catalog._optimizers[o.Name] = new(o, origin);
            if (plugin is IModelPlugin m) catalog._models[m.Name] = new(m, origin);
            if (plugin is IProbePlugin p) catalog._probes[p.Name] = new(p, origin);
            if (plugin is ILearningRateTunerPlugin l) catalog._tuners[l.Name] = new(l, origin);
        }
        return catalog;
    }

    public static PluginCatalog Load(string folder, ILogger? logger = null)
    {
        return Load(folder, logger, ConformancePolicy.FromEnvironment());
    }

    /// <summary>Loads every plugin of <paramref name="folder"/>, then applies the optimizer conformance gate with
    /// <paramref name="conformance"/> (the two-argument overload takes it from the environment: see
    /// <see cref="ConformancePolicy"/>).</summary>
    public static PluginCatalog Load(string folder, ILogger? logger, ConformancePolicy conformance)
    {
        var catalog = new PluginCatalog(Path.GetFullPath(folder));
        if (!Directory.Exists(folder))
        {
            catalog._errors.Add(new PluginLoadError(folder, "plugin folder does not exist"));
            return catalog;
        }
        foreach (var file in CandidateFiles(catalog.Folder))
            catalog.LoadFile(file, logger);
        ConformanceCache.Apply(catalog, conformance, logger);
        return catalog;
    }

    /// <summary>Loads one plugin assembly file (for <c>harness verify</c>); no conformance gate.</summary>
    public static PluginCatalog LoadAssembly(string file, ILogger? logger = null)
    {
        var full = Path.GetFullPath(file);
        var catalog = new PluginCatalog(Path.GetDirectoryName(full)!);
        if (!File.Exists(full)) catalog._errors.Add(new PluginLoadError(file, "file does not exist"));
        else catalog.LoadFile(full, logger);
        return catalog;
    }

    // ---- conformance gate (Host/Conformance) ----
    private readonly Dictionary<string, ConformanceReport> _conformance = new(StringComparer.Ordinal);
    /// <summary>The gate's verdict per optimizer name (passed or not), when the gate ran.</summary>
    public IReadOnlyDictionary<string, ConformanceReport> Conformance => _conformance;
    internal void RecordConformance(string optimizer, ConformanceReport report) => _conformance[optimizer] = report;
    internal void RejectOptimizer(string optimizer, string reason, ILogger? logger)
    {
        if (!_optimizers.Remove(optimizer, out var loaded)) return;
        Fail($"{loaded.Origin.File} ({optimizer})", reason, logger);
    }

    /// <summary>Top-level *.dll files and &lt;sub&gt;/&lt;sub&gt;.dll, in ordinal order (deterministic).</summary>
    private static IEnumerable<string> CandidateFiles(string folder)
    {
        var files = Directory.GetFiles(folder, "*.dll").ToList();
        foreach (var dir in Directory.GetDirectories(folder))
        {
            var main = Path.Combine(dir, Path.GetFileName(dir) + ".dll");
            if (File.Exists(main)) files.Add(main);
        }
        return files.OrderBy(f => f, StringComparer.Ordinal);
    }

    private void LoadFile(string file, ILogger? logger)
    {
        string rel = Path.GetRelativePath(Folder, file);
        Assembly assembly;
        PluginLoader? loader = null;
        ContractVersionAttribute? version;
        try
        {
            // Refuse non-.NET files before a load context touches them.
            AssemblyName.GetAssemblyName(file);
            loader = PluginLoader.CreateFromAssemblyFile(file,
                sharedTypes: [typeof(IOptimizerPlugin), typeof(TorchSharp.torch)],
                configure: c =>
                {
                    c.PreferSharedTypes = true;
                    // Read the bytes into memory instead of mapping the file: a plugin file replaced or overwritten
                    // while a process uses it (the service's hot plugin folder) cannot break that process.
                    c.LoadInMemory = true;
                    // Collectible: a catalog the service replaced (hot plugin folder) gives its memory back once
                    // Dispose unloaded it and nothing uses its plugins any more.
                    c.IsUnloadable = true;
                });
            assembly = loader.LoadDefaultAssembly();
            version = assembly.GetCustomAttribute<ContractVersionAttribute>();
        }
        catch (Exception e) when (e is BadImageFormatException or FileLoadException or FileNotFoundException or ArgumentException)
        {
            loader?.Dispose();
            Fail(rel, $"not a loadable .NET assembly ({e.GetType().Name}: {FirstLine(e.Message)})", logger);
            return;
        }
        catch (Exception e)
        {
            // E.g. a malformed <Name>.deps.json: the runtime's dependency resolver throws InvalidOperationException.
            // One bad file must never stop the others from loading.
            loader?.Dispose();
            Fail(rel, $"cannot be loaded ({e.GetType().Name}: {FirstLine(e.Message)})", logger);
            return;
        }

        if (version is null)
        {
            Fail(rel, $"no [assembly: ContractVersion(...)] attribute: not a harness plugin, or built against a contract older than version 1 (host contract version {Contract.Version})", logger);
            loader.Dispose();
            return;
        }
        if (version.Version != Contract.Version)
        {
            Fail(rel, $"built against contract version {version.Version}, the host implements version {Contract.Version}; rebuild the plugin against Harness.Abstractions {Contract.Version}", logger);
            loader.Dispose();
            return;
        }

        Type[] types;
        try { types = assembly.GetExportedTypes(); }
        catch (Exception e)
        {
            Fail(rel, $"its types cannot be loaded ({FirstLine(e.Message)}); is a dependency missing from its folder?", logger);
            loader.Dispose();
            return;
        }

        var origin = new PluginOrigin(rel, Sha256(file), assembly.GetName().Name ?? rel, assembly.GetName().Version?.ToString() ?? "");
        int found = 0;
        foreach (var type in types.Where(t => t is { IsClass: true, IsAbstract: false }))
        {
            found += Register<IOptimizerPlugin>(type, origin, _optimizers, p => p.Name, logger);
            found += Register<IModelPlugin>(type, origin, _models, p => p.Name, logger);
            found += Register<IProbePlugin>(type, origin, _probes, p => p.Name, logger);
            found += Register<ILearningRateTunerPlugin>(type, origin, _tuners, p => p.Name, logger);
        }
        if (found == 0 && !_errors.Any(e => e.File.StartsWith(rel, StringComparison.Ordinal)))
            Fail(rel, "contains no public optimizer, model, probe or tuner plugin type", logger);
        _loaders.Add(loader);
        logger?.LogDebug("loaded {Count} plugin(s) from {File}", found, rel);
    }

    private int Register<T>(Type type, PluginOrigin origin, Dictionary<string, LoadedPlugin<T>> into, Func<T, string> name, ILogger? logger)
        where T : class
    {
        if (!typeof(T).IsAssignableFrom(type)) return 0;
        T plugin;
        string where = $"{origin.File} ({type.FullName})";
        try
        {
            if (type.GetConstructor(Type.EmptyTypes) is null)
            {
                Fail(where, "plugin types need a public parameterless constructor", logger);
                return 0;
            }
            plugin = (T)Activator.CreateInstance(type)!;
            _ = name(plugin);
        }
        catch (Exception e)
        {
            var inner = e is TargetInvocationException { InnerException: { } ie } ? ie : e;
            Fail(where, $"constructor threw {inner.GetType().Name}: {FirstLine(inner.Message)}", logger);
            return 0;
        }
        var key = name(plugin);
        if (into.TryGetValue(key, out var existing))
        {
            Fail(where, $"{typeof(T).Name} name '{key}' is already provided by {existing.Origin.File}; this one is ignored", logger);
            return 0;
        }
        into[key] = new LoadedPlugin<T>(plugin, origin);
        return 1;
    }

    /// <summary>Unloads the plugins' load contexts. Unloading is cooperative: objects of this catalog still referenced
    /// keep working (and keep their context alive) until they are dropped; only loading further assemblies into the
    /// contexts fails, so dispose a catalog once nothing runs code from it.</summary>
    public void Dispose()
    {
        lock (_loaders)
        {
            foreach (var loader in _loaders) loader.Dispose();
            _loaders.Clear();
        }
    }

    /// <summary>Withdraws an optimizer (e.g. one that failed the conformance gate) and records why.</summary>
    public void RejectOptimizer(string name, string reason)
    {
        if (_optimizers.Remove(name, out var p)) _errors.Add(new PluginLoadError($"{p.Origin.File} ({name})", reason));
    }

    private void Fail(string file, string reason, ILogger? logger)
    {
        _errors.Add(new PluginLoadError(file, reason));
        logger?.LogWarning("plugin {File} skipped: {Reason}", file, reason);
    }

    private static string FirstLine(string s) => s.Split('\n')[0].Trim();

    private static string Sha256(string file)
    {
        using var stream = File.OpenRead(file);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }
}
