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
    Training.LearningRateSchedule? Schedule = null)
{
    /// <summary>The schedule with decay_steps defaulted to the run's length.</summary>
    public Training.LearningRateSchedule EffectiveSchedule =>
        Schedule is null ? Training.LearningRateSchedule.Constant
        : Schedule.DecaySteps > 0 ? Schedule : Schedule with { DecaySteps = Matrix.Training.Steps };

    /// <summary>Canonical JSON of everything that determines the run's result (not the output folder).</summary>
    public string CanonicalConfiguration => Configuration().ToJsonString();

    public JsonObject Configuration() => new()
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
        ["probes"] = new JsonArray(Matrix.Probes.OrderBy(p => p.Name, StringComparer.Ordinal).Select(p => (JsonNode)ProbeJson(p)).ToArray()),
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
    public string RunId => $"{Optimizer}-{Hash()}";

    /// <summary>Short human label, e.g. "gd lr=0.1 | fashion_mlp | seeds 0/0".</summary>
    public string Label =>
        $"{Optimizer} {string.Join(" ", OptimizerHyperparameters.OrderBy(k => k.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key}={Format(kv.Value)}"))} | {Model} | seeds {InitSeed}/{DataSeed}".Replace("  ", " ");

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

public static class MatrixExpander
{
    /// <summary>All cells: models × model grid × optimizers × optimizer grid × init seeds × data seeds, in that
    /// nesting order (deterministic, so shards can split it).</summary>
    public static IReadOnlyList<RunCell> Expand(MatrixSpec m)
    {
        var cells = new List<RunCell>();
        foreach (var model in m.Models)
        foreach (var mhp in Grid(model.Grid))
        foreach (var opt in m.Optimizers)
        foreach (var ohp in Grid(opt.Grid))
        foreach (var init in m.InitSeeds)
        foreach (var data in m.DataSeeds)
            cells.Add(new RunCell(m.Name, model.Name, mhp, opt.Name, ohp, init, data, m, opt.Schedule));
        var duplicates = cells.GroupBy(c => c.RunId).Where(g => g.Count() > 1).Select(g => g.Key).ToList();
        if (duplicates.Count > 0)
            throw new MatrixValidationException([new MatrixError(new SourceLocation(m.SourceFile, 0, 0), "(matrix)",
                $"the matrix lists the same run more than once ({string.Join(", ", duplicates)}); remove the repeated values")]);
        return cells;
    }

    private static IEnumerable<IReadOnlyDictionary<string, object>> Grid(IReadOnlyList<KeyValuePair<string, IReadOnlyList<object>>> axes)
    {
        IEnumerable<Dictionary<string, object>> acc = [new Dictionary<string, object>(StringComparer.Ordinal)];
        foreach (var (name, values) in axes)
            acc = acc.SelectMany(d => values.Select(v => new Dictionary<string, object>(d, StringComparer.Ordinal) { [name] = v }));
        return acc;
    }
}
