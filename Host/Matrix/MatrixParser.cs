using System.Globalization;
using System.Text.RegularExpressions;
using Harness.Abstractions;
using Harness.Host.Plugins;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Harness.Host.Matrix;

/// <summary>
/// Reads a matrix file (YAML, or JSON, which YAML contains) and validates it against the loaded plugins before
/// anything trains. Every problem is collected with its file, line, column and key; none stops the others from
/// being found. The reference of the format is in README.md ("Matrix files").
/// </summary>
public sealed partial class MatrixParser(PluginCatalog plugins)
{
    private static readonly string[] TopKeys = ["name", "output", "device", "dtype", "models", "optimizers", "seeds", "training", "probe_set", "probes", "data_dir"];

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")]
    private static partial Regex SafeName();

    private readonly List<MatrixError> _errors = new();
    private string _file = "";

    public static MatrixSpec ParseFile(string path, PluginCatalog plugins)
    {
        if (!File.Exists(path))
            throw new MatrixValidationException([new MatrixError(new SourceLocation(path, 0, 0), "(file)", "matrix file not found")]);
        return new MatrixParser(plugins).Parse(File.ReadAllText(path), path);
    }

    public MatrixSpec Parse(string text, string file)
    {
        _errors.Clear();
        _file = file;
        var stream = new YamlStream();
        try { stream.Load(new StringReader(text)); }
        catch (YamlException e)
        {
            throw new MatrixValidationException([new MatrixError(new SourceLocation(file, e.Start.Line, e.Start.Column), "(syntax)",
                e.InnerException?.Message ?? e.Message)]);
        }
        if (stream.Documents.Count == 0 || stream.Documents[0].RootNode is not YamlMappingNode root)
            throw new MatrixValidationException([new MatrixError(new SourceLocation(file, 1, 1), "(root)", "the matrix must be a mapping (key: value)")]);

        foreach (var key in root.Children.Keys)
            if (key is YamlScalarNode k && !TopKeys.Contains(k.Value))
                Error(key, k.Value ?? "", $"unknown key (expected one of: {string.Join(", ", TopKeys)})");

        string name = Str(root, "name", "name", required: true) ?? "matrix";
        if (!SafeName().IsMatch(name))
            Error(Get(root, "name") ?? root, "name", "must be 1-100 characters of letters, digits, '_', '.', '-' (it names a folder)");
        string? output = Str(root, "output", "output");
        string device = Str(root, "device", "device") ?? "cpu";
        if (device is not ("cpu" or "cuda" or "auto")) Error(Get(root, "device")!, "device", $"'{device}' is not one of cpu, cuda, auto");
        string dtype = Str(root, "dtype", "dtype") ?? "float32";
        if (dtype is not ("float32" or "float64")) Error(Get(root, "dtype")!, "dtype", $"'{dtype}' is not one of float32, float64");

        var models = Components(root, "models", plugins.Models.ToDictionary(kv => kv.Key, kv => kv.Value.Plugin.Hyperparameters), "model");
        var optimizers = Components(root, "optimizers", plugins.Optimizers.ToDictionary(kv => kv.Key, kv => kv.Value.Plugin.Hyperparameters), "optimizer");

        var (initSeeds, dataSeeds) = Seeds(root);
        var training = Training(root);
        var (probeSetSize, probeSetSeed) = ProbeSet(root);
        var probes = Probes(root);
        string? dataDir = Str(root, "data_dir", "data_dir");

        if (_errors.Count > 0) throw new MatrixValidationException(_errors.ToList());
        return new MatrixSpec(name, file, output, device, dtype, models, optimizers, initSeeds, dataSeeds, training,
            probeSetSize, probeSetSeed, probes, dataDir);
    }

