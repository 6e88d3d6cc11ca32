using Harness.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Models;

/// <summary>Jiang et al.'s two-layer linear network f(x) = W2·W1·x (W1 ∈ R^{d×d}, W2 ∈ R^{1×d}; d_x = h = d, d_y = 1) on
/// its population loss. With whitened inputs (E[xxᵀ] = I) and a linear teacher y = a·x the square loss
/// ½E[(W2W1x − y)²] equals ½‖W2W1 − a‖² exactly (Jiang et al. eq. (2), after Arora et al., with Λ_yx = a and the
/// constant 0 for a noiseless teacher), so it is computed in closed form without sampling. The teacher a has
/// positive Θ(1) coordinates drawn uniformly from [teacher_min, teacher_max] with data_seed (paper: positive,
/// Θ(1), w.l.o.g. by rotational invariance); W1, W2 are N(0, σ0²) with σ0 = d^−init_exponent (paper: small
/// initialisation; docs/science.md §5: σ0 = d^−2) drawn with init_seed.
/// Hessian diagonal (docs/science.md §5, exact for this normalisation): ∂²L/∂(W1)_ij² = v_i² with v = W2, and
/// ∂²L/∂(W2)_i² = ‖w_i‖² with w_i the i-th row of W1.</summary>
public sealed class TwoLayerLinearPlugin : IModelPlugin
{
    public string Name => "two_layer_linear";
    public string Description => "Jiang et al.'s two-layer linear net W2W1x (d_y = 1) on its whitened population loss ½‖W2W1 − a‖².";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } =
    [
        HyperparameterSpec.Integer("dim", 64, "d = input = hidden dimension", min: 1, max: 8192),
        HyperparameterSpec.Real("init_exponent", 2.0, "σ0 = d^−init_exponent (Jiang et al. / docs/science.md §5: 2)", min: 0),
        HyperparameterSpec.Real("teacher_min", 0.5, "teacher coordinates a_j ~ U[teacher_min, teacher_max] (data_seed)", min: 0, minExclusive: true),
        HyperparameterSpec.Real("teacher_max", 1.5, "upper end of the teacher's coordinates", min: 0, minExclusive: true),
    ];

    public IModel Create(ModelContext context) => new TwoLayerLinear(context);
}

public sealed class TwoLayerLinear : IModel
{
    private readonly Tensor _w1, _w2;

    public TwoLayerLinear(ModelContext ctx)
    {
        var hp = ctx.Hyperparameters;
        int d = (int)hp.Integer("dim");
        double lo = hp.Real("teacher_min"), hi = hp.Real("teacher_max");
        if (hi < lo) throw new ArgumentException($"teacher_max ({hi}) is below teacher_min ({lo})");
        Sigma0 = Math.Pow(d, -hp.Real("init_exponent"));
        var f = new ParameterFactory(ctx);
        _w1 = f.Normal("W1", [d, d], Sigma0, layerWeight: true);
        _w2 = f.Normal("W2", [1, d], Sigma0, layerWeight: true);
        Parameters = f.Parameters;
        using (var scope = NewDisposeScope())
        {
            var u = rand([1, d], dtype: ScalarType.Float64, generator: new TorchSharp.torch.Generator((ulong)ctx.DataSeed));
            using var width = (hi - lo).ToScalar();
            using var low = lo.ToScalar();
            Teacher = u.mul(width).add(low, One).to(ctx.DType, ctx.Device).DetachFromDisposeScope();
        }
    }

    /// <summary>Standard deviation of the initial weights.</summary>
    public double Sigma0 { get; }
    /// <summary>The teacher a (1×d), i.e. Λ_yx.</summary>
    public Tensor Teacher { get; }
    public IReadOnlyList<ModelParameter> Parameters { get; }
    public Dataset Train { get; } = new(null, null, 1);
    public Dataset? Test => null;

    // Explicit, process-lifetime Scalar: a double converted implicitly for a native call can be finalized during it.
    private static readonly Scalar Half = 0.5.ToScalar(), One = 1.ToScalar(), Two = 2.ToScalar();

    public Tensor Loss(Dataset batch) => (_w2.matmul(_w1) - Teacher).pow(Two).sum().mul(Half);

    public double? Accuracy(Dataset batch) => null;

    public void Dispose() { _w1.Dispose(); _w2.Dispose(); Teacher.Dispose(); }
}
