using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Abstractions;

/// <summary>How an optimizer accumulates momentum; decides its stability threshold (docs/science.md §2).</summary>
public enum MomentumKind
{
    /// <summary>No momentum: threshold 2/η.</summary>
    None,
    /// <summary>m = βm + g; θ -= ηm (PyTorch SGD momentum, dampening 0): (2+2β)/η.</summary>
    Standard,
    /// <summary>m = βm + (1−β)g; θ -= ηm (Adam's first moment): (2+2β)/(η(1−β)).</summary>
    Ema,
    /// <summary>m = βm + g; θ -= η(βm + g): (2+2β)/(η(1+2β)).</summary>
    StandardNesterov,
    /// <summary>m = βm + (1−β)g; θ -= η(βm + (1−β)g): (2+2β)/(η(1−β)(1+2β)).</summary>
    EmaNesterov,
}

/// <summary>Closed-form stability thresholds of docs/science.md §2: the eigenvalue of H (or of P^-1/2 H P^-1/2 for
/// preconditioned methods) above which the per-direction linear recurrence diverges.</summary>
public static class StabilityThreshold
{
    public static double For(MomentumKind kind, double lr, double beta) => kind switch
    {
        MomentumKind.None => 2.0 / lr,
        MomentumKind.Standard => (2 + 2 * beta) / lr,
        MomentumKind.Ema => (2 + 2 * beta) / (lr * (1 - beta)),
        MomentumKind.StandardNesterov => (2 + 2 * beta) / (lr * (1 + 2 * beta)),
        MomentumKind.EmaNesterov => (2 + 2 * beta) / (lr * (1 - beta) * (1 + 2 * beta)),
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };
}

/// <summary>Result of one optimizer step: the loss on the step's batch before the update.</summary>
public readonly record struct StepResult(double Loss);

/// <summary>A running optimizer bound to a model's parameters.</summary>
public interface IOptimizer : IDisposable
{
    /// <summary>One update on the objective's batch. The gradient comes from <see cref="IObjective.Evaluate"/>
    /// so that the host and probes can read the same evaluation afterwards without recomputing it.</summary>
    StepResult Step(IObjective objective);

    /// <summary>Current learning rate η_t. The host sets it before each step when a schedule is configured.</summary>
    double LearningRate { get; set; }

    /// <summary>Diagonal preconditioner P per parameter tensor (same shapes, positive entries) computed from the
    /// current state (the P of the most recent update), or null for an unpreconditioned method. The tensors may be
    /// computed on demand: they belong to the caller's dispose scope; never modify them.</summary>
    IReadOnlyList<Tensor>? Preconditioner { get; }

    MomentumKind Momentum { get; }
    double MomentumCoefficient { get; }

    /// <summary>Threshold at the current η on λ1(H), or on λ1(P^-1/2 H P^-1/2) when <see cref="Preconditioner"/>
    /// is not null.</summary>
    double StabilityThreshold { get; }

    /// <summary>Optimizer state (step count, buffers) for checkpoints and frozen preconditioners.</summary>
    OptimizerState ExportState();
    void ImportState(OptimizerState state);
}

/// <summary>Serializable optimizer state: scalars plus named float64 buffers per parameter tensor.</summary>
public sealed class OptimizerState
{
    public Dictionary<string, double> Scalars { get; init; } = new();
    /// <summary>Buffer name → one flat double array per parameter tensor (null where not allocated).</summary>
    public Dictionary<string, double[]?[]> Buffers { get; init; } = new();
}

/// <summary>Factory for one optimizer algorithm, discovered in a plugin assembly.</summary>
public interface IOptimizerPlugin
{
    /// <summary>Name used in matrix files, e.g. "adam". Lower case, unique across plugins.</summary>
    string Name { get; }
    string Description { get; }
    IReadOnlyList<HyperparameterSpec> Hyperparameters { get; }
    IOptimizer Create(IReadOnlyList<Tensor> parameters, HyperparameterValues hyperparameters);
}
