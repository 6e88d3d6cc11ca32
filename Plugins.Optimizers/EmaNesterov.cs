using Harness.Abstractions;
using static TorchSharp.torch;

namespace Harness.Plugins.Optimizers;

/// <summary>EMANesterov(η, β): m ← βm + (1−β)g; θ ← θ − η(βm + (1−β)g). Threshold (2+2β)/(η(1−β)(1+2β)).</summary>
public sealed class EmaNesterovPlugin : IOptimizerPlugin
{
    public string Name => "ema_nesterov";
    public string Description => "EMA Nesterov: m ← βm + (1−β)g; θ ← θ − η(βm + (1−β)g). Threshold (2+2β)/(η(1−β)(1+2β)).";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } =
        [Specs.Lr(1e-3), Specs.Momentum(), Specs.WeightDecay(), Specs.Decoupled()];

    public IOptimizer Create(IReadOnlyList<Tensor> parameters, HyperparameterValues hp) =>
        new EmaNesterov(parameters, hp.Real("lr"), hp.Real("momentum"), hp.Real("weight_decay"), hp.Boolean("decoupled_weight_decay"));
}

public sealed class EmaNesterov(IReadOnlyList<Tensor> parameters, double lr, double beta, double weightDecay = 0, bool decoupled = false)
    : MomentumMethod(parameters, lr, MomentumKind.EmaNesterov, beta, weightDecay, decoupled, preconditioned: false);
