using Harness.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Optimizers;

/// <summary>QHM(η, β, ν), quasi-hyperbolic momentum (Ma &amp; Yarats 2019): m ← βm + (1−β)g; θ ← θ − η((1−ν)g + νm).
/// Not one of the five momentum kinds: its threshold comes from its declared recurrence, computed numerically.</summary>
public sealed class QhmPlugin : IOptimizerPlugin
{
    public string Name => "qhm";
    public string Description => "Quasi-hyperbolic momentum: m ← βm + (1−β)g; θ ← θ − η((1−ν)g + νm). Threshold from its linear recurrence (numerical).";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } =
    [
        Specs.Lr(1e-3), Specs.Momentum(0.999),
        HyperparameterSpec.Real("nu", 0.7, "immediate discount ν: weight of the momentum buffer in the step (ν = 1: EMA heavy ball, ν = 0: GD)", min: 0, max: 1),
        Specs.WeightDecay(), Specs.Decoupled(),
    ];

    public IOptimizer Create(IReadOnlyList<Tensor> parameters, HyperparameterValues hp) =>
        new Qhm(parameters, hp.Real("lr"), hp.Real("momentum"), hp.Real("nu"), hp.Real("weight_decay"), hp.Boolean("decoupled_weight_decay"));
}

public sealed class Qhm(IReadOnlyList<Tensor> parameters, double lr, double beta, double nu, double weightDecay = 0, bool decoupled = false)
    : OptimizerBase(parameters, lr, weightDecay, decoupled)
{
    private const string MomentumBuffer = "momentum";
    private static readonly string[] Names = [MomentumBuffer];

    public override MomentumKind Momentum => MomentumKind.Other;
    public override double MomentumCoefficient => beta;
    public override ThresholdRule ThresholdRule => ThresholdRule.LinearRecurrence;
    public override double StabilityThreshold => LinearRecurrence.Threshold(this);
    protected override IReadOnlyCollection<string> BufferNames => Names;

    /// <summary>State (θ, η·m): η·m' = β·ηm + (1−β)xθ; θ' = θ − (1−ν)xθ − ν·ηm' = (1 − x(1−νβ))θ − νβ·ηm.</summary>
    public override double[,] UpdateMatrix(double x) => new[,]
    {
        { 1 - x * (1 - nu * beta), -nu * beta },
        { x * (1 - beta), beta },
    };

    protected override void Update(int index, Tensor param, Tensor grad, long t)
    {
        using var b = beta.ToScalar();
        using var oneMinusB = (1 - beta).ToScalar();
        using var n = nu.ToScalar();
        using var oneMinusN = (1 - nu).ToScalar();
        var m = Buffer(MomentumBuffer, index).mul_(b).add_(grad, alpha: oneMinusB);
        using var d = grad.mul(oneMinusN).add_(m, alpha: n);
        Apply(index, param, d);
    }
}
