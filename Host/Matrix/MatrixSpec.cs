namespace Harness.Host.Matrix;

/// <summary>A position in a matrix file, for error messages.</summary>
public readonly record struct SourceLocation(string File, long Line, long Column)
{
    public override string ToString() => Line > 0 ? $"{File}:{Line}:{Column}" : File;
}

/// <summary>One validation error: where, which key (a path like optimizers[1].hyperparameters.lr), and why.</summary>
public sealed record MatrixError(SourceLocation Location, string Key, string Message)
{
    public override string ToString() => $"{Location}: {Key}: {Message}";
}

public sealed class MatrixValidationException(IReadOnlyList<MatrixError> errors)
    : Exception($"{errors.Count} error(s) in the matrix:{Environment.NewLine}" + string.Join(Environment.NewLine, errors.Select(e => "  " + e)))
{
    public IReadOnlyList<MatrixError> Errors { get; } = errors;
}

/// <summary>An optimizer or model entry: a plugin name and, per hyperparameter, the list of values to sweep
/// (a scalar in the file is a one-value list).</summary>
public sealed record ComponentSpec(string Name, IReadOnlyList<KeyValuePair<string, IReadOnlyList<object>>> Grid, SourceLocation Location,
    Training.LearningRateSchedule? Schedule = null, PreconditionerSourceSpec? PreconditionerFrom = null)
{
    /// <summary><c>optimizers[i].tuner</c>: a learning-rate tuner wrapping the optimizer, or null.</summary>
    public TunerSpec? Tuner { get; init; }
}

/// <summary><c>optimizers[i].tuner: { name, hyperparameters }</c>: a tuner plugin and its grid (crossed with the
/// optimizer's grid).</summary>
public sealed record TunerSpec(string Name, IReadOnlyList<KeyValuePair<string, IReadOnlyList<object>>> Grid, SourceLocation Location);

/// <summary><c>optimizers[i].preconditioner_from</c>: the preconditioner P that the runs of an earlier optimizer entry
/// (<paramref name="Optimizer"/>, 0-based) reported at <paramref name="Step"/>, or the P in a saved state
/// <paramref name="File"/> (with its SHA-256, recorded in the configuration).</summary>
public sealed record PreconditionerSourceSpec(int? Optimizer, long Step, string? File, string? FileSha256);

/// <summary>A probe entry: plugin <paramref name="Name"/>, and one value per hyperparameter (in a matrix's own list, the
/// first value of each axis; in a run cell, that cell's values).</summary>
public sealed record ProbeSpec(string Name, int Every, IReadOnlyDictionary<string, object> Hyperparameters, SourceLocation Location)
{
    /// <summary><c>probes[i].as</c>: the instance name when a probe is listed more than once, or null.</summary>
    public string? As { get; init; }
    /// <summary>The instance name: <see cref="As"/>, else the plugin name. Names the cost columns and the schedule.</summary>
    public string Id => As ?? Name;
    /// <summary>The trace column of one of the plugin's metrics: the metric itself, or <c>&lt;as&gt;_&lt;metric&gt;</c>.</summary>
    public string Column(string metric) => As is null ? metric : $"{As}_{metric}";
    /// <summary>Hyperparameter axes (defaults as one-value axes); a list in the file is swept like an optimizer's.</summary>
    public IReadOnlyList<KeyValuePair<string, IReadOnlyList<object>>> Grid { get; init; } = [];

    /// <summary>Dense windows (every step, or their own every, for from ≤ t &lt; to).</summary>
    public IReadOnlyList<Training.ProbeWindow> Windows { get; init; } = [];
    /// <summary>Event-triggered bursts, or null.</summary>
    public Training.ProbeBurst? Burst { get; init; }
}

