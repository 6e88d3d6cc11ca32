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
    Training.LearningRateSchedule? Schedule = null);

public sealed record ProbeSpec(string Name, int Every, IReadOnlyDictionary<string, object> Hyperparameters, SourceLocation Location);

/// <summary>Training loop settings shared by every cell of the matrix.</summary>
/// <param name="Steps">Optimizer steps per run.</param>
/// <param name="BatchSize">Examples per step; null = full batch.</param>
/// <param name="TargetLoss">Stop (status completed) when the training loss falls to this value.</param>
/// <param name="DivergenceFactor">Stop (status diverged) when the loss exceeds this factor times the initial loss.</param>
/// <param name="CheckpointEvery">Save parameters + optimizer state every N steps (0 = never), so an interrupted run
/// resumes from there. Not part of the run's configuration (it does not change results).</param>
public sealed record TrainingSpec(long Steps, int? BatchSize, double? TargetLoss, double DivergenceFactor, long CheckpointEvery = 0);

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
    string? DataDirectory);