    private List<ComponentSpec> Components(YamlMappingNode root, string key, Dictionary<string, IReadOnlyList<HyperparameterSpec>> known, string kind)
    {
        var result = new List<ComponentSpec>();
        var node = Get(root, key);
        if (node is null) { Error(root, key, $"required: a list of {kind}s"); return result; }
        if (node is not YamlSequenceNode seq || seq.Children.Count == 0) { Error(node, key, $"must be a non-empty list of {kind}s"); return result; }
        for (int i = 0; i < seq.Children.Count; i++)
        {
            string path = $"{key}[{i}]";
            var item = seq.Children[i];
            if (item is not YamlMappingNode m) { Error(item, path, "must be a mapping with 'name' and optional 'hyperparameters'"); continue; }
            bool isOptimizer = kind == "optimizer";
            if (isOptimizer) CheckKeys(m, path, "name", "hyperparameters", "schedule");
            else CheckKeys(m, path, "name", "hyperparameters");
            var pluginName = Str(m, "name", path + ".name", required: true);
            if (pluginName is null) continue;
            if (!known.TryGetValue(pluginName, out var schema))
            {
                Error(Get(m, "name")!, path + ".name", $"unknown {kind} '{pluginName}' (available: {string.Join(", ", known.Keys.Order())})");
                continue;
            }
            var grid = new List<KeyValuePair<string, IReadOnlyList<object>>>();
            if (Get(m, "hyperparameters") is { } hpNode)
            {
                if (hpNode is not YamlMappingNode hpMap) { Error(hpNode, path + ".hyperparameters", "must be a mapping name: value or name: [values]"); continue; }
                foreach (var (k, v) in hpMap.Children)
                {
                    string hpName = ((YamlScalarNode)k).Value ?? "";
                    string hpPath = $"{path}.hyperparameters.{hpName}";
                    var spec = schema.FirstOrDefault(s => s.Name == hpName);
                    if (spec is null)
                    {
                        Error(k, hpPath, $"unknown hyperparameter of {kind} '{pluginName}' (it has: {string.Join(", ", schema.Select(s => s.Name))})");
                        continue;
                    }
                    var values = new List<object>();
                    var items = v is YamlSequenceNode vs ? vs.Children.ToList() : [v];
                    if (items.Count == 0) Error(v, hpPath, "an empty list sweeps nothing");
                    for (int j = 0; j < items.Count; j++)
                    {
                        var itemPath = v is YamlSequenceNode ? $"{hpPath}[{j}]" : hpPath;
                        if (Scalar(items[j], itemPath) is not { } raw) continue;
                        if (spec.Coerce(raw, out var err) is { } ok) values.Add(ok);
                        else Error(items[j], itemPath, err!);
                    }
                    if (values.Count > 0) grid.Add(new(hpName, values));
                }
            }
            // Defaults become explicit one-value axes, so the manifest and the run id record every value used.
            foreach (var spec in schema.Where(sp => grid.All(g => g.Key != sp.Name)))
                grid.Add(new(spec.Name, [spec.Coerce(spec.Default, out _)!]));
            var schedule = isOptimizer && Get(m, "schedule") is { } sn ? Schedule(sn, path + ".schedule") : null;
            result.Add(new ComponentSpec(pluginName, grid, Loc(item), schedule));
        }
        return result;
    }

    private Harness.Host.Training.LearningRateSchedule? Schedule(YamlNode node, string path)
    {
        if (node is not YamlMappingNode m) { Error(node, path, "must be a mapping with 'kind' and its settings"); return null; }
        CheckKeys(m, path, Harness.Host.Training.LearningRateSchedule.Keys);
        string kind = Str(m, "kind", path + ".kind", required: true) ?? "constant";
        if (!Harness.Host.Training.LearningRateSchedule.Kinds.Contains(kind))
        {
            Error(Get(m, "kind")!, path + ".kind", $"unknown schedule '{kind}' (one of: {string.Join(", ", Harness.Host.Training.LearningRateSchedule.Kinds)})");
            return null;
        }
        long warmup = (long)(Number(m, "warmup_steps", path + ".warmup_steps", min: 0, integer: true) ?? 0);
        long decay = (long)(Number(m, "decay_steps", path + ".decay_steps", min: 1, integer: true) ?? 0);
        double final = Number(m, "final_fraction", path + ".final_fraction", min: 0) ?? 0;
        long stepSize = (long)(Number(m, "step_size", path + ".step_size", min: 1, integer: true) ?? 1);
        double gamma = Number(m, "gamma", path + ".gamma", min: 0) ?? 0.1;
        if (kind == "linear_warmup" && warmup == 0) Error(m, path + ".warmup_steps", "linear_warmup needs warmup_steps >= 1");
        if (final > 1) Error(Get(m, "final_fraction")!, path + ".final_fraction", "must be in [0, 1]");
        return new Harness.Host.Training.LearningRateSchedule(kind, warmup, decay, final, stepSize, gamma);
    }

