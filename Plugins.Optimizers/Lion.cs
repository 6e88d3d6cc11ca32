using Harness.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Optimizers;

/// <summary>Lion(η, β1, β2) (Chen et al. 2023): c ← β1m + (1−β1)g; θ ← θ − η sign(c); m ← β2m + (1−β2)g, weight decay
/// decoupled by default. The step has size η in every coordinate whatever the curvature: no linear stability
/// threshold (<see cref="ThresholdRule.None"/>), so its threshold and edge-ratio columns are null.</summary>
public sealed class LionPlugin : IOptimizerPlugin
{
    public string Name => "lion";
    public string Description => "Lion: c ← β1m + (1−β1)g; θ ← θ − η sign(c); m ← β2m + (1−β2)g. Sign-based: no linear stability threshold.";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } =
    [
        Specs.Lr(1e-4), Specs.Beta1(0.9), Specs.Beta2(0.99), Specs.WeightDecay(), Specs.Decoupled(true),
    ];

    public IOptimizer Create(IReadOnlyList<Tensor> parameters, HyperparameterValues hp) =>
        new Lion(parameters, hp.Real("lr"), hp.Real("beta1"), hp.Real("beta2"), hp.Real("weight_decay"), hp.Boolean("decoupled_weight_decay"));
}

public sealed class Lion(IReadOnlyList<Tensor> parameters, double lr, double beta1, double beta2, double weightDecay = 0, bool decoupled = true)
    : OptimizerBase(parameters, lr, weightDecay, decoupled)
{
    private const string MomentumBuffer = "momentum";
    private static readonly string[] Names = [MomentumBuffer];

    /// <summary>Lion's buffer is an EMA with β2, but the step interpolates with β1: not one of the five kinds.</summary>
    public override MomentumKind Momentum => MomentumKind.Other;
    public override double MomentumCoefficient => beta2;
    public override ThresholdRule ThresholdRule => ThresholdRule.None;
    public override double StabilityThreshold => double.NaN;
    protected override IReadOnlyCollection<string> BufferNames => Names;

    protected override void Update(int index, Tensor param, Tensor grad, long t)
    {
        using var b1 = beta1.ToScalar();
        using var oneMinusB1 = (1 - beta1).ToScalar();
        using var b2 = beta2.ToScalar();
        using var oneMinusB2 = (1 - beta2).ToScalar();
        var m = Buffer(MomentumBuffer, index);
        using var c = m.mul(b1).add_(grad, alpha: oneMinusB1);
        using var s = c.sign();
        Apply(index, param, s);
        m.mul_(b2).add_(grad, alpha: oneMinusB2);
    }
}
