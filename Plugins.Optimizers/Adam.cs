using Harness.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Optimizers;

/// <summary>Adam (PyTorch semantics by default): m ← β1 m + (1−β1) g; v ← β2 v + (1−β2) g²;
/// θ ← θ − η m̂ / (sqrt(v̂) + ε) with m̂, v̂ bias-corrected (option), ε outside the root (option: inside).
/// As a preconditioned EMA heavy ball, θ ← θ − η P^-1 m with P = (1−β1^t)(sqrt(v/(1−β2^t)) + ε) (SPEC §2;
/// paper 000's eq. (2) prints the β1 factor inverted). Threshold (2+2β1)/(η(1−β1)) on λ1(P^-1/2 H P^-1/2).</summary>
public sealed class AdamPlugin : IOptimizerPlugin
{
    public string Name => "adam";
    public string Description => "Adam with optional bias correction and ε inside or outside the square root.";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } =
    [
        HyperparameterSpec.Real("lr", 0.001, "learning rate η", min: 0, minExclusive: true),
        HyperparameterSpec.Real("beta1", 0.9, "first-moment decay β1", min: 0, max: 1, maxExclusive: true),
        HyperparameterSpec.Real("beta2", 0.999, "second-moment decay β2", min: 0, max: 1, maxExclusive: true),
        HyperparameterSpec.Real("eps", 1e-8, "ε added to the root (or inside it)", min: 0),
        HyperparameterSpec.Boolean("bias_correction", true, "divide the moments by (1−β^t)"),
        HyperparameterSpec.Boolean("eps_inside_sqrt", false, "use sqrt(v̂ + ε) (papers 001/002) instead of sqrt(v̂) + ε"),
    ];

    public IOptimizer Create(IReadOnlyList<Tensor> parameters, HyperparameterValues hp) =>
        new Adam(parameters, hp.Real("lr"), hp.Real("beta1"), hp.Real("beta2"), hp.Real("eps"),
                 hp.Boolean("bias_correction"), hp.Boolean("eps_inside_sqrt"));
}

public sealed class Adam(IReadOnlyList<Tensor> parameters, double lr, double beta1, double beta2, double eps,
    bool biasCorrection, bool epsInsideSqrt) : OptimizerBase(parameters, lr)
{
    public override MomentumKind Momentum => MomentumKind.Ema;
    public override double MomentumCoefficient => beta1;

    protected override void Update(int index, Tensor param, Tensor grad, long t)
    {
        var m = Buffer("exp_avg", index);
        var v = Buffer("exp_avg_sq", index);
        m.mul_(beta1).add_(grad, alpha: 1 - beta1);
        v.mul_(beta2).addcmul_(grad, grad, value: 1 - beta2);
        using var p = PreconditionerOf(v, t);
        param.addcdiv_(m, p, value: -LearningRate);
    }

    /// <summary>P at step t: the update is exactly θ ← θ − η m / P.</summary>
    private Tensor PreconditionerOf(Tensor v, long t)
    {
        double c1 = biasCorrection ? 1 - Math.Pow(beta1, t) : 1;
        double c2 = biasCorrection ? 1 - Math.Pow(beta2, t) : 1;
        var vhat = v / c2;
        var root = epsInsideSqrt ? (vhat + eps).sqrt_() : vhat.sqrt_().add_(eps);
        return root.mul_(c1);
    }

    public override IReadOnlyList<Tensor>? Preconditioner
    {
        get
        {
            long t = Math.Max(StepCount, 1);
            return Params.Select((p, i) => PreconditionerOf(Buffer("exp_avg_sq", i), t)).ToList();
        }
    }
}
