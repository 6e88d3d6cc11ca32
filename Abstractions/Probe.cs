using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Abstractions;

/// <summary>The Parquet type of a metric's trace column. Values are always reported as doubles; the host converts
/// them when it writes the column (Int64: rounded to the nearest integer; Boolean: true when non-zero).</summary>
public enum MetricType { Double, Int64, Boolean }

/// <summary>One column/metric a probe emits. Names are global within a run (they become Parquet columns and
/// the <c>metric</c> label of the probe gauge), so prefix them with the probe's subject.</summary>
public sealed record MetricSpec(string Name, string Doc, string Unit = "1")
{
    /// <summary>Column type in trace.parquet: counts are <see cref="MetricType.Int64"/>, flags
    /// <see cref="MetricType.Boolean"/>. Default <see cref="MetricType.Double"/>.</summary>
    public MetricType Type { get; init; } = MetricType.Double;

    /// <summary>When true the value goes to the Parquet trace only, not to a Prometheus gauge (e.g. raw samples kept
    /// for recomputation, whose number would make the gauge set large). Default false.</summary>
    public bool TraceOnly { get; init; }
}

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
    IDictionary<string, object> Shared)
{
    /// <summary>θ_{t−1} − θ_{t−2}, the update before <see cref="PreviousUpdate"/>, or null before step 2 (do not modify).
    /// Lets a probe measured every k steps compare consecutive updates.</summary>
    public IReadOnlyList<Tensor>? UpdateBeforePrevious { get; init; }
}

/// <summary>A probe bound to one run (it may keep state between measurements, e.g. a warm-start vector).</summary>
public interface IProbe : IDisposable
{
    /// <summary>Measures at the current parameters. Keys are a subset of the metric names the plugin declared
    /// (<see cref="IProbePlugin.MetricsFor(HyperparameterValues, IReadOnlyList{ModelParameter})"/>); a missing key is written as null.</summary>
    IReadOnlyDictionary<string, double> Measure(ProbeContext context);
}

/// <summary>
/// Optional, for a probe whose measurement depends on its earlier ones (a Lanczos warm-start vector, the previous
/// ratio of a crossing counter). The host saves the exported state with the run's checkpoint and imports it on resume,
/// so a resumed run measures exactly what an uninterrupted run would. A probe without this interface starts a resumed
/// run fresh.
/// </summary>
public interface ICheckpointedProbe
{
    /// <summary>The state now. The tensors stay the probe's (the host copies them out and does not dispose them).</summary>
    ProbeState ExportState();
    /// <summary>Restores a state exported by the same probe with the same hyperparameters, and re-publishes on the run's
    /// blackboard (<see cref="ProbeContext.Shared"/>) what the probe had published there. The tensors are the host's
    /// (on the run's device, with the saved dtype and shape; disposed after the call): copy what you keep.</summary>
    void ImportState(ProbeState state, IDictionary<string, object> shared);
}

/// <summary>A probe's state between measurements: named tensors (saved bit-exactly with dtype and shape) and named
/// numbers.</summary>
public sealed class ProbeState
{
    public Dictionary<string, Tensor> Tensors { get; } = new(StringComparer.Ordinal);
    public Dictionary<string, double> Values { get; } = new(StringComparer.Ordinal);
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

    /// <summary>The metrics for a run on a model with these parameters: per-layer probes name one column per weight
    /// tensor here. The host calls this overload; the default ignores the parameters.</summary>
    IReadOnlyList<MetricSpec> MetricsFor(HyperparameterValues hyperparameters, IReadOnlyList<ModelParameter> parameters) =>
        MetricsFor(hyperparameters);

    IProbe Create(HyperparameterValues hyperparameters);
}
