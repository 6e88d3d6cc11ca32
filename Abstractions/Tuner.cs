using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Abstractions;

/// <summary>
/// An optimizer whose step is θ ← θ + η·u with a direction u that does not depend on η (docs/science.md §3): its state
/// (momentum, second moments) accumulates from raw gradients only. Learning-rate tuners wrap such optimizers.
/// Optimizers whose update is not linear in η must not implement this interface.
/// </summary>
public interface IDirectionalOptimizer : IOptimizer
{
    /// <summary>Advances the state exactly as <see cref="IOptimizer.Step"/> would with the objective's gradient
    /// (<see cref="IObjective.Evaluate"/>, step count included) and returns u (per parameter tensor) such that the
    /// optimizer's own step at learning rate η would be θ ← θ + η·u. θ is not changed. The tensors belong to the
    /// caller's dispose scope.</summary>
    IReadOnlyList<Tensor> Direction(IObjective objective);
}

/// <summary>What a tuner sees at one step: the step's objective (same batch as the gradient and the direction),
/// its evaluation at θ_t, the direction u_t at learning rate 1, the base learning rate η the schedule asks for,
/// the step t and the run's blackboard (<see cref="ProbeBlackboard"/>; probes at step t run before the step).</summary>
public sealed record TunerContext(
    IObjective Objective,
    Evaluation Evaluation,
    IReadOnlyList<Tensor> Direction,
    double BaseLearningRate,
    long Step,
    IReadOnlyDictionary<string, object> Shared);

/// <summary>A running learning-rate tuner: chooses η_t for θ ← θ + η_t u_t.</summary>
public interface ILearningRateTuner : IDisposable
{
    /// <summary>The learning rate for this step (finite, ≥ 0). May evaluate the objective (line searches,
    /// Hessian-vector products); must leave θ unchanged.</summary>
    double Choose(TunerContext context);

    /// <summary>Internal quantities of the most recent <see cref="Choose"/>, by metric name (the names of
    /// <see cref="ILearningRateTunerPlugin.MetricsFor"/>). Logged as trace columns <c>tuner_&lt;name&gt;</c>.</summary>
    IReadOnlyDictionary<string, double> Internals { get; }
}

/// <summary>Factory for one learning-rate tuner, discovered in a plugin assembly.</summary>
public interface ILearningRateTunerPlugin
{
    /// <summary>Name used in matrix files (<c>optimizers[i].tuner.name</c>), lower case, unique across tuners.</summary>
    string Name { get; }
    string Description { get; }
    IReadOnlyList<HyperparameterSpec> Hyperparameters { get; }
    /// <summary>The internals this tuner reports (names without the <c>tuner_</c> prefix; "eta" always).</summary>
    IReadOnlyList<MetricSpec> MetricsFor(HyperparameterValues hyperparameters);
    ILearningRateTuner Create(HyperparameterValues hyperparameters);
}
