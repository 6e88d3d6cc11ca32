using System.Globalization;
using System.Text.RegularExpressions;
using Harness.Abstractions;
using Harness.Host.Plugins;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using YamlDotNet.RepresentationModel;

namespace Harness.Host.Matrix;

/// <summary>
/// Reads a matrix file (YAML, or JSON, which YAML contains) and validates it against the loaded plugins before
/// anything trains. Every problem is collected with its file, line, column and key; none stops the others from
/// being found. The reference of the format is in README.md ("Matrix files").
/// </summary>
public sealed partial class MatrixParser(PluginCatalog plugins)
{
    private static readonly string[] TopKeys = ["name", "output", "device", "dtype", "models", "optimizers", "seeds", "training", "probe_set", "probes", "data_dir", "claims"];

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")]
    private static partial Regex SafeName();

    private readonly List<MatrixError> _errors = new();
    private readonly InputPolicy _policy = InputPolicy.Trusted;
    private readonly List<(YamlNode Node, string Path, int Count)> _sweeps = new();
    private string _file = "";
    private string _name = "matrix";
    private YamlMappingNode? _root;

    /// <param name="policy">what the matrix may read and how large it may be (default: <see cref="InputPolicy.Trusted"/>).</param>
    public MatrixParser(PluginCatalog plugins, InputPolicy? policy) : this(plugins) => _policy = policy ?? InputPolicy.Trusted;

