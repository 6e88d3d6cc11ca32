using Harness.Abstractions;
using Harness.Abstractions.Numerics;
using Harness.Host.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Tests.Models;

/// <summary>Builds models the way the run executor does and checks curvature against finite differences.</summary>
internal static class ModelTestSupport
{
    public static IModel Create(IModelPlugin plugin, Dictionary<string, object>? hp = null, long initSeed = 0, long dataSeed = 0,
        ScalarType dtype = ScalarType.Float64, string? dataDir = null) =>
        plugin.Create(new ModelContext(new HyperparameterValues(plugin.Hyperparameters, hp ?? new()), initSeed, dataSeed, dtype, CPU, dataDir));

    /// <summary>The first <paramref name="n"/> training examples (or the whole data-free objective).</summary>
    public static Dataset Head(IModel model, long n)
    {
        if (model.Train.Inputs is null || n >= model.Train.Count) return model.Train;
        using var idx = arange(n, dtype: ScalarType.Int64);
        return model.Train.Select(idx);
    }

    /// <summary>A seeded random unit direction in parameter space (flat, float64).</summary>
    public static Tensor UnitDirection(long p, ulong seed)
    {
        var v = randn(p, dtype: ScalarType.Float64, generator: new TorchSharp.torch.Generator(seed));
        return v / v.norm();
    }

    /// <summary>H·v by the host's double backward, and the central difference (∇f(θ+hv) − ∇f(θ−hv))/(2h).</summary>
    public static (Tensor hv, Tensor fd) HvpAndFiniteDifference(IModel model, Dataset batch, Tensor v, double h)
    {
        var objective = new TorchObjective(model, batch);
        Tensor hv;
        using (var op = objective.Hessian()) hv = op.Multiply(v).detach().clone();
        var direction = ParameterVectors.Unflatten(v, objective.Parameters);
        var plus = ParameterVectors.Flatten(objective.EvaluateAt(direction, +h).Gradient);
        var minus = ParameterVectors.Flatten(objective.EvaluateAt(direction, -h).Gradient);
        return (hv, (plus - minus) / (2 * h));
    }

    /// <summary>Adds scale·N(0, 1) noise to every parameter: a generic point. At initialisation a ReLU network with zero
    /// biases sits exactly on kinks (background pixels give pre-activations of exactly 0), where the gradient is not
    /// differentiable along the bias directions and no finite difference can agree with any HVP.</summary>
    public static void MoveToGenericPoint(IModel model, ulong seed, double scale = 0.01)
    {
        var gen = new TorchSharp.torch.Generator(seed);
        using var _ = no_grad();
        foreach (var p in model.Parameters)
            p.Tensor.add_(randn(p.Tensor.shape, dtype: ScalarType.Float64, generator: gen).to(p.Tensor.dtype) * scale);
    }

    public static double RelativeError(Tensor actual, Tensor expected) =>
        (actual - expected).norm().ToDouble() / expected.norm().ToDouble();

    public static Tensor[] Snapshot(IModel model) => model.Parameters.Select(p => p.Tensor.detach().clone()).ToArray();
}
