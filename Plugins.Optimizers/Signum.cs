using Harness.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Optimizers;

/// <summary>Signum(η, β) (Bernstein et al. 2018): m ← βm + (1−β)g; θ ← θ − η sign(m); signSGD at β = 0. Sign-based:
/// no linear stability threshold (<see cref="ThresholdRule.None"/>).</summary>
public sealed class SignumPlugin : IOptimizerPlugin
{
    public string Name => "signum";
    public string Description => "Signum: m ← βm + (1−β)g; θ ← θ − η sign(m) (signSGD at β = 0). Sign-based: no linear stability threshold.";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } =
        [Specs.Lr(1e-3), Specs.Momentum(0.9), Specs.WeightDecay(), Specs.Decoupled()];

    public IOptimizer Create(IReadOnlyList<Tensor> parameters, HyperparameterValues hp) =>
        new Signum(parameters, hp.Real("lr"), hp.Real("momentum"), hp.Real("weight_decay"), hp.Boolean("decoupled_weight_decay"));
}

public sealed class Signum(IReadOnlyList<Tensor> parameters, double lr, double beta, double weightDecay = 0, bool decoupled = false)
    : OptimizerBase(parameters, lr, weightDecay, decoupled)
{
    private const string MomentumBuffer = "momentum";
    private static readonly string[] Names = [MomentumBuffer];

    /// <summary>The buffer is Adam's first moment; the step is its sign, so the kind does not give a threshold.</summary>
    public override MomentumKind Momentum => beta > 0 ? MomentumKind.Ema : MomentumKind.None;
    public override double MomentumCoefficient => beta;
    public override ThresholdRule ThresholdRule => ThresholdRule.None;
    public override double StabilityThreshold => double.NaN;
    protected override IReadOnlyCollection<string> BufferNames => Names;

    protected override void Update(int index, Tensor param, Tensor grad, long t)
    {
        using var b = beta.ToScalar();
        using var oneMinusB = (1 - beta).ToScalar();
        var m = Buffer(MomentumBuffer, index).mul_(b).add_(grad, alpha: oneMinusB);
        using var s = m.sign();
        Apply(index, param, s);
    }
}
