using Harness.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Optimizers;

/// <summary>
/// Adam, AdamW, AMSGrad and Padam (PyTorch semantics): m ← β1 m + (1−β1) g; ν ← β2 ν + (1−β2) g²
/// (AMSGrad: ν_max ← max(ν_max, ν) and ν_max replaces ν below); θ ← θ − η P^-1 m with
/// P = c1 (root(ν/c2) + ε), root = square root (Padam: power <c>partial</c>), c1 = 1 − β1^t and c2 = 1 − β2^t with
/// bias correction, else 1 (docs/science.md §2; Cohen et al.'s eq. (2) prints the β1 factor inverted). ε inside the root is an
/// option. An EMA heavy ball preconditioned by P: threshold (2+2β1)/(η(1−β1)) on λ1(P^-1/2 H P^-1/2).
/// </summary>
public abstract class AdamFamily : AdaptiveOptimizer
{
    private readonly double _beta1, _beta2, _eps, _exponent;
    private readonly bool _biasCorrection, _epsInside, _amsgrad;

    protected AdamFamily(IReadOnlyList<Tensor> parameters, HyperparameterValues hp, bool amsgrad, double exponent)
        : base(parameters, hp.Real("lr"), hp.Real("weight_decay"), hp.Boolean("decoupled_weight_decay"), hp.Integer("freeze_at_step"))
    {
        _beta1 = hp.Real("beta1");
        _beta2 = hp.Real("beta2");
        _eps = hp.Real("eps");
        _biasCorrection = hp.Boolean("bias_correction");
        _epsInside = hp.Boolean("eps_inside_sqrt");
        _amsgrad = amsgrad;
        _exponent = exponent;
    }

    /// <summary>The schema every member shares (defaults of PyTorch's Adam).</summary>
    internal static List<HyperparameterSpec> Schema(double weightDecay = 0, bool decoupled = false) =>
    [
        Specs.Lr(1e-3), Specs.Beta1(), Specs.Beta2(), Specs.Eps(1e-8), Specs.BiasCorrection(true), Specs.EpsInsideSqrt(),
        Specs.WeightDecay(weightDecay), Specs.Decoupled(decoupled), Specs.FreezeAtStep(),
    ];

    public override MomentumKind Momentum => MomentumKind.Ema;
    public override double MomentumCoefficient => _beta1;
    protected override IReadOnlyCollection<string> StatisticsBuffers => _amsgrad ? ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"] : ["exp_avg", "exp_avg_sq"];

    protected override void Update(int index, Tensor param, Tensor grad, long t)
    {
        var m = Buffer("exp_avg", index);
        m.mul_(Fixed(_beta1)).add_(grad, alpha: Fixed(1 - _beta1));
        var p = StepPreconditioner(index, grad, t);
        ApplyDiv(index, param, m, p);
    }

    protected override void UpdateStatistics(int index, Tensor grad, long t)
    {
        var v = Buffer("exp_avg_sq", index);
        v.mul_(Fixed(_beta2)).addcmul_(grad, grad, value: Fixed(1 - _beta2));
        if (_amsgrad)
        {
            var vmax = Buffer("max_exp_avg_sq", index);
            vmax.copy_(maximum(vmax, v));
        }
    }

    protected override Tensor PreconditionerAt(int index, long t)
    {
        double c1 = _biasCorrection ? 1 - Math.Pow(_beta1, t) : 1;
        double c2 = _biasCorrection ? 1 - Math.Pow(_beta2, t) : 1;
        var v = Buffer(_amsgrad ? "max_exp_avg_sq" : "exp_avg_sq", index);
        return Root(v.div(PerStep(c2)), _eps, _epsInside, _exponent).mul_(PerStep(c1));
    }
}