    public static MatrixSpec ParseFile(string path, PluginCatalog plugins, InputPolicy? policy = null)
    {
        policy ??= InputPolicy.Trusted;
        var read = UntrustedFile.Read(Path.GetFullPath(path), policy.MaxMatrixBytes, roots: null);
        if (read.Bytes is null)
            throw new MatrixValidationException([new MatrixError(new SourceLocation(path, 0, 0), "(file)",
                read.Problem == "not found" ? "matrix file not found" : $"the matrix file {read.Problem}")]);
        var bytes = read.Bytes.AsSpan();
        if (bytes.StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF])) bytes = bytes[3..];
        return new MatrixParser(plugins, policy).Parse(System.Text.Encoding.UTF8.GetString(bytes), path);
    }

    public MatrixSpec Parse(string text, string file)
    {
        _errors.Clear();
        _sweeps.Clear();
        _file = file;
        if (text.Length > _policy.MaxMatrixBytes)
            throw new MatrixValidationException([new MatrixError(new SourceLocation(file, 0, 0), "(file)",
                $"the matrix is {text.Length} characters long, more than the limit of {_policy.MaxMatrixBytes}")]);
        // YamlDotNet's representation model recurses once per nesting level (thousands of '[' overflow the stack and
        // end the process), so the event stream, which is parsed without recursion, is checked for depth first.
        Syntax(file, parser =>
        {
            int depth = 0;
            while (parser.MoveNext())
            {
                if (parser.Current is SequenceStart or MappingStart && ++depth > _policy.MaxNesting)
                    throw new MatrixValidationException([new MatrixError(new SourceLocation(file, parser.Current.Start.Line, parser.Current.Start.Column),
                        "(syntax)", $"lists and mappings are nested more than {_policy.MaxNesting} levels deep")]);
                if (parser.Current is SequenceEnd or MappingEnd) depth--;
            }
        }, text);
        var stream = new YamlStream();
        Syntax(file, p => stream.Load(p), text);
        if (stream.Documents.Count > 1)
            throw new MatrixValidationException([new MatrixError(Loc(stream.Documents[1].RootNode), "(root)",
                "the file holds more than one YAML document ('---'); put one matrix per file")]);
        if (stream.Documents.Count == 0 || stream.Documents[0].RootNode is not YamlMappingNode root)
            throw new MatrixValidationException([new MatrixError(new SourceLocation(file, 1, 1), "(root)", "the matrix must be a mapping (key: value)")]);
        _root = root;

        foreach (var key in root.Children.Keys)
            if (key is YamlScalarNode k && !TopKeys.Contains(k.Value))
                Error(key, k.Value ?? "", $"unknown key (expected one of: {string.Join(", ", TopKeys)})");

        string name = Str(root, "name", "name", required: true) ?? "matrix";
        if (!SafeName().IsMatch(name))
            Error(Get(root, "name") ?? root, "name", "must be 1-100 characters of letters, digits, '_', '.', '-' (it names a folder)");
        _name = name;
        string? output = Str(root, "output", "output");
        string device = Str(root, "device", "device") ?? "cpu";
        if (device is not ("cpu" or "cuda" or "auto")) Error(Get(root, "device")!, "device", $"'{device}' is not one of cpu, cuda, auto");
        else if (device == "cuda" && !TorchSharp.torch.cuda.is_available())
            Error(Get(root, "device")!, "device", "CUDA is not available in this build or on this machine (the CPU libtorch is used unless the host is built with -p:TorchBackend=cuda); use 'cpu' or 'auto'");
        string dtype = Str(root, "dtype", "dtype") ?? "float32";
        if (dtype is not ("float32" or "float64")) Error(Get(root, "dtype")!, "dtype", $"'{dtype}' is not one of float32, float64");

        var models = Components(root, "models", plugins.Models.ToDictionary(kv => kv.Key, kv => kv.Value.Plugin.Hyperparameters), "model");
        var optimizers = Components(root, "optimizers", plugins.Optimizers.ToDictionary(kv => kv.Key, kv => kv.Value.Plugin.Hyperparameters), "optimizer");

        var (initSeeds, dataSeeds) = Seeds(root);
        var training = Training(root);
        CheckPreconditionerSources(root, optimizers, training);
        var (probeSetSize, probeSetSeed) = ProbeSet(root);
        var probes = Probes(root);
        string? dataDir = DataDirectory(root);
        var claims = Claims(root, models, optimizers, probes);

        if (_errors.Count > 0) throw new MatrixValidationException(Capped(_errors));
        var spec = new MatrixSpec(name, file, output, device, dtype, models, optimizers, initSeeds, dataSeeds, training,
            probeSetSize, probeSetSeed, probes, dataDir) { Claims = claims };
        // Counted from the grids, before anything is expanded: a few kilobytes of values can describe millions of runs.
        double runs = MatrixExpander.Count(spec);
        if (runs > _policy.MaxRuns)
        {
            var largest = _sweeps.OrderByDescending(x => x.Count).FirstOrDefault();
            string where = largest.Node is null ? "" : $"; the largest list is {largest.Path} with {largest.Count} values";
            throw new MatrixValidationException([new MatrixError(largest.Node is null ? Loc(root) : Loc(largest.Node), largest.Node is null ? "(matrix)" : largest.Path,
                $"the matrix expands to {(runs < 1e15 ? runs.ToString("0", CultureInfo.InvariantCulture) : runs.ToString("G3", CultureInfo.InvariantCulture))} runs, more than the limit of {_policy.MaxRuns} (Harness:MaxRunsPerMatrix){where}")]);
        }
        return spec;
    }

    /// <summary>Most errors reported for one matrix: a list of a million bad values is one problem, not a
    /// response of a million lines.</summary>
    public const int MaxErrors = 100;

    private static List<MatrixError> Capped(List<MatrixError> errors) => errors.Count <= MaxErrors ? errors.ToList()
        : [.. errors.Take(MaxErrors), new MatrixError(errors[MaxErrors].Location, "(matrix)", $"{errors.Count - MaxErrors} more error(s) not listed")];

    /// <summary>Runs <paramref name="load"/> on a YAML parser of <paramref name="text"/>, turning YamlDotNet's
    /// exceptions into located syntax errors.</summary>
    private static void Syntax(string file, Action<IParser> load, string text)
    {
        var parser = new Parser(new StringReader(text));
        try { load(parser); }
        catch (YamlException e)
        {
            throw new MatrixValidationException([new MatrixError(new SourceLocation(file, e.Start.Line, e.Start.Column), "(syntax)",
                e.InnerException?.Message ?? e.Message)]);
        }
        catch (InvalidOperationException)
        {
            // YamlDotNet's scanner throws this (not a YamlException) on a flow collection that is never closed and is
            // followed by more lines, e.g. "lr: [0.1, 0.2" in the middle of the file. Report it where the parser stopped.
            var at = parser.Current?.End ?? Mark.Empty;
            throw new MatrixValidationException([new MatrixError(new SourceLocation(file, Math.Max(at.Line, 1), Math.Max(at.Column, 1)), "(syntax)",
                "unterminated [...] or {...} collection: a closing bracket is missing")]);
        }
    }

    /// <summary>The base of a relative path in the matrix: the matrix file's folder; for a confined (service)
    /// matrix, its folder in the results tree, where the service keeps the copy its workers read.</summary>
    private string RelativeBase() => _policy.ResultsRoot is { } results
        ? Path.Combine(results, SafeName().IsMatch(_name) ? _name : "_")
        : Path.GetDirectoryName(Path.GetFullPath(_file)) ?? ".";

    /// <summary>data_dir: passed to the model plugins. Confined: an existing folder under a data root (resolved, and
    /// recorded as the resolved folder); trusted: as written.</summary>
    private string? DataDirectory(YamlMappingNode root)
    {
        string? dataDir = Str(root, "data_dir", "data_dir");
        if (dataDir is null || !_policy.IsConfined) return dataDir;
        var full = UntrustedFile.Full(dataDir, Directory.GetCurrentDirectory());
        var resolved = full is null ? null : UntrustedFile.Directory(full, _policy.DataRoots);
        if (resolved is null) Error(Get(root, "data_dir")!, "data_dir", InputPolicy.RefusedDirectoryMessage);
        return resolved;
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
            if (isOptimizer) CheckKeys(m, path, "name", "hyperparameters", "schedule", "preconditioner_from", "tuner");
            else CheckKeys(m, path, "name", "hyperparameters");
            var pluginName = Str(m, "name", path + ".name", required: true);
            if (pluginName is null) continue;
            if (!known.TryGetValue(pluginName, out var schema))
            {
                Error(Get(m, "name")!, path + ".name", $"unknown {kind} '{pluginName}' (available: {string.Join(", ", known.Keys.Order())})");
                continue;
            }
            if (HyperparameterGrid(m, path, schema, kind, pluginName) is not { } grid) continue;
            var schedule = isOptimizer && Get(m, "schedule") is { } sn ? Schedule(sn, path + ".schedule") : null;
            var precondFrom = isOptimizer && Get(m, "preconditioner_from") is { } pn ? PreconditionerFrom(pn, path + ".preconditioner_from", i, pluginName) : null;
            var tuner = isOptimizer && Get(m, "tuner") is { } tn ? Tuner(tn, path + ".tuner", pluginName) : null;
            result.Add(new ComponentSpec(pluginName, grid, Loc(item), schedule, precondFrom) { Tuner = tuner });
        }
        return result;
    }

    /// <summary>The hyperparameter grid of a component mapping (<c>hyperparameters</c>, defaults as one-value axes), or
    /// null when the mapping is malformed (errors recorded).</summary>
    private List<KeyValuePair<string, IReadOnlyList<object>>>? HyperparameterGrid(YamlMappingNode m, string path, IReadOnlyList<HyperparameterSpec> schema,
        string kind, string pluginName)
    {
        var grid = new List<KeyValuePair<string, IReadOnlyList<object>>>();
        if (Get(m, "hyperparameters") is { } hpNode)
        {
            if (hpNode is not YamlMappingNode hpMap) { Error(hpNode, path + ".hyperparameters", "must be a mapping name: value or name: [values]"); return null; }
            foreach (var (k, v) in hpMap.Children)
            {
                if (k is not YamlScalarNode { Value: { } hpName }) { Error(k, path + ".hyperparameters", "keys must be plain hyperparameter names"); continue; }
                string hpPath = $"{path}.hyperparameters.{hpName}";
                var spec = schema.FirstOrDefault(s => s.Name == hpName);
                if (spec is null)
                {
                    Error(k, hpPath, $"unknown hyperparameter of {kind} '{pluginName}' (it has: {string.Join(", ", schema.Select(s => s.Name))})");
                    continue;
                }
                var values = new List<object>();
                var seen = new HashSet<object>();
                var items = v is YamlSequenceNode vs ? vs.Children.ToList() : [v];
                if (items.Count == 0) Error(v, hpPath, "an empty list sweeps nothing");
                for (int j = 0; j < items.Count; j++)
                {
                    var itemPath = v is YamlSequenceNode ? $"{hpPath}[{j}]" : hpPath;
                    if (Scalar(items[j], itemPath) is not { } raw) continue;
                    if (spec.Coerce(raw, out var err) is { } ok)
                    {
                        // A repeated value would expand to the same run twice.
                        if (!seen.Add(ok)) Error(items[j], itemPath, $"duplicate value {Harness.Host.Matrix.RunCell.Format(ok)} in the list");
                        else values.Add(ok);
                    }
                    else Error(items[j], itemPath, err!);
                }
                if (values.Count > 0) grid.Add(new(hpName, values));
                if (values.Count > 1) _sweeps.Add((v, hpPath, values.Count));
            }
        }
        // Defaults become explicit one-value axes, so the manifest and the run id record every value used.
        foreach (var spec in schema.Where(sp => grid.All(g => g.Key != sp.Name)))
            grid.Add(new(spec.Name, [spec.Coerce(spec.Default, out _)!]));
        return grid;
    }

    /// <summary><c>optimizers[i].tuner: { name: &lt;tuner&gt;, hyperparameters: { ... } }</c>; the optimizer must implement
    /// <see cref="IDirectionalOptimizer"/> (its update is θ + η u with u independent of η).</summary>
    private TunerSpec? Tuner(YamlNode node, string path, string optimizer)
    {
        if (node is not YamlMappingNode m) { Error(node, path, "must be a mapping with 'name' and optional 'hyperparameters'"); return null; }
        CheckKeys(m, path, "name", "hyperparameters");
        var name = Str(m, "name", path + ".name", required: true);
        if (name is null) return null;
        if (!plugins.Tuners.TryGetValue(name, out var tuner))
        {
            Error(Get(m, "name")!, path + ".name", $"unknown tuner '{name}' (available: {string.Join(", ", plugins.Tuners.Keys.Order())})");
            return null;
        }
        if (plugins.Optimizers.TryGetValue(optimizer, out var opt) && !IsDirectional(opt.Plugin))
            Error(Get(m, "name")!, path, $"optimizer '{optimizer}' does not implement IDirectionalOptimizer (its update is not θ + η·u with u independent of η), so a tuner cannot wrap it");
        var grid = HyperparameterGrid(m, path, tuner.Plugin.Hyperparameters, "tuner", name);
        return grid is null ? null : new TunerSpec(name, grid, Loc(m));
    }

    private static bool IsDirectional(IOptimizerPlugin plugin)
    {
        try
        {
            using var scope = TorchSharp.torch.NewDisposeScope();
            using var opt = plugin.Create([TorchSharp.torch.zeros(1, dtype: TorchSharp.torch.ScalarType.Float64)], new HyperparameterValues(plugin.Hyperparameters));
            return opt is IDirectionalOptimizer;
        }
        catch (Exception) { return true; } // not decidable here; the run reports it
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
        if (result.Count > 1) _sweeps.Add((node, path, result.Count));
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
        CheckKeys(m, "training", "steps", "batch_size", "target_loss", "divergence_factor", "probe_budget", "save_state_at", "checkpoint_every");
        long steps = Number(m, "steps", "training.steps", required: true, min: 1, integer: true) is { } s ? (long)s : 1;
        int? batch = null;
        if (Get(m, "batch_size") is { } b)
        {
            if (b is YamlScalarNode { Value: "full" }) batch = null;
            else if (Number(m, "batch_size", "training.batch_size", min: 1, integer: true) is { } bs) batch = (int)bs;
        }
        double? target = Number(m, "target_loss", "training.target_loss", min: 0);
        double divergence = Number(m, "divergence_factor", "training.divergence_factor", min: 1) ?? 1e3;
        double? budget = Number(m, "probe_budget", "training.probe_budget", min: 0);
        if (budget is { } pb && !(pb > 0 && pb < 1))
        {
            Error(Get(m, "probe_budget")!, "training.probe_budget", "must be a fraction of wall time strictly between 0 and 1");
            budget = null;
        }
        List<long>? saveAt = null;
        if (Get(m, "save_state_at") is { } sa)
        {
            saveAt = LongList(m, "save_state_at", "training.save_state_at");
            foreach (var step in saveAt.Where(x => x > steps))
                Error(sa, "training.save_state_at", $"step {step} is beyond training.steps ({steps})");
        }
        long checkpointEvery = (long)(Number(m, "checkpoint_every", "training.checkpoint_every", min: 0, integer: true) ?? 0);
        return new TrainingSpec(steps, batch, target, divergence, saveAt) { ProbeBudget = budget, CheckpointEvery = checkpointEvery };
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
        // Metric names become trace columns and gauges: unique across probes and distinct from the fixed columns.
        var columnOwner = Harness.Host.Training.RunExecutor.FixedColumns
            .Concat(Harness.Host.Training.RunExecutor.ProbeCostColumns(["x"]).Where(c => !c.StartsWith("probe_x_", StringComparison.Ordinal)))
            .ToDictionary(c => c, _ => "the trace's fixed columns", StringComparer.Ordinal);
        var node = Get(root, "probes");
        if (node is null) return result;
        if (node is not YamlSequenceNode seq) { Error(node, "probes", "must be a list of probes"); return result; }
        for (int i = 0; i < seq.Children.Count; i++)
        {
            string path = $"probes[{i}]";
            if (seq.Children[i] is not YamlMappingNode m) { Error(seq.Children[i], path, "must be a mapping with 'name', 'every' and optional 'hyperparameters'"); continue; }
            CheckKeys(m, path, "name", "as", "every", "hyperparameters", "windows", "bursts");
            var name = Str(m, "name", path + ".name", required: true);
            int every = (int)(Number(m, "every", path + ".every", min: 1, integer: true) ?? 1);
            if (name is null) continue;
            if (!plugins.Probes.TryGetValue(name, out var probe))
            {
                Error(Get(m, "name")!, path + ".name", $"unknown probe '{name}' (available: {string.Join(", ", plugins.Probes.Keys.Order())})");
                continue;
            }
            string? alias = Get(m, "as") is { } asNode ? Str(m, "as", path + ".as") : null;
            if (alias is not null && !System.Text.RegularExpressions.Regex.IsMatch(alias, "^[a-z][a-z0-9_]*$"))
            {
                Error(Get(m, "as")!, path + ".as", "must match [a-z][a-z0-9_]*");
                continue;
            }
            string id = alias ?? name;
            // Two instances of one probe need distinct names: they name the cost columns and the schedule.
            if (result.Any(p => p.Id == id)) { Error(Get(m, "name")!, path + ".name", $"probe '{id}' is listed twice; give one of them a different 'as:' name"); continue; }
            if (HyperparameterGrid(m, path, probe.Plugin.Hyperparameters, "probe", name) is not { } grid) continue;
            var values = grid.ToDictionary(a => a.Key, a => a.Value[0], StringComparer.Ordinal);
            var instance = new ProbeSpec(name, every, values, Loc(m)) { As = alias, Grid = grid };
            // Every combination of the probe's axes may declare other metrics (e.g. top_k): check them all.
            var metricNames = new List<string>();
            try
            {
                foreach (var combination in MatrixExpander.Combinations(grid))
                    foreach (var metric in probe.Plugin.MetricsFor(new HyperparameterValues(probe.Plugin.Hyperparameters, combination)))
                        if (!metricNames.Contains(instance.Column(metric.Name))) metricNames.Add(instance.Column(metric.Name));
            }
            catch (Exception e) { Error(Get(m, "name")!, path + ".name", $"probe '{name}' cannot declare its metrics: {e.Message}"); continue; }
            foreach (var metric in metricNames.Concat(Harness.Host.Training.RunExecutor.ProbeCostColumns([id]).Where(c => c.StartsWith($"probe_{id}_", StringComparison.Ordinal))))
            {
                if (columnOwner.TryGetValue(metric, out var owner))
                    Error(Get(m, "name")!, path + ".name", $"probe '{id}' emits metric '{metric}', already used by {owner}");
                else columnOwner[metric] = $"probe '{id}'";
            }
            var windows = Get(m, "windows") is { } wn ? Windows(wn, path + ".windows") : [];
            var burst = Get(m, "bursts") is { } bn ? Burst(bn, path + ".bursts") : null;
            result.Add(instance with { Windows = windows, Burst = burst });
        }
        return result;
    }

    /// <summary>windows: a list of { from, to, every? } (dense for from ≤ step &lt; to) or [from, to] pairs.</summary>
    private List<Harness.Host.Training.ProbeWindow> Windows(YamlNode node, string path)
    {
        var result = new List<Harness.Host.Training.ProbeWindow>();
        if (node is not YamlSequenceNode seq) { Error(node, path, "must be a list of { from, to, every } windows"); return result; }
        for (int i = 0; i < seq.Children.Count; i++)
        {
            string wp = $"{path}[{i}]";
            var item = seq.Children[i];
            long? from = null, to = null;
            long every = 1;
            if (item is YamlMappingNode wm)
            {
                CheckKeys(wm, wp, "from", "to", "every");
                from = (long?)Number(wm, "from", wp + ".from", required: true, min: 0, integer: true);
                to = (long?)Number(wm, "to", wp + ".to", required: true, min: 1, integer: true);
                every = (long)(Number(wm, "every", wp + ".every", min: 1, integer: true) ?? 1);
            }
            else if (item is YamlSequenceNode { Children.Count: 2 } pair
                     && Scalar(pair.Children[0], wp) is long f && Scalar(pair.Children[1], wp) is long tt)
            {
                from = f; to = tt;
            }
            else { Error(item, wp, "a window is { from: <step>, to: <step>, every: <k> } or [from, to]"); continue; }
            if (from is not { } a || to is not { } b) continue;
            if (a < 0 || b <= a) { Error(item, wp, $"window [{a}, {b}) is empty: need 0 <= from < to"); continue; }
            result.Add(new Harness.Host.Training.ProbeWindow(a, b, (int)every));
        }
        return result;
    }

    /// <summary>bursts: { steps, on: [crossing, loss_spike], loss_spike_factor }.</summary>
    private Harness.Host.Training.ProbeBurst? Burst(YamlNode node, string path)
    {
        if (node is not YamlMappingNode m) { Error(node, path, "must be a mapping { steps, on, loss_spike_factor }"); return null; }
        CheckKeys(m, path, "steps", "on", "loss_spike_factor");
        int steps = (int)(Number(m, "steps", path + ".steps", required: true, min: 1, integer: true) ?? 1);
        double factor = Number(m, "loss_spike_factor", path + ".loss_spike_factor", min: 1) ?? 2.0;
        bool crossing = true, spike = true;
        if (Get(m, "on") is { } on)
        {
            crossing = spike = false;
            var items = on is YamlSequenceNode os ? os.Children.ToList() : [on];
            if (items.Count == 0) Error(on, path + ".on", "an empty list of events never triggers a burst");
            foreach (var item in items)
                switch (item is YamlScalarNode sc ? sc.Value : null)
                {
                    case "crossing": crossing = true; break;
                    case "loss_spike": spike = true; break;
                    default: Error(item, path + ".on", "events are 'crossing' and 'loss_spike'"); break;
                }
        }
        return new Harness.Host.Training.ProbeBurst(steps, crossing, spike, factor);
    }

    /// <summary><c>preconditioner_from: { optimizer: &lt;index or name of an earlier entry&gt;, step: &lt;k&gt; }</c> or
    /// <c>{ file: &lt;state-k.json&gt; }</c> (a path relative to the matrix file).</summary>
    private PreconditionerSourceSpec? PreconditionerFrom(YamlNode node, string path, int index, string pluginName)
    {
        if (node is not YamlMappingNode m) { Error(node, path, "must be a mapping { optimizer: <earlier entry>, step: <k> } or { file: <state file> }"); return null; }
        CheckKeys(m, path, "optimizer", "step", "file");
        var target = plugins.Optimizers[pluginName].Plugin;
        if (Str(m, "file", path + ".file") is { } file)
        {
            if (Get(m, "optimizer") is not null) Error(m, path, "give either 'file' or 'optimizer' and 'step', not both");
            var fileNode = Get(m, "file")!;
            var full = UntrustedFile.Full(file, RelativeBase());
            var read = full is null ? new FileRead(null, _policy.IsConfined ? null : "is not a valid path")
                : UntrustedFile.Read(full, _policy.MaxStateFileBytes, _policy.IsConfined ? _policy.FileRoots : null);
            if (read.Bytes is null)
            {
                Error(fileNode, path + ".file", read.Problem is null ? InputPolicy.RefusedMessage
                    : read.Problem == "not found" ? $"state file '{full}' not found" : $"state file '{(_policy.IsConfined ? file : full)}' {read.Problem}");
                return null;
            }
            Harness.Host.Training.OptimizerStateFile state;
            string shown = _policy.IsConfined ? file : full!;
            try
            {
                state = System.Text.Json.JsonSerializer.Deserialize<Harness.Host.Training.OptimizerStateFile>(read.Bytes, Harness.Host.Training.OptimizerStateFile.Json)
                    ?? throw new InvalidDataException($"{shown} is empty");
                if (state.Format != Harness.Host.Training.OptimizerStateFile.CurrentFormat)
                    throw new InvalidDataException($"{shown} has format '{state.Format}', expected '{Harness.Host.Training.OptimizerStateFile.CurrentFormat}'");
            }
            catch (System.Text.Json.JsonException e) { Error(fileNode, path + ".file", $"{shown} is not an optimizer state file: {e.Message}"); return null; }
            catch (InvalidDataException e) { Error(fileNode, path + ".file", e.Message); return null; }
            if (state.Preconditioner is null) { Error(fileNode, path + ".file", $"the state file holds no preconditioner (optimizer '{state.Optimizer}' reported none)"); return null; }
            CheckAcceptsPreconditioner(target, pluginName, m, path);
            return new PreconditionerSourceSpec(null, state.Step, full, Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(read.Bytes)));
        }
        var srcNode = Get(m, "optimizer");
        if (srcNode is null) { Error(m, path, "needs 'optimizer' (an earlier entry of optimizers, by index or name) and 'step', or 'file'"); return null; }
        int? source = null;
        var raw = Scalar(srcNode, path + ".optimizer");
        var entries = Get(_root!, "optimizers") is YamlSequenceNode seq ? seq.Children.Select(c => c is YamlMappingNode cm && Get(cm, "name") is YamlScalarNode n ? n.Value : null).ToList() : [];
        if (raw is long l) source = (int)l;
        else if (raw is string name)
        {
            var matches = entries.Select((n, k) => (n, k)).Where(x => x.n == name).Select(x => x.k).ToList();
            if (matches.Count == 1) source = matches[0];
            else Error(srcNode, path + ".optimizer", matches.Count == 0 ? $"no optimizer entry named '{name}'" : $"'{name}' names {matches.Count} entries; give the index");
        }
        else if (raw is not null) Error(srcNode, path + ".optimizer", $"expected an entry index or name, got '{raw}'");
        if (source is { } s && (s < 0 || s >= index))
        {
            Error(srcNode, path + ".optimizer", $"must refer to an earlier entry of optimizers (0..{index - 1}), so that its runs finish first; got {s}");
            source = null;
        }
        long step = (long)(Number(m, "step", path + ".step", required: true, min: 0, integer: true) ?? 0);
        CheckAcceptsPreconditioner(target, pluginName, m, path);
        if (source is { } src && entries[src] is { } srcName && plugins.Optimizers.TryGetValue(srcName, out var srcPlugin) && !ReportsPreconditioner(srcPlugin.Plugin))
            Error(srcNode, path + ".optimizer", $"optimizer '{srcName}' (entry {src}) reports no preconditioner to take");
        return source is null ? null : new PreconditionerSourceSpec(source, step, null, null);
    }

    /// <summary>A trial import on a one-element parameter: the optimizer must keep a static P in the state buffer
    /// "preconditioner" (the precond_* optimizers do; see docs/optimizers.md).</summary>
    private void CheckAcceptsPreconditioner(IOptimizerPlugin target, string name, YamlNode node, string path)
    {
        try
        {
            using var scope = TorchSharp.torch.NewDisposeScope();
            var theta = TorchSharp.torch.zeros(1, dtype: TorchSharp.torch.ScalarType.Float64);
            using var opt = target.Create([theta], new HyperparameterValues(target.Hyperparameters));
            opt.ImportState(new OptimizerState
            {
                Scalars = { ["step"] = 0, ["lr"] = opt.LearningRate },
                Buffers = { [Harness.Host.Training.OptimizerStateFile.PreconditionerBufferName] = [[1.0]] },
            });
        }
        catch (Exception e)
        {
            Error(node, path, $"optimizer '{name}' does not take an imported preconditioner ({e.Message.Split('\n')[0]}); use a precond_* optimizer");
        }
    }

    private static bool ReportsPreconditioner(IOptimizerPlugin plugin)
    {
        try
        {
            using var scope = TorchSharp.torch.NewDisposeScope();
            using var opt = plugin.Create([TorchSharp.torch.zeros(1, dtype: TorchSharp.torch.ScalarType.Float64)], new HyperparameterValues(plugin.Hyperparameters));
            return opt.Preconditioner is not null;
        }
        catch (Exception) { return true; } // not decidable here; the run reports it
    }

    private void CheckPreconditionerSources(YamlMappingNode root, List<ComponentSpec> optimizers, TrainingSpec training)
    {
        for (int i = 0; i < optimizers.Count; i++)
            if (optimizers[i].PreconditionerFrom is { Optimizer: not null, Step: var step } && step > training.Steps)
                Error(root, $"optimizers[{i}].preconditioner_from.step", $"step {step} is beyond training.steps ({training.Steps})");
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

    private double? Number(YamlMappingNode m, string key, string path, bool required = false, double? min = null, bool integer = false,
        double? max = null)
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
        // Integers are counts (steps, sizes, seeds): keep them well inside long and int ranges.
        double hi = max ?? (integer ? int.MaxValue : double.MaxValue);
        if (x > hi) { Error(node, path, $"value {x.ToString(CultureInfo.InvariantCulture)} is above the maximum {hi.ToString(CultureInfo.InvariantCulture)}"); return null; }
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
        if (double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var d))
        {
            if (double.IsFinite(d)) return d;
            Error(node, path, $"'{v}' is not a finite number (NaN and infinities are not accepted; quote it if you mean a string)");
            return null;
        }
        return v;
    }

    private SourceLocation Loc(YamlNode node) => new(_file, node.Start.Line, node.Start.Column);
    private void Error(YamlNode node, string key, string message) => _errors.Add(new MatrixError(Loc(node), key, message));
}