    private (List<long>, List<long>) Seeds(YamlMappingNode root)
    {
        var node = Get(root, "seeds");
        if (node is null) return ([0], [0]);
        if (node is not YamlMappingNode m) { Error(node, "seeds", "must be a mapping with 'init' and 'data' lists"); return ([0], [0]); }
        CheckKeys(m, "seeds", "init", "data");
        return (LongList(m, "init", "seeds.init"), LongList(m, "data", "seeds.data"));
    }

    private List<long> LongList(YamlMappingNode m, string key, string path)
    {
        var node = Get(m, key);
        if (node is null) return [0];
        var items = node is YamlSequenceNode s ? s.Children.ToList() : [node];
        var result = new List<long>();
        foreach (var item in items)
        {
            if (Scalar(item, path) is not { } raw) continue;
            if (raw is long l && l >= 0) result.Add(l);
            else Error(item, path, $"seeds are non-negative integers, got '{raw}'");
        }
        if (items.Count == 0) Error(node, path, "an empty list of seeds runs nothing");
        if (result.Distinct().Count() != result.Count) Error(node, path, "duplicate seeds");
        return result;
    }

    private TrainingSpec Training(YamlMappingNode root)
    {
        var node = Get(root, "training");
        if (node is not YamlMappingNode m)
        {
            Error(node ?? root, "training", "required: a mapping with at least 'steps'");
            return new TrainingSpec(1, null, null, 1e3);
        }
        CheckKeys(m, "training", "steps", "batch_size", "target_loss", "divergence_factor", "checkpoint_every");
        long steps = Number(m, "steps", "training.steps", required: true, min: 1, integer: true) is { } s ? (long)s : 1;
        int? batch = null;
        if (Get(m, "batch_size") is { } b)
        {
            if (b is YamlScalarNode { Value: "full" }) batch = null;
            else if (Number(m, "batch_size", "training.batch_size", min: 1, integer: true) is { } bs) batch = (int)bs;
        }
        double? target = Number(m, "target_loss", "training.target_loss", min: 0);
        double divergence = Number(m, "divergence_factor", "training.divergence_factor", min: 1) ?? 1e3;
        long checkpointEvery = (long)(Number(m, "checkpoint_every", "training.checkpoint_every", min: 0, integer: true) ?? 0);
        return new TrainingSpec(steps, batch, target, divergence, checkpointEvery);
    }

    private (int, long) ProbeSet(YamlMappingNode root)
    {
        var node = Get(root, "probe_set");
        if (node is null) return (1000, 0);
        if (node is not YamlMappingNode m) { Error(node, "probe_set", "must be a mapping with 'size' and optional 'seed'"); return (1000, 0); }
        CheckKeys(m, "probe_set", "size", "seed");
        int size = (int)(Number(m, "size", "probe_set.size", min: 1, integer: true) ?? 1000);
        long seed = (long)(Number(m, "seed", "probe_set.seed", min: 0, integer: true) ?? 0);
        return (size, seed);
    }