/// <summary>Adam (Kingma &amp; Ba), PyTorch defaults.</summary>
public sealed class AdamPlugin : IOptimizerPlugin
{
    public string Name => "adam";
    public IReadOnlyDictionary<string, object> ThresholdCheckSettings => Specs.FrozenCheck;
    public string Description => "Adam: EMA momentum preconditioned by P = c1(sqrt(ν/c2) + ε). Threshold (2+2β1)/(η(1−β1)) = 38/η at β1 = 0.9.";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } = AdamFamily.Schema();
    public IOptimizer Create(IReadOnlyList<Tensor> parameters, HyperparameterValues hp) => new Adam(parameters, hp);
}

public sealed class Adam(IReadOnlyList<Tensor> parameters, HyperparameterValues hp) : AdamFamily(parameters, hp, amsgrad: false, exponent: 0.5);

/// <summary>AdamW (Loshchilov &amp; Hutter): Adam with decoupled weight decay, PyTorch defaults (λ = 0.01).</summary>
public sealed class AdamWPlugin : IOptimizerPlugin
{
    public string Name => "adamw";
    public IReadOnlyDictionary<string, object> ThresholdCheckSettings => Specs.FrozenCheck;
    public string Description => "AdamW: Adam with decoupled weight decay θ ← θ(1 − ηλ). Threshold (2+2β1)/(η(1−β1)).";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } = AdamFamily.Schema(weightDecay: 0.01, decoupled: true);
    public IOptimizer Create(IReadOnlyList<Tensor> parameters, HyperparameterValues hp) => new AdamW(parameters, hp);
}

public sealed class AdamW(IReadOnlyList<Tensor> parameters, HyperparameterValues hp) : AdamFamily(parameters, hp, amsgrad: false, exponent: 0.5);

/// <summary>AMSGrad (Reddi et al.), PyTorch Adam(amsgrad=True): P from the running maximum of ν.</summary>
public sealed class AmsGradPlugin : IOptimizerPlugin
{
    public string Name => "amsgrad";
    public IReadOnlyDictionary<string, object> ThresholdCheckSettings => Specs.FrozenCheck;
    public string Description => "AMSGrad: Adam with P from ν_max = max over steps of ν (entrywise non-decreasing). Threshold (2+2β1)/(η(1−β1)).";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } = AdamFamily.Schema();
    public IOptimizer Create(IReadOnlyList<Tensor> parameters, HyperparameterValues hp) => new AmsGrad(parameters, hp);
}

public sealed class AmsGrad(IReadOnlyList<Tensor> parameters, HyperparameterValues hp) : AdamFamily(parameters, hp, amsgrad: true, exponent: 0.5);

/// <summary>Padam (Chen &amp; Gu): partially adaptive, P = c1((ν/c2)^p + ε) with p = <c>partial</c> (0.25 as in Cohen et al.;
/// 0.5 is Adam). No PyTorch version exists; other defaults are Adam's. <c>amsgrad</c> = true gives Chen &amp; Gu's
/// original (ν_max).</summary>
public sealed class PadamPlugin : IOptimizerPlugin
{
    public string Name => "padam";
    public IReadOnlyDictionary<string, object> ThresholdCheckSettings => Specs.FrozenCheck;
    public string Description => "Padam: Adam with P = c1((ν/c2)^p + ε), p = partial (0.25). Threshold (2+2β1)/(η(1−β1)).";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } =
    [
        .. AdamFamily.Schema(),
        HyperparameterSpec.Real("partial", 0.25, "exponent p of ν in P (0.5 = Adam)", min: 0, max: 0.5, minExclusive: true),
        HyperparameterSpec.Boolean("amsgrad", false, "use ν_max = max over steps of ν (Chen & Gu's original)"),
    ];
    public IOptimizer Create(IReadOnlyList<Tensor> parameters, HyperparameterValues hp) => new Padam(parameters, hp);
}

public sealed class Padam(IReadOnlyList<Tensor> parameters, HyperparameterValues hp)
    : AdamFamily(parameters, hp, amsgrad: hp.Boolean("amsgrad"), exponent: hp.Real("partial"));
