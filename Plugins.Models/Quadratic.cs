using Harness.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Models;

/// <summary>f(θ) = ½ θᵀAθ with a chosen spectrum, A diagonal or randomly rotated (A = Q diag(λ) Qᵀ with Q from the
/// QR factorisation of a seeded Gaussian matrix). λ1(A) = lambda_max exactly, so thresholds can be checked. A linear
/// spectrum may include negative eigenvalues (a saddle). θ is declared as one layer, so per-layer probes (R_med, the
/// Hessian diagonal) can be checked against diag(A).</summary>
public sealed class QuadraticPlugin : IModelPlugin
{
    public string Name => "quadratic";
    public string Description => "Quadratic ½θᵀAθ with a linear or geometric spectrum, diagonal or rotated.";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } =
    [
        HyperparameterSpec.Integer("dim", 10, "dimension p", min: 1, max: 4096),
        HyperparameterSpec.Real("lambda_max", 1.0, "largest eigenvalue of A"),
        HyperparameterSpec.Real("lambda_min", 0.01, "smallest eigenvalue of A"),
        HyperparameterSpec.Choice("spectrum", "linear", "spacing of the eigenvalues between lambda_min and lambda_max", "linear", "geometric"),
        HyperparameterSpec.Boolean("rotated", false, "rotate A by a random orthogonal matrix (seeded by data_seed)"),
        HyperparameterSpec.Real("init_scale", 1.0, "θ0 ~ N(0, init_scale²) (seeded by init_seed)", min: 0),
    ];

    public IModel Create(ModelContext context) => new Quadratic(context);
}

public sealed class Quadratic : IModel
{
    private readonly Tensor _theta;

    public Quadratic(ModelContext ctx)
    {
        var hp = ctx.Hyperparameters;
        int p = (int)hp.Integer("dim");
        double hi = hp.Real("lambda_max"), lo = hp.Real("lambda_min");
        if (hi < lo) throw new ArgumentException($"lambda_max ({hi}) is below lambda_min ({lo})");
        if (hp.Choice("spectrum") == "geometric" && (lo <= 0 || hi <= 0))
            throw new ArgumentException("a geometric spectrum needs lambda_min > 0 and lambda_max > 0");
        var spectrum = new double[p];
        for (int i = 0; i < p; i++)
        {
            double s = p == 1 ? 1 : (double)(p - 1 - i) / (p - 1);
            spectrum[i] = hp.Choice("spectrum") == "geometric" ? lo * Math.Pow(hi / lo, s) : lo + (hi - lo) * s;
        }
        Spectrum = spectrum;
        using (var scope = NewDisposeScope())
        {
            var a = diag(tensor(spectrum, dtype: ScalarType.Float64));
            if (hp.Boolean("rotated"))
            {
                var g = randn(p, p, dtype: ScalarType.Float64, generator: new TorchSharp.torch.Generator((ulong)ctx.DataSeed));
                var (q, _) = linalg.qr(g);
                a = q.matmul(a).matmul(q.T);
                using var two = 2.ToScalar();
                using var one = 1.ToScalar();
                a = a.add(a.T, one).div(two);
            }
            A = a.to(ctx.DType, ctx.Device).MoveToOuterDisposeScope();
            var gen = new TorchSharp.torch.Generator((ulong)ctx.InitSeed);
            using var initScale = hp.Real("init_scale").ToScalar();
            _theta = randn(p, dtype: ScalarType.Float64, generator: gen).mul(initScale)
                .to(ctx.DType, ctx.Device).requires_grad_(true).MoveToOuterDisposeScope();
        }
        A = A.DetachFromDisposeScope();
        _theta = _theta.DetachFromDisposeScope();
        Parameters = [new ModelParameter("theta", _theta, IsLayerWeight: true)];
    }

    /// <summary>The matrix A (p×p).</summary>
    public Tensor A { get; }
    /// <summary>Eigenvalues of A, descending.</summary>
    public IReadOnlyList<double> Spectrum { get; }
    public IReadOnlyList<ModelParameter> Parameters { get; }
    public Dataset Train { get; } = new(null, null, 1);
    public Dataset? Test => null;

    // Explicit, process-lifetime Scalar: a double converted implicitly for a native call can be finalized during it.
    private static readonly Scalar Half = 0.5.ToScalar();

    public Tensor Loss(Dataset batch) => _theta.dot(A.mv(_theta)).mul(Half);
    public double? Accuracy(Dataset batch) => null;

    public void Dispose() { _theta.Dispose(); A.Dispose(); }
}
