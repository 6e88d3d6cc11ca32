using Harness.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Optimizers;

/// <summary>Standard heavy-ball momentum with PyTorch SGD semantics (dampening 0, no Nesterov):
/// m ← βm + g; θ ← θ − ηm. Threshold (2+2β)/η on λ1(H).</summary>
public sealed class HeavyBallPlugin : IOptimizerPlugin
{
    public string Name => "heavy_ball";
    public string Description => "Heavy-ball momentum, PyTorch SGD semantics: m ← βm + g; θ ← θ − ηm.";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } =
    [
        HyperparameterSpec.Real("lr", 0.01, "learning rate η", min: 0, minExclusive: true),
        HyperparameterSpec.Real("momentum", 0.9, "momentum coefficient β", min: 0, max: 1, maxExclusive: true),
    ];

    public IOptimizer Create(IReadOnlyList<Tensor> parameters, HyperparameterValues hp) =>
        new HeavyBall(parameters, hp.Real("lr"), hp.Real("momentum"));
}

public sealed class HeavyBall(IReadOnlyList<Tensor> parameters, double lr, double beta) : OptimizerBase(parameters, lr)
{
    public override MomentumKind Momentum => MomentumKind.Standard;
    public override double MomentumCoefficient => beta;

    protected override void Update(int index, Tensor param, Tensor grad, long t)
    {
        var m = Buffer("momentum", index);
        m.mul_(beta).add_(grad);
        param.add_(m, alpha: -LearningRate);
    }
}
