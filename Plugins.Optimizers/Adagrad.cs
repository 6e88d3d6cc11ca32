using Harness.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Optimizers;

/// <summary>Adagrad (Duchi et al.), PyTorch semantics: s ← s + g² (s_0 = initial_accumulator_value);
/// θ ← θ − η g/P with P = (1 + (t−1)·lr_decay)(sqrt(s) + ε). Threshold 2/η on λ1(P^-1/2 H P^-1/2).</summary>
public sealed class AdagradPlugin : IOptimizerPlugin
{
    public string Name => "adagrad";
    public IReadOnlyDictionary<string, object> ThresholdCheckSettings => Specs.FrozenCheck;
    public string Description => "Adagrad: θ ← θ − η g/(sqrt(Σ g²) + ε). Threshold 2/η.";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } =
    [
        Specs.Lr(0.01),
        HyperparameterSpec.Real("lr_decay", 0, "η_t = η/(1 + (t−1)·lr_decay), folded into P", min: 0),
        Specs.Eps(1e-10),
        HyperparameterSpec.Real("initial_accumulator_value", 0, "initial value of the sum of squared gradients", min: 0),
        Specs.EpsInsideSqrt(), Specs.WeightDecay(), Specs.Decoupled(), Specs.FreezeAtStep(),
    ];
    public IOptimizer Create(IReadOnlyList<Tensor> parameters, HyperparameterValues hp) => new Adagrad(parameters, hp);
}

public sealed class Adagrad(IReadOnlyList<Tensor> parameters, HyperparameterValues hp)
    : AdaptiveOptimizer(parameters, hp.Real("lr"), hp.Real("weight_decay"), hp.Boolean("decoupled_weight_decay"), hp.Integer("freeze_at_step"))
{
    private readonly double _lrDecay = hp.Real("lr_decay"), _eps = hp.Real("eps"), _initial = hp.Real("initial_accumulator_value");
    private readonly bool _epsInside = hp.Boolean("eps_inside_sqrt");

    public override MomentumKind Momentum => MomentumKind.None;
    public override double MomentumCoefficient => 0;
    protected override IReadOnlyCollection<string> StatisticsBuffers => ["sum"];

    private Tensor Sum(int index)
    {
        bool fresh = !HasBuffer("sum", index);
        var s = Buffer("sum", index);
        if (fresh && _initial != 0) s.fill_(Fixed(_initial));
        return s;
    }

    protected override void Update(int index, Tensor param, Tensor grad, long t) =>
        ApplyDiv(index, param, grad, StepPreconditioner(index, grad, t));

    protected override void UpdateStatistics(int index, Tensor grad, long t) => Sum(index).addcmul_(grad, grad, value: Fixed(1));

    protected override Tensor PreconditionerAt(int index, long t) =>
        Root(Sum(index).clone(), _eps, _epsInside).mul_(PerStep(1 + (t - 1) * _lrDecay));
}
