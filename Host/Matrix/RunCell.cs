using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Harness.Host.Matrix;

/// <summary>One run of a matrix: a model and an optimizer with one value per hyperparameter, and two seeds.</summary>
public sealed record RunCell(
    string MatrixName,
    string Model,
    IReadOnlyDictionary<string, object> ModelHyperparameters,
    string Optimizer,
    IReadOnlyDictionary<string, object> OptimizerHyperparameters,
    long InitSeed,
    long DataSeed,
    MatrixSpec Matrix,
    Training.LearningRateSchedule? Schedule = null,
    PreconditionerSource? PreconditionerFrom = null,
    IReadOnlyList<long>? SaveStateAt = null)
{
    /// <summary>The learning-rate tuner wrapping the optimizer (<c>optimizers[i].tuner</c>), or null.</summary>
    public string? Tuner { get; init; }
    /// <summary>The tuner's resolved hyperparameters (one value each) when <see cref="Tuner"/> is set.</summary>
    public IReadOnlyDictionary<string, object>? TunerHyperparameters { get; init; }

    /// <summary>This run's probes, one value per hyperparameter (probe axes swept by the matrix resolved); null = the
    /// matrix's probe list as written.</summary>
    public IReadOnlyList<ProbeSpec>? ProbeValues { get; init; }
    /// <summary>The probes this run measures, in the matrix's order.</summary>
    public IReadOnlyList<ProbeSpec> Probes => ProbeValues ?? Matrix.Probes;
    /// <summary>Model hyperparameters that the matrix sweeps (more than one value in the model's entry): shown in the label.</summary>
    public IReadOnlyList<string> SweptModelHyperparameters { get; init; } = [];

    /// <summary>Name of the file a run writes its optimizer state to at <paramref name="step"/>.</summary>
    public static string StateFileName(long step) => $"state-{step}.json";

    /// <summary>The schedule with decay_steps defaulted to the run's length.</summary>
    public Training.LearningRateSchedule EffectiveSchedule =>
        Schedule is null ? Training.LearningRateSchedule.Constant
        : Schedule.DecaySteps > 0 ? Schedule : Schedule with { DecaySteps = Matrix.Training.Steps };

    /// <summary>Canonical JSON of everything that determines the run's result (not the output folder).</summary>
    public string CanonicalConfiguration => Configuration().ToJsonString();

    public JsonObject Configuration()
    {
        var config = BaseConfiguration();
        // Present only when set, so the ids of untuned runs stay what they were.
        if (Tuner is not null)
            ((JsonObject)config["optimizer"]!)["tuner"] = new JsonObject
                { ["name"] = Tuner, ["hyperparameters"] = Sorted(TunerHyperparameters ?? new Dictionary<string, object>()) };
        if (PreconditionerFrom is { } src)
            ((JsonObject)config["optimizer"]!)["preconditioner_from"] = src.File is null
                ? new JsonObject { ["run_id"] = src.RunId, ["step"] = src.Step }
                : new JsonObject { ["file"] = src.File, ["sha256"] = src.Sha256, ["step"] = src.Step };
        return config;
    }

    private JsonObject BaseConfiguration() => new()
    {
        ["model"] = new JsonObject { ["name"] = Model, ["hyperparameters"] = Sorted(ModelHyperparameters) },
        ["optimizer"] = new JsonObject
        {
            ["name"] = Optimizer, ["hyperparameters"] = Sorted(OptimizerHyperparameters),
            ["schedule"] = Schedule is null ? null : JsonSerializer.SerializeToNode(EffectiveSchedule, ScheduleJson),
        },
        ["init_seed"] = InitSeed,
        ["data_seed"] = DataSeed,
        ["device"] = Matrix.Device,
        ["dtype"] = Matrix.DType,
        ["training"] = TrainingJson(),
        ["probe_set"] = new JsonObject { ["size"] = Matrix.ProbeSetSize, ["seed"] = Matrix.ProbeSetSeed },
        ["probes"] = new JsonArray(Probes.OrderBy(p => p.Id, StringComparer.Ordinal).Select(p => (JsonNode)ProbeJson(p)).ToArray()),
    };

    private JsonObject TrainingJson()
    {
        var o = new JsonObject
        {
            ["steps"] = Matrix.Training.Steps,
            ["batch_size"] = Matrix.Training.BatchSize is { } b ? b : "full",
            ["target_loss"] = Matrix.Training.TargetLoss,
            ["divergence_factor"] = Matrix.Training.DivergenceFactor,
        };
        if (Matrix.Training.ProbeBudget is { } budget) o["probe_budget"] = budget;
        return o;
    }

    /// <summary>A probe's configuration; windows, bursts and the budget appear only when set, so the ids of runs
    /// without them stay what they were.</summary>
    private static JsonObject ProbeJson(ProbeSpec p)
    {
        var o = new JsonObject { ["name"] = p.Name, ["every"] = p.Every, ["hyperparameters"] = Sorted(p.Hyperparameters) };
        if (p.As is not null) o["as"] = p.As;
        if (p.Windows.Count > 0)
            o["windows"] = new JsonArray(p.Windows.Select(w => (JsonNode)new JsonObject { ["from"] = w.From, ["to"] = w.To, ["every"] = w.Every }).ToArray());
        if (p.Burst is { } b)
            o["bursts"] = new JsonObject
            {
                ["steps"] = b.Steps, ["on_crossing"] = b.OnCrossing, ["on_loss_spike"] = b.OnLossSpike, ["loss_spike_factor"] = b.LossSpikeFactor,
            };
        return o;
    }

    /// <summary>Stable id: optimizer name plus the first 12 hex digits of SHA-256 of the canonical configuration.
    /// Re-running a matrix finds finished runs by this id and skips them.</summary>
    public string RunId => Tuner is null ? $"{Optimizer}-{Hash()}" : $"{Optimizer}-{Tuner}-{Hash()}";

    /// <summary>Short human label, e.g. "gd lr=0.1 | fashion_mlp width=64 | seeds 0/0 | sharpness max_iterations=20": every
    /// optimizer hyperparameter, the model's and the probes' swept ones.</summary>
    public string Label =>
        $"{Optimizer} {Pairs(OptimizerHyperparameters)} | {Model} {Pairs(SweptModelHyperparameters.ToDictionary(k => k, k => ModelHyperparameters[k]))} | seeds {InitSeed}/{DataSeed}".Replace("  ", " ")
        + (PreconditionerFrom is { } src ? $" | P from {(src.File is null ? src.RunId : Path.GetFileName(src.File))}@{src.Step}" : "")
        + (Tuner is null ? "" : $" | tuner {Tuner} {Pairs(TunerHyperparameters ?? new Dictionary<string, object>())}".TrimEnd())
        + string.Concat(Probes.Where(p => p.Grid.Any(a => a.Value.Count > 1))
            .Select(p => $" | {p.Id} {Pairs(p.Grid.Where(a => a.Value.Count > 1).ToDictionary(a => a.Key, a => p.Hyperparameters[a.Key]))}"));

    private static string Pairs(IReadOnlyDictionary<string, object> values) =>
        string.Join(" ", values.OrderBy(k => k.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key}={Format(kv.Value)}"));

    private static readonly JsonSerializerOptions ScheduleJson = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    private string Hash() => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(CanonicalConfiguration)))[..12];

    private static JsonObject Sorted(IReadOnlyDictionary<string, object> values)
    {
        var o = new JsonObject();
        foreach (var (k, v) in values.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            o[k] = v switch
            {
                double d => JsonValue.Create(d),
                long l => JsonValue.Create(l),
                bool b => JsonValue.Create(b),
                _ => JsonValue.Create(Convert.ToString(v, CultureInfo.InvariantCulture)),
            };
        return o;
    }

    public static string Format(object v) => v switch
    {
        double d => d.ToString("G", CultureInfo.InvariantCulture),
        bool b => b ? "true" : "false",
        _ => Convert.ToString(v, CultureInfo.InvariantCulture) ?? "",
    };
}

