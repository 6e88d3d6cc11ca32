using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Abstractions;

/// <summary>A set of examples. Inputs/Targets are null for data-free objectives (e.g. a quadratic), whose
/// Count is 1.</summary>
public sealed record Dataset(Tensor? Inputs, Tensor? Targets, long Count)
{
    /// <summary>The examples at the given indices (a 1-D int64 tensor).</summary>
    public Dataset Select(Tensor indices) =>
        Inputs is null ? this : new Dataset(Inputs.index_select(0, indices), Targets?.index_select(0, indices), indices.shape[0]);
}

/// <summary>A trainable parameter with a stable name. <see cref="IsLayerWeight"/> marks weight tensors of
/// Linear/Conv/Embedding/attention projections (per-layer probes use them; norms and biases are false).</summary>
public sealed record ModelParameter(string Name, Tensor Tensor, bool IsLayerWeight);

/// <summary>Everything a model plugin needs to build one instance.</summary>
public sealed record ModelContext(
    HyperparameterValues Hyperparameters,
    long InitSeed,
    long DataSeed,
    ScalarType DType,
    Device Device,
    string? DataDirectory);

/// <summary>A model (or any differentiable objective) with its data.</summary>
public interface IModel : IDisposable
{
    /// <summary>Trainable parameters (requires_grad), in a fixed order.</summary>
    IReadOnlyList<ModelParameter> Parameters { get; }

    /// <summary>Mean loss over the batch at the current parameters, as a scalar tensor with a graph.</summary>
    Tensor Loss(Dataset batch);

    /// <summary>Fraction of correctly classified examples, or null for a non-classifier.</summary>
    double? Accuracy(Dataset batch);

    Dataset Train { get; }
    /// <summary>Held-out data, or null.</summary>
    Dataset? Test { get; }
}

/// <summary>Factory for one model, discovered in a plugin assembly.</summary>
public interface IModelPlugin
{
    string Name { get; }
    string Description { get; }
    IReadOnlyList<HyperparameterSpec> Hyperparameters { get; }
    IModel Create(ModelContext context);
}
