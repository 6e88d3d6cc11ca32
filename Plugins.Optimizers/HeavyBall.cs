using Harness.Abstractions;
using static TorchSharp.torch;

namespace Harness.Plugins.Optimizers;

/// <summary>StandardHB(η, β), PyTorch SGD momentum with dampening 0: m ← βm + g; θ ← θ − ηm. Threshold (2+2β)/η.</summary>
public sealed class HeavyBallPlugin : IOptimizerPlugin
{
    public string Name => "heavy_ball";
    public string Description => "Standard heavy ball (PyTorch SGD momentum): m ← βm + g; θ ← θ − ηm. Threshold (2+2β)/η.";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } =
        [Specs.Lr(1e-3), Specs.Momentum(), Specs.WeightDecay(), Specs.Decoupled()];

    public IOptimizer Create(IReadOnlyList<Tensor> parameters, HyperparameterValues hp) =>
        new HeavyBall(parameters, hp.Real("lr"), hp.Real("momentum"), hp.Real("weight_decay"), hp.Boolean("decoupled_weight_decay"));
}

public sealed class HeavyBall(IReadOnlyList<Tensor> parameters, double lr, double beta, double weightDecay = 0, bool decoupled = false)
    : MomentumMethod(parameters, lr, MomentumKind.Standard, beta, weightDecay, decoupled, preconditioned: false);
