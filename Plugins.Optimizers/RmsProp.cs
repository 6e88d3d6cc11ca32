using Harness.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Optimizers;

/// <summary>RMSProp (Tieleman &amp; Hinton), PyTorch semantics: ν ← β2 ν + (1−β2) g²; P = sqrt(ν̂) + ε (ν̂ = ν, or
/// ν/(1−β2^t) with bias correction; centered: ν̂ − ḡ² with ḡ the EMA of g); θ ← θ − η g/P. With momentum μ
/// (PyTorch): b ← μ b + g/P; θ ← θ − η b, a standard heavy ball on the preconditioned gradient.
/// ν starts at ν0 = initial_square_avg (as Adagrad's initial_accumulator_value); bias correction still divides by 1−β2^t.
/// Threshold 2/η (μ = 0) or (2+2μ)/η on λ1(P^-1/2 H P^-1/2).</summary>
public sealed class RmsPropPlugin : IOptimizerPlugin
{
    public string Name => "rmsprop";
    public IReadOnlyDictionary<string, object> ThresholdCheckSettings => Specs.FrozenCheck;
    public string Description => "RMSProp: θ ← θ − η g/(sqrt(ν) + ε), optional PyTorch momentum and centering. Threshold 2/η ((2+2μ)/η with momentum).";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } =
    [
        Specs.Lr(0.01),
        HyperparameterSpec.Real("beta2", 0.99, "second-moment decay β2 (PyTorch's alpha)", min: 0, max: 1, maxExclusive: true),
        Specs.Eps(1e-8),
        HyperparameterSpec.Real("momentum", 0, "momentum μ of PyTorch's RMSprop (0 = none)", min: 0, max: 1, maxExclusive: true),
        HyperparameterSpec.Boolean("centered", false, "subtract the squared EMA of g from ν (PyTorch centered=True)"),
        HyperparameterSpec.Real("initial_square_avg", 0, "initial second moment ν0 (every entry; PyTorch: 0)", min: 0),
        Specs.BiasCorrection(false), Specs.EpsInsideSqrt(), Specs.WeightDecay(), Specs.Decoupled(), Specs.FreezeAtStep(),
    ];
    public IOptimizer Create(IReadOnlyList<Tensor> parameters, HyperparameterValues hp) => new RmsProp(parameters, hp);
}

public sealed class RmsProp(IReadOnlyList<Tensor> parameters, HyperparameterValues hp)
    : AdaptiveOptimizer(parameters, hp.Real("lr"), hp.Real("weight_decay"), hp.Boolean("decoupled_weight_decay"), hp.Integer("freeze_at_step"))
{
    private readonly double _beta2 = hp.Real("beta2"), _eps = hp.Real("eps"), _momentum = hp.Real("momentum"), _nu0 = hp.Real("initial_square_avg");
    private readonly bool _centered = hp.Boolean("centered"), _biasCorrection = hp.Boolean("bias_correction"), _epsInside = hp.Boolean("eps_inside_sqrt");

    public override MomentumKind Momentum => _momentum > 0 ? MomentumKind.Standard : MomentumKind.None;
    public override double MomentumCoefficient => _momentum;
    protected override IReadOnlyCollection<string> StatisticsBuffers => ["square_avg", "grad_avg", "momentum_buffer"];

    protected override void Update(int index, Tensor param, Tensor grad, long t)
    {
        var p = StepPreconditioner(index, grad, t);
        if (_momentum > 0)
        {
            var b = Buffer("momentum_buffer", index);
            b.mul_(Fixed(_momentum)).addcdiv_(grad, p, One);
            Apply(index, param, b);
        }
        else
            ApplyDiv(index, param, grad, p);
    }

    private Tensor SquareAvg(int index)
    {
        bool fresh = !HasBuffer("square_avg", index);
        var v = Buffer("square_avg", index);
        if (fresh && _nu0 != 0)
        {
            using var nu0 = _nu0.ToScalar();
            v.fill_(nu0);
        }
        return v;
    }

    protected override void UpdateStatistics(int index, Tensor grad, long t)
    {
        SquareAvg(index).mul_(Fixed(_beta2)).addcmul_(grad, grad, value: Fixed(1 - _beta2));
        if (_centered) Buffer("grad_avg", index).mul_(Fixed(_beta2)).add_(grad, alpha: Fixed(1 - _beta2));
    }

    protected override Tensor PreconditionerAt(int index, long t)
    {
        double c2 = _biasCorrection ? 1 - Math.Pow(_beta2, t) : 1;
        var v = SquareAvg(index).div(PerStep(c2));
        if (_centered)
        {
            using var g = Buffer("grad_avg", index).div(PerStep(c2));
            v.addcmul_(g, g, value: Fixed(-1));
        }
        return Root(v, _eps, _epsInside);
    }
}
