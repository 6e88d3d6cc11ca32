using Harness.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Models;

/// <summary>Creates a model's trainable tensors in a fixed order from one generator seeded by init_seed only.
/// Values are drawn in float64 on the CPU and then converted to the run's dtype and device, so the same init_seed
/// gives the same weights (to rounding) for float32 and float64 and on every device.</summary>
public sealed class ParameterFactory(ModelContext context)
{
    private readonly TorchSharp.torch.Generator _gen = new((ulong)context.InitSeed);
    private readonly List<ModelParameter> _parameters = new();

    public IReadOnlyList<ModelParameter> Parameters => _parameters;

    /// <summary>N(0, std²) entries.</summary>
    public Tensor Normal(string name, long[] shape, double std, bool layerWeight)
    {
        using var scope = NewDisposeScope();
        using var s = std.ToScalar();
        return Add(name, randn(shape, dtype: ScalarType.Float64, generator: _gen).mul(s), layerWeight);
    }

    /// <summary>Weight of a Linear/Conv layer with variance 1/fan_in (fan_in = product of all dims but the first).</summary>
    public Tensor FanIn(string name, long[] shape, double gain = 1.0)
    {
        long fanIn = shape.Skip(1).Aggregate(1L, (a, b) => a * b);
        return Normal(name, shape, gain / Math.Sqrt(fanIn), layerWeight: true);
    }

    public Tensor Constant(string name, long[] shape, double value, bool layerWeight = false)
    {
        using var scope = NewDisposeScope();
        using var s = value.ToScalar();
        return Add(name, full(shape, s, dtype: ScalarType.Float64), layerWeight);
    }

    /// <summary>A tensor of given values (float64 on the CPU before conversion).</summary>
    public Tensor FromValues(string name, double[] values, long[] shape, bool layerWeight)
    {
        using var scope = NewDisposeScope();
        return Add(name, tensor(values, shape, dtype: ScalarType.Float64), layerWeight);
    }

    private Tensor Add(string name, Tensor value, bool layerWeight)
    {
        if (_parameters.Any(p => p.Name == name)) throw new InvalidOperationException($"duplicate parameter name '{name}'");
        var t = value.to(context.DType, context.Device).detach().requires_grad_(true).DetachFromDisposeScope();
        _parameters.Add(new ModelParameter(name, t, layerWeight));
        return t;
    }
}
