using Harness.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Optimizers;

/// <summary>
/// Nadam (Dozat), PyTorch NAdam semantics: μ_t = β1(1 − ½·0.96^(t·ψ)) (ψ = momentum_decay; with
/// momentum_schedule = false μ_t = β1), Π_t = μ_1⋯μ_t, m ← β1 m + (1−β1) g, ν ← β2 ν + (1−β2) g²,
/// P = sqrt(ν/(1−β2^t)) + ε, θ ← θ − η P^-1 (a_t g + b_t m) with a_t = (1−μ_t)/(1−Π_t), b_t = μ_{t+1}/(1−Π_t μ_{t+1})
/// (without bias correction a_t = 1−μ_t, b_t = μ_{t+1} and P = sqrt(ν) + ε).
/// An EMA Nesterov momentum; its stability threshold on λ1(P^-1/2 H P^-1/2), from the linear recurrence at fixed
/// a, b, is (2+2β1)/(η(a(1+β1) + b(1−β1))), which is (2+2β1)/(η(1−β1)(1+2β1)) when a = 1−β1, b = β1
/// (momentum_schedule = false, bias_correction = false: the EMANesterov + P of docs/science.md §2).
/// </summary>
public sealed class NadamPlugin : IOptimizerPlugin
{
    public string Name => "nadam";
    // The gate proves the threshold of the recurrence at fixed weights a = 1−β1, b = β1 (no schedule, no bias correction).
    public IReadOnlyDictionary<string, object> ThresholdCheckSettings { get; } =
        new Dictionary<string, object>(Specs.FrozenCheck) { ["momentum_schedule"] = false, ["bias_correction"] = false };
    public string Description => "Nadam (PyTorch NAdam): EMA Nesterov momentum preconditioned like Adam. Threshold (2+2β1)/(η(a(1+β1)+b(1−β1))) = (2+2β1)/(η(1−β1)(1+2β1)) at constant μ without bias correction.";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } =
    [
        Specs.Lr(2e-3), Specs.Beta1(), Specs.Beta2(), Specs.Eps(1e-8),
        HyperparameterSpec.Real("momentum_decay", 0.004, "ψ of PyTorch's momentum schedule μ_t = β1(1 − ½·0.96^(t·ψ))", min: 0),
        HyperparameterSpec.Boolean("momentum_schedule", true, "use PyTorch's μ_t schedule; false: μ_t = β1 (Dozat's constant-momentum Nadam)"),
        Specs.BiasCorrection(true), Specs.EpsInsideSqrt(), Specs.WeightDecay(), Specs.Decoupled(), Specs.FreezeAtStep(),
    ];
    public IOptimizer Create(IReadOnlyList<Tensor> parameters, HyperparameterValues hp) => new Nadam(parameters, hp);
}

public sealed class Nadam(IReadOnlyList<Tensor> parameters, HyperparameterValues hp)
    : AdaptiveOptimizer(parameters, hp.Real("lr"), hp.Real("weight_decay"), hp.Boolean("decoupled_weight_decay"), hp.Integer("freeze_at_step"))
{
    private readonly double _beta1 = hp.Real("beta1"), _beta2 = hp.Real("beta2"), _eps = hp.Real("eps"), _psi = hp.Real("momentum_decay");
    private readonly bool _schedule = hp.Boolean("momentum_schedule"), _biasCorrection = hp.Boolean("bias_correction"), _epsInside = hp.Boolean("eps_inside_sqrt");
    /// <summary>Π_t = μ_1⋯μ_t after t completed steps (kept as a running product, like PyTorch).</summary>
    private double _muProduct = 1;
    private double _a, _b;

    public override MomentumKind Momentum => MomentumKind.EmaNesterov;
    public override double MomentumCoefficient => _beta1;
    protected override IReadOnlyCollection<string> StatisticsBuffers => ["exp_avg", "exp_avg_sq"];

    private double Mu(long t) => _schedule ? _beta1 * (1 - 0.5 * Math.Pow(0.96, t * _psi)) : _beta1;

    /// <summary>a_t and b_t of update t given Π_t.</summary>
    private (double a, double b) Coefficients(long t, double muProduct)
    {
        double mu = Mu(t), muNext = Mu(t + 1);
        return _biasCorrection
            ? ((1 - mu) / (1 - muProduct), muNext / (1 - muProduct * muNext))
            : (1 - mu, muNext);
    }

    protected override void BeginStep(long t)
    {
        _muProduct *= Mu(t);
        (_a, _b) = Coefficients(t, _muProduct);
    }

    protected override void Update(int index, Tensor param, Tensor grad, long t)
    {
        var m = Buffer("exp_avg", index);
        m.mul_(Fixed(_beta1)).add_(grad, alpha: Fixed(1 - _beta1));
        var p = StepPreconditioner(index, grad, t);
        ApplyDiv(index, param, grad, p, _a);
        ApplyDiv(index, param, m, p, _b);
    }

    protected override void UpdateStatistics(int index, Tensor grad, long t) =>
        Buffer("exp_avg_sq", index).mul_(Fixed(_beta2)).addcmul_(grad, grad, value: Fixed(1 - _beta2));

    protected override Tensor PreconditionerAt(int index, long t)
    {
        double c2 = _biasCorrection ? 1 - Math.Pow(_beta2, t) : 1;
        return Root(Buffer("exp_avg_sq", index).div(PerStep(c2)), _eps, _epsInside);
    }

    /// <summary>(2+2β1)/(η(a(1+β1) + b(1−β1))) with a, b of the most recent update (of update 1 before any).</summary>
    public override double StabilityThreshold
    {
        get
        {
            var (a, b) = StepCount == 0 ? Coefficients(1, Mu(1)) : Coefficients(StepCount, _muProduct);
            return (2 + 2 * _beta1) / (LearningRate * (a * (1 + _beta1) + b * (1 - _beta1)));
        }
    }

    protected override void ExportScalars(Dictionary<string, double> scalars) => scalars["mu_product"] = _muProduct;
    protected override void ImportScalars(IReadOnlyDictionary<string, double> scalars) =>
        _muProduct = scalars.TryGetValue("mu_product", out var p) ? p : 1;
}
