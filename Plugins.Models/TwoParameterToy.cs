using Harness.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Models;

/// <summary>Cattaneo et al.'s toy (Figs. 2–3): E(θ) = ½(y − θ1·θ2·x)² with x = 2, y = 1.5, θ(0) = (2.8, 3.5); the minima
/// form the hyperbola θ1θ2 = y/x = 0.75, and the minimal one-norm minimum is θ1 = θ2 = sqrt(y/x). Closed forms, with
/// r = θ1θ2x − y: ∇E = r·x·(θ2, θ1); ∇²E = [[θ2²x², x(2θ1θ2x − y)], [x(2θ1θ2x − y), θ1²x²]]. The start point is given
/// (init_seed is not used); θ is one tensor of two entries, declared as a layer so per-layer probes can be checked on it.</summary>
public sealed class TwoParameterToyPlugin : IModelPlugin
{
    public string Name => "two_parameter_toy";
    public string Description => "Cattaneo et al.'s toy E = ½(y − θ1θ2x)², x = 2, y = 1.5, θ(0) = (2.8, 3.5).";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } =
    [
        HyperparameterSpec.Real("x", 2.0, "input x"),
        HyperparameterSpec.Real("y", 1.5, "target y"),
        HyperparameterSpec.Real("theta1", 2.8, "initial θ1"),
        HyperparameterSpec.Real("theta2", 3.5, "initial θ2"),
    ];

    public IModel Create(ModelContext context) => new TwoParameterToy(context);
}

public sealed class TwoParameterToy : IModel
{
    private readonly Tensor _theta;

    public TwoParameterToy(ModelContext ctx)
    {
        var hp = ctx.Hyperparameters;
        X = hp.Real("x");
        Y = hp.Real("y");
        var f = new ParameterFactory(ctx);
        _theta = f.FromValues("theta", [hp.Real("theta1"), hp.Real("theta2")], [2], layerWeight: true);
        Parameters = f.Parameters;
    }

    public double X { get; }
    public double Y { get; }
    public IReadOnlyList<ModelParameter> Parameters { get; }
    public Dataset Train { get; } = new(null, null, 1);
    public Dataset? Test => null;

    // Explicit, process-lifetime Scalar: a double converted implicitly for a native call can be finalized during it.
    private static readonly Scalar Half = 0.5.ToScalar(), One = 1.ToScalar(), Two = 2.ToScalar();

    public Tensor Loss(Dataset batch)
    {
        using var x = X.ToScalar();
        using var y = Y.ToScalar();
        var residual = (_theta[0] * _theta[1]).mul(x).negative().add(y, One);   // Y − θ0·θ1·X, as TorchSharp's double − Tensor
        return residual.pow(Two).mul(Half);
    }

    public double? Accuracy(Dataset batch) => null;

    /// <summary>Closed-form gradient at (θ1, θ2).</summary>
    public (double g1, double g2) ExactGradient(double t1, double t2)
    {
        double r = t1 * t2 * X - Y;
        return (r * X * t2, r * X * t1);
    }

    /// <summary>Closed-form Hessian [[h11, h12], [h12, h22]] at (θ1, θ2).</summary>
    public (double h11, double h12, double h22) ExactHessian(double t1, double t2) =>
        (t2 * t2 * X * X, X * (2 * t1 * t2 * X - Y), t1 * t1 * X * X);

    public void Dispose() => _theta.Dispose();
}
