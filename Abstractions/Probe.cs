using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Abstractions;

/// <summary>One column/metric a probe emits. Names are global within a run (they become Parquet columns and
/// the <c>metric</c> label of the probe gauge), so prefix them with the probe's subject.</summary>
public sealed record MetricSpec(string Name, string Doc, string Unit = "1");

/// <summary>What a probe sees: the objective on the fixed probe set (same examples for every run of a matrix),
/// the optimizer through the contract only, the model (for its data and accuracy), and the step.</summary>
/// <param name="InitialParameters">θ_0, for distances from initialisation (do not modify).</param>
/// <param name="PreviousUpdate">θ_t − θ_{t−1} of the last optimizer step, or null at step 0 (do not modify).</param>
/// <param name="Shared">Per-run blackboard for probes that build on each other (e.g. the sharpness probe publishes
/// its top eigenvector under "top_eigenvector"); probes run in the order the matrix lists them.</param>
public sealed record ProbeContext(
    IObjective Objective,
    IOptimizer Optimizer,
    IModel Model,
    long Step,
    IReadOnlyList<Tensor> InitialParameters,
    IReadOnlyList<Tensor>? PreviousUpdate,
    IDictionary<string, object> Shared);

/// <summary>A probe bound to one run (it may keep state between measurements, e.g. a warm-start vector).</summary>
public interface IProbe : IDisposable
{
    /// <summary>Measures at the current parameters. Keys are a subset of the metric names the plugin declared
    /// (<see cref="IProbePlugin.MetricsFor"/>); a missing key is written as null.</summary>
    IReadOnlyDictionary<string, double> Measure(ProbeContext context);
}

/// <summary>Factory for one probe, discovered in a plugin assembly.</summary>
public interface IProbePlugin
{
    string Name { get; }
    string Description { get; }
    IReadOnlyList<HyperparameterSpec> Hyperparameters { get; }
    /// <summary>The metrics an instance created with these values will emit (known before the run starts,
    /// so the trace schema is fixed).</summary>
    IReadOnlyList<MetricSpec> MetricsFor(HyperparameterValues hyperparameters);
    IProbe Create(HyperparameterValues hyperparameters);
}
