using Harness.Abstractions;
using static TorchSharp.torch;

namespace Harness.Plugins.Optimizers;

/// <summary>GD(η): θ ← θ − η g. Threshold 2/η on λ1(H).</summary>
public sealed class GradientDescentPlugin : IOptimizerPlugin
{
    public string Name => "gd";
    public string Description => "Gradient descent: θ ← θ − η g. Threshold 2/η.";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } =
        [Specs.Lr(1e-3), Specs.WeightDecay(), Specs.Decoupled()];

    public IOptimizer Create(IReadOnlyList<Tensor> parameters, HyperparameterValues hp) =>
        new GradientDescent(parameters, hp.Real("lr"), hp.Real("weight_decay"), hp.Boolean("decoupled_weight_decay"));
}

public sealed class GradientDescent(IReadOnlyList<Tensor> parameters, double lr, double weightDecay = 0, bool decoupled = false)
    : MomentumMethod(parameters, lr, MomentumKind.None, 0, weightDecay, decoupled, preconditioned: false);