/// <summary>Where a cell's static preconditioner comes from: the state another run of the same matrix saved at
/// <paramref name="Step"/>, or a state file (with its SHA-256).</summary>
public sealed record PreconditionerSource(string? RunId, long Step, string? File, string? Sha256)
{
    /// <summary>The state file, given the dependent run's own folder (sources live beside it).</summary>
    public string StatePath(string runDir) =>
        File ?? Path.Combine(Path.GetDirectoryName(Path.GetFullPath(runDir))!, RunId!, RunCell.StateFileName(Step));
}

public static class MatrixExpander
{
    /// <summary>All cells: models × model grid × optimizers × optimizer grid × init seeds × data seeds, in that
    /// nesting order (deterministic, so shards can split it). An optimizer entry with
    /// <c>preconditioner_from: { optimizer: j, step: k }</c> is crossed with entry j's hyperparameter grid: one cell per
    /// source run with the same model, model hyperparameters and seeds; that source saves its state at step k.</summary>
    /// <summary>The number of cells <see cref="Expand"/> makes, computed from the grid sizes alone (as a double: it
    /// may be astronomically large), so a matrix can be refused before it is expanded.</summary>
    public static double Count(MatrixSpec m)
    {
        static double Size(IReadOnlyList<KeyValuePair<string, IReadOnlyList<object>>> axes) => axes.Aggregate(1.0, (acc, a) => acc * a.Value.Count);
        // Runs per (model configuration, seed pair) of each optimizer entry: its grid × its tuner's grid, times the
        // runs of its source entry when it takes its preconditioner from one (one cell per source run).
        var perEntry = new double[m.Optimizers.Count];
        for (int j = 0; j < m.Optimizers.Count; j++)
        {
            var o = m.Optimizers[j];
            double own = Size(o.Grid) * (o.Tuner is null ? 1 : Size(o.Tuner.Grid));
            perEntry[j] = o.PreconditionerFrom is { Optimizer: { } src } && src >= 0 && src < j ? own * perEntry[src] : own;
        }
        return m.Models.Sum(x => Size(x.Grid)) * perEntry.Sum() * m.InitSeeds.Count * m.DataSeeds.Count;
    }

