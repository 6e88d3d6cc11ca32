using Harness.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Optimizers;

/// <summary>Plain gradient descent θ ← θ − η g. Threshold 2/η on λ1(H).</summary>
public sealed class GradientDescentPlugin : IOptimizerPlugin
{
    public string Name => "gd";
    public string Description => "Gradient descent: θ ← θ − η g.";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } =
    [
        HyperparameterSpec.Real("lr", 0.01, "learning rate η", min: 0, minExclusive: true),
    ];

    public IOptimizer Create(IReadOnlyList<Tensor> parameters, HyperparameterValues hp) =>
        new GradientDescent(parameters, hp.Real("lr"));
}

public sealed class GradientDescent(IReadOnlyList<Tensor> parameters, double lr) : OptimizerBase(parameters, lr)
{
    public override MomentumKind Momentum => MomentumKind.None;
    public override double MomentumCoefficient => 0;

    protected override void Update(int index, Tensor param, Tensor grad, long t) =>
        param.add_(grad, alpha: -LearningRate);
}