    private List<ProbeSpec> Probes(YamlMappingNode root)
    {
        var result = new List<ProbeSpec>();
        var node = Get(root, "probes");
        if (node is null) return result;
        if (node is not YamlSequenceNode seq) { Error(node, "probes", "must be a list of probes"); return result; }
        for (int i = 0; i < seq.Children.Count; i++)
        {
            string path = $"probes[{i}]";
            if (seq.Children[i] is not YamlMappingNode m) { Error(seq.Children[i], path, "must be a mapping with 'name', 'every' and optional 'hyperparameters'"); continue; }
            CheckKeys(m, path, "name", "every", "hyperparameters");
            var name = Str(m, "name", path + ".name", required: true);
            int every = (int)(Number(m, "every", path + ".every", min: 1, integer: true) ?? 1);
            if (name is null) continue;
            if (!plugins.Probes.TryGetValue(name, out var probe))
            {
                Error(Get(m, "name")!, path + ".name", $"unknown probe '{name}' (available: {string.Join(", ", plugins.Probes.Keys.Order())})");
                continue;
            }
            if (result.Any(p => p.Name == name)) { Error(Get(m, "name")!, path + ".name", $"probe '{name}' is listed twice"); continue; }
            var values = new Dictionary<string, object>(StringComparer.Ordinal);
            if (Get(m, "hyperparameters") is { } hpNode)
            {
                if (hpNode is not YamlMappingNode hpMap) { Error(hpNode, path + ".hyperparameters", "must be a mapping"); continue; }
                foreach (var (k, v) in hpMap.Children)
                {
                    string hpName = ((YamlScalarNode)k).Value ?? "";
                    string hpPath = $"{path}.hyperparameters.{hpName}";
                    var spec = probe.Plugin.Hyperparameters.FirstOrDefault(s => s.Name == hpName);
                    if (spec is null) { Error(k, hpPath, $"unknown hyperparameter of probe '{name}' (it has: {string.Join(", ", probe.Plugin.Hyperparameters.Select(s => s.Name))})"); continue; }
                    if (Scalar(v, hpPath) is not { } raw) continue;
                    if (spec.Coerce(raw, out var err) is { } ok) values[hpName] = ok;
                    else Error(v, hpPath, err!);
                }
            }
            foreach (var spec in probe.Plugin.Hyperparameters.Where(sp => !values.ContainsKey(sp.Name)))
                values[spec.Name] = spec.Coerce(spec.Default, out _)!;
            result.Add(new ProbeSpec(name, every, values, Loc(m)));
        }
        return result;
    }

    // ---- small helpers ----

    private void CheckKeys(YamlMappingNode m, string path, params string[] allowed)
    {
        foreach (var key in m.Children.Keys)
            if (key is YamlScalarNode k && !allowed.Contains(k.Value))
                Error(key, $"{path}.{k.Value}", $"unknown key (expected one of: {string.Join(", ", allowed)})");
    }

    private static YamlNode? Get(YamlMappingNode m, string key) =>
        m.Children.TryGetValue(new YamlScalarNode(key), out var v) ? v : null;

    private string? Str(YamlMappingNode m, string key, string path, bool required = false)
    {
        var node = Get(m, key);
        if (node is null) { if (required) Error(m, path, "required"); return null; }
        if (node is YamlScalarNode { Value: { } s } && s.Length > 0) return s;
        Error(node, path, "must be a non-empty string");
        return null;
    }

    private double? Number(YamlMappingNode m, string key, string path, bool required = false, double? min = null, bool integer = false)
    {
        var node = Get(m, key);
        if (node is null) { if (required) Error(m, path, "required"); return null; }
        var raw = Scalar(node, path);
        double x;
        if (raw is long l) x = l;
        else if (raw is double d) x = d;
        else { if (raw is not null) Error(node, path, $"expected a number, got '{raw}'"); return null; }
        if (integer && x != Math.Floor(x)) { Error(node, path, $"expected an integer, got {x}"); return null; }
        if (min is { } lo && x < lo) { Error(node, path, $"value {x.ToString(CultureInfo.InvariantCulture)} is below the minimum {lo}"); return null; }
        return x;
    }

    /// <summary>A scalar's typed value: bool, long, double, or string (quoted scalars are always strings).</summary>
    private object? Scalar(YamlNode node, string path)
    {
        if (node is not YamlScalarNode s || s.Value is null) { Error(node, path, "expected a single value"); return null; }
        if (s.Style is ScalarStyle.SingleQuoted or ScalarStyle.DoubleQuoted) return s.Value;
        var v = s.Value;
        if (v is "true" or "True" or "TRUE") return true;
        if (v is "false" or "False" or "FALSE") return false;
        if (long.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out var l)) return l;
        if (double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var d)) return d;
        return v;
    }

    private SourceLocation Loc(YamlNode node) => new(_file, node.Start.Line, node.Start.Column);
    private void Error(YamlNode node, string key, string message) => _errors.Add(new MatrixError(Loc(node), key, message));
}