    public static IReadOnlyList<RunCell> Expand(MatrixSpec m)
    {
        var cells = new List<RunCell>();
        var byEntry = new Dictionary<(int entry, int model, long init, long data), List<RunCell>>();
        int modelIndex = 0;
        // Probe axes: every combination of every probe's swept hyperparameters (one list of resolved probes each).
        IEnumerable<List<ProbeSpec>> probeAcc = [[]];
        foreach (var probe in m.Probes)
            probeAcc = probeAcc.SelectMany(list => Grid(probe.Grid.Count > 0 ? probe.Grid : Axes(probe.Hyperparameters))
                .Select(values => new List<ProbeSpec>(list) { probe with { Hyperparameters = values } }));
        var probeGrid = probeAcc.ToList();
        foreach (var model in m.Models)
        foreach (var mhp in Grid(model.Grid))
        {
            modelIndex++;
            var swept = model.Grid.Where(a => a.Value.Count > 1).Select(a => a.Key).ToList();
            for (int j = 0; j < m.Optimizers.Count; j++)
            {
                var opt = m.Optimizers[j];
                var tunerGrid = opt.Tuner is null ? new IReadOnlyDictionary<string, object>?[] { null } : Grid(opt.Tuner.Grid).ToArray<IReadOnlyDictionary<string, object>?>();
                foreach (var ohp in Grid(opt.Grid))
                foreach (var thp in tunerGrid)
                foreach (var probes in probeGrid)
                foreach (var init in m.InitSeeds)
                foreach (var data in m.DataSeeds)
                {
                    var key = (j, modelIndex, init, data);
                    if (!byEntry.TryGetValue(key, out var mine)) byEntry[key] = mine = new List<RunCell>();
                    var cell = new RunCell(m.Name, model.Name, mhp, opt.Name, ohp, init, data, m, opt.Schedule)
                        { Tuner = opt.Tuner?.Name, TunerHyperparameters = thp, ProbeValues = probes, SweptModelHyperparameters = swept };
                    IEnumerable<RunCell> made = opt.PreconditionerFrom switch
                    {
                        { Optimizer: { } src, Step: var step } => byEntry.GetValueOrDefault((src, modelIndex, init, data), [])
                            .Select(s => cell with { PreconditionerFrom = new PreconditionerSource(s.RunId, step, null, null) }).ToList(),
                        { File: { } file, Step: var step, FileSha256: var sha } => [cell with { PreconditionerFrom = new PreconditionerSource(null, step, file, sha) }],
                        _ => [cell],
                    };
                    foreach (var c in made) { cells.Add(c); mine.Add(c); }
                }
            }
        }
        // Every run saves its state at training.save_state_at and wherever a dependent cell takes its P from it
        // (not part of the configuration: saving does not change a run's result).
        var needed = cells.Where(c => c.PreconditionerFrom is { RunId: not null }).GroupBy(c => c.PreconditionerFrom!.RunId!)
            .ToDictionary(g => g.Key, g => g.Select(c => c.PreconditionerFrom!.Step).ToList());
        var always = m.Training.SaveStateAt ?? [];
        for (int i = 0; i < cells.Count; i++)
        {
            var steps = always.Concat(needed.GetValueOrDefault(cells[i].RunId, [])).Distinct().Order().ToList();
            if (steps.Count > 0) cells[i] = cells[i] with { SaveStateAt = steps };
        }
        var duplicates = cells.GroupBy(c => c.RunId).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
        if (duplicates.Count > 0)
            throw new MatrixValidationException([new MatrixError(new SourceLocation(m.SourceFile, 0, 0), "(matrix)",
                $"the matrix lists the same run more than once ({string.Join(", ", duplicates)}); remove the repeated values")]);
        return cells;
    }

    /// <summary>Every combination of the axes' values (the cross product), in axis order.</summary>
    public static IEnumerable<IReadOnlyDictionary<string, object>> Combinations(IReadOnlyList<KeyValuePair<string, IReadOnlyList<object>>> axes) => Grid(axes);

    private static IReadOnlyList<KeyValuePair<string, IReadOnlyList<object>>> Axes(IReadOnlyDictionary<string, object> values) =>
        values.Select(kv => new KeyValuePair<string, IReadOnlyList<object>>(kv.Key, [kv.Value])).ToList();

    private static IEnumerable<IReadOnlyDictionary<string, object>> Grid(IReadOnlyList<KeyValuePair<string, IReadOnlyList<object>>> axes)
    {
        IEnumerable<Dictionary<string, object>> acc = [new Dictionary<string, object>(StringComparer.Ordinal)];
        foreach (var (name, values) in axes)
            acc = acc.SelectMany(d => values.Select(v => new Dictionary<string, object>(d, StringComparer.Ordinal) { [name] = v }));
        return acc;
    }
}
