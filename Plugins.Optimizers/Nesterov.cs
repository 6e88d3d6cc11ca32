using Harness.Abstractions;
using static TorchSharp.torch;

namespace Harness.Plugins.Optimizers;

/// <summary>StandardNesterov(η, β), PyTorch SGD nesterov=True: m ← βm + g; θ ← θ − η(βm + g).
/// Threshold (2+2β)/(η(1+2β)). (Cohen et al.'s Table 1 prints m ← βm + g alone, which is heavy ball.)</summary>
public sealed class NesterovPlugin : IOptimizerPlugin
{
    public string Name => "nesterov";
    public string Description => "Standard Nesterov (PyTorch SGD nesterov=True): m ← βm + g; θ ← θ − η(βm + g). Threshold (2+2β)/(η(1+2β)).";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } =
        [Specs.Lr(1e-3), Specs.Momentum(), Specs.WeightDecay(), Specs.Decoupled()];

    public IOptimizer Create(IReadOnlyList<Tensor> parameters, HyperparameterValues hp) =>
        new Nesterov(parameters, hp.Real("lr"), hp.Real("momentum"), hp.Real("weight_decay"), hp.Boolean("decoupled_weight_decay"));
}

public sealed class Nesterov(IReadOnlyList<Tensor> parameters, double lr, double beta, double weightDecay = 0, bool decoupled = false)
    : MomentumMethod(parameters, lr, MomentumKind.StandardNesterov, beta, weightDecay, decoupled, preconditioned: false);
