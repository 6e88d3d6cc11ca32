using Harness.Abstractions;
using static TorchSharp.torch;

namespace Harness.Plugins.Optimizers;

/// <summary>EMAHB(η, β): m ← βm + (1−β)g; θ ← θ − ηm. Threshold (2+2β)/(η(1−β)).</summary>
public sealed class EmaHeavyBallPlugin : IOptimizerPlugin
{
    public string Name => "ema_heavy_ball";
    public string Description => "EMA heavy ball (Adam's first moment): m ← βm + (1−β)g; θ ← θ − ηm. Threshold (2+2β)/(η(1−β)).";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } =
        [Specs.Lr(1e-3), Specs.Momentum(), Specs.WeightDecay(), Specs.Decoupled()];

    public IOptimizer Create(IReadOnlyList<Tensor> parameters, HyperparameterValues hp) =>
        new EmaHeavyBall(parameters, hp.Real("lr"), hp.Real("momentum"), hp.Real("weight_decay"), hp.Boolean("decoupled_weight_decay"));
}

public sealed class EmaHeavyBall(IReadOnlyList<Tensor> parameters, double lr, double beta, double weightDecay = 0, bool decoupled = false)
    : MomentumMethod(parameters, lr, MomentumKind.Ema, beta, weightDecay, decoupled, preconditioned: false);
