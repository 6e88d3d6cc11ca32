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
    /// <summary>None of the five (e.g. QHM, AggMo, Lion): the threshold comes from the optimizer's
    /// <see cref="IOptimizer.ThresholdRule"/>, not from this kind. Added in contract 1.1.</summary>
    Other,
}

/// <summary>How an optimizer's stability threshold is defined (recorded in every run's manifest).</summary>
public enum ThresholdRule
{
    /// <summary>The optimizer computes <see cref="IOptimizer.StabilityThreshold"/> itself from a formula (the five
    /// momentum kinds of <see cref="Abstractions.StabilityThreshold.For"/>, or one of its own). Default.</summary>
    ClosedForm,
    /// <summary>The optimizer declares its update's per-direction linear recurrence on a quadratic
    /// (<see cref="IOptimizer.UpdateMatrix"/>); the host computes the threshold numerically
    /// (<see cref="LinearRecurrence"/>).</summary>
    LinearRecurrence,
    /// <summary>The update is not linear in the gradient (sign-based or normalised: Lion, signSGD/Signum, normalised
    /// GD): there is no linear stability threshold. Threshold and edge-ratio columns and gauges are null.</summary>
    None,
}

/// <summary>Closed-form stability thresholds of docs/science.md §2: the eigenvalue of H (or of P^-1/2 H P^-1/2 for
/// preconditioned methods) above which the per-direction linear recurrence diverges.</summary>
public static class StabilityThreshold
{
    /// <summary>The threshold the host reports for <paramref name="optimizer"/> at its current η, by its declared
    /// <see cref="IOptimizer.ThresholdRule"/>: the optimizer's own number (closed form; null unless finite and
    /// positive), the numerical threshold of its declared recurrence, or null (no linear threshold).</summary>
    public static double? Of(IOptimizer optimizer)
    {
        switch (optimizer.ThresholdRule)
        {
            case ThresholdRule.None:
                return null;
            case ThresholdRule.LinearRecurrence:
                double x = LinearRecurrence.CriticalStep(optimizer);
                double lr = optimizer.LearningRate;
                return double.IsFinite(x) && lr > 0 ? x / lr : null;
            default:
                double t = optimizer.StabilityThreshold;
                return double.IsFinite(t) && t > 0 ? t : null;
        }
    }

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
    /// is not null. With <see cref="ThresholdRule.LinearRecurrence"/> return
    /// <c>LinearRecurrence.Threshold(this)</c>; with <see cref="ThresholdRule.None"/> return <see cref="double.NaN"/>
    /// (the host reads thresholds through <see cref="Abstractions.StabilityThreshold.Of"/>, which gives null then).</summary>
    double StabilityThreshold { get; }

    /// <summary>How <see cref="StabilityThreshold"/> is defined. Default <see cref="ThresholdRule.ClosedForm"/> (every
    /// contract-1.0 plugin). Added in contract 1.1.</summary>
    ThresholdRule ThresholdRule => ThresholdRule.ClosedForm;

    /// <summary>For <see cref="ThresholdRule.LinearRecurrence"/>: the update's linear recurrence on one eigen-direction
    /// of a quadratic f = ½λθ² (or of P^-1/2 H P^-1/2 for a preconditioned method), s_{t+1} = M(x) s_t with
    /// x = η·λ, at the current hyperparameters. The state s holds θ first and then the optimizer's buffers scaled so
    /// that M depends on η and λ only through x (e.g. (θ, η·m) for heavy ball: M = [[1−x, −β], [x, β]]). Null for
    /// the other rules. Added in contract 1.1.</summary>
    double[,]? UpdateMatrix(double etaLambda) => null;

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

    /// <summary>Hyperparameter values (overriding the defaults) under which the conformance gate proves the declared
    /// threshold on a 1-D quadratic, e.g. <c>freeze_at_step = 1</c> so an adaptive P stays fixed, or
    /// <c>weight_decay = 0</c> when the threshold is the loss's alone. The gate chooses the learning rate itself.
    /// Default: none (the defaults). Added in contract 1.1.</summary>
    IReadOnlyDictionary<string, object>? ThresholdCheckSettings => null;
}