/// <summary>Training loop settings shared by every cell of the matrix.</summary>
/// <param name="Steps">Optimizer steps per run.</param>
/// <param name="BatchSize">Examples per step; null = full batch.</param>
/// <param name="TargetLoss">Stop (status completed) when the training loss falls to this value.</param>
/// <param name="DivergenceFactor">Stop (status diverged) when the loss exceeds this factor times the initial loss.</param>
/// <param name="SaveStateAt">Steps at which every run writes its optimizer state (state-&lt;step&gt;.json in its run folder).</param>
public sealed record TrainingSpec(long Steps, int? BatchSize, double? TargetLoss, double DivergenceFactor, IReadOnlyList<long>? SaveStateAt = null)
{
    /// <summary>Largest fraction of wall time the probes may take (0 &lt; b &lt; 1); the scheduler stretches probe
    /// intervals to stay within it. Null = no budget.</summary>
    public double? ProbeBudget { get; init; }

    /// <summary>Save parameters + optimizer state every N steps (0 = never), so an interrupted run resumes from there.
    /// Not part of the run's configuration (it does not change results).</summary>
    public long CheckpointEvery { get; init; }
}

/// <summary>A parsed, validated matrix file.</summary>
public sealed record MatrixSpec(
    string Name,
    string SourceFile,
    string? OutputRoot,
    string Device,
    string DType,
    IReadOnlyList<ComponentSpec> Models,
    IReadOnlyList<ComponentSpec> Optimizers,
    IReadOnlyList<long> InitSeeds,
    IReadOnlyList<long> DataSeeds,
    TrainingSpec Training,
    int ProbeSetSize,
    long ProbeSetSeed,
    IReadOnlyList<ProbeSpec> Probes,
    string? DataDirectory)
{
    /// <summary><c>claims:</c>, evaluated by the report (empty when the file has none).</summary>
    public IReadOnlyList<ClaimSpec> Claims { get; init; } = [];
}

/// <summary>A claim about the results (<c>claims:</c>, see docs/reports.md): a statistic of a trace column over a window
/// of each run, grouped per configuration (median over seeds) or per run, and the relation every group must satisfy.</summary>
public sealed record ClaimSpec(
    string Id,
    string Text,
    string? Source,
    string Metric,
    IReadOnlyList<KeyValuePair<string, IReadOnlyList<object>>> Where,
    ClaimWindow Window,
    ClaimStatistic Statistic,
    bool PerRun,
    ClaimExpectation Expect,
    int MinSeeds,
    SourceLocation Location)
{
    /// <summary><c>must_pass: true</c>: an exact toy claim; <c>harness reproduce</c> exits non-zero unless it passes.</summary>
    public bool MustPass { get; init; }
}

public enum ClaimStatistic { Median, Mean, Min, Max, Final, Slope, FractionTrue }

/// <summary>The rows of a run a claim looks at: a fraction of its steps [From, To] (of the run's last step), or the
/// steps [FromStep, ToStep] (inclusive). The default is the whole run.</summary>
public sealed record ClaimWindow(double From = 0, double To = 1, long? FromStep = null, long? ToStep = null)
{
    public static readonly ClaimWindow Whole = new();
    public override string ToString() => FromStep is not null || ToStep is not null
        ? $"steps {FromStep ?? 0}..{(ToStep is { } t ? t.ToString(System.Globalization.CultureInfo.InvariantCulture) : "end")}"
        : From == 0 && To == 1 ? "whole run" : $"fraction {From.ToString(System.Globalization.CultureInfo.InvariantCulture)}..{To.ToString(System.Globalization.CultureInfo.InvariantCulture)}";
}

/// <summary>What a claim expects of every group's value.</summary>
public abstract record ClaimExpectation;
/// <summary>lo ≤ value ≤ hi.</summary>
public sealed record ExpectBetween(double Low, double High) : ClaimExpectation;
/// <summary>value <c>Relation</c> Bound, Relation one of &gt; &gt;= &lt; &lt;=.</summary>
public sealed record ExpectRelation(string Relation, double Bound) : ClaimExpectation;
/// <summary>Group values strictly increasing or decreasing in the label <c>Over</c> (among groups equal in every other label).</summary>
public sealed record ExpectMonotone(string Over, bool Increasing) : ClaimExpectation;
/// <summary>value <c>Relation</c> Factor × the value of the matching group selected by <c>where</c> overridden with <c>Other</c>.</summary>
public sealed record ExpectCompare(IReadOnlyList<KeyValuePair<string, IReadOnlyList<object>>> Other, string Relation, double Factor) : ClaimExpectation;
