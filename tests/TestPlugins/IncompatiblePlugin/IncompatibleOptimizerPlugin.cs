using Harness.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

// Deliberately declares the next contract version, as a plugin built against a newer Harness.Abstractions would.
[assembly: ContractVersion(Contract.Version + 1)]

namespace Harness.TestPlugins.Incompatible;

/// <summary>An otherwise valid optimizer plugin (plain gradient descent) whose assembly declares another
/// contract version. The host must refuse the whole file before it instantiates anything.</summary>
public sealed class IncompatibleOptimizerPlugin : IOptimizerPlugin
{
    public string Name => "incompatible_gd";
    public string Description => "Gradient descent built against contract version Contract.Version + 1 (test plugin).";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } =
    [
        HyperparameterSpec.Real("lr", 0.01, "learning rate η", min: 0, minExclusive: true),
    ];

    public IOptimizer Create(IReadOnlyList<Tensor> parameters, HyperparameterValues hyperparameters) =>
        new IncompatibleGradientDescent(parameters, hyperparameters.Real("lr"));
}

public sealed class IncompatibleGradientDescent(IReadOnlyList<Tensor> parameters, double lr) : IOptimizer
{
    public double LearningRate { get; set; } = lr;
    public IReadOnlyList<Tensor>? Preconditioner => null;
    public MomentumKind Momentum => MomentumKind.None;
    public double MomentumCoefficient => 0;
    public double StabilityThreshold => Harness.Abstractions.StabilityThreshold.For(Momentum, LearningRate, 0);

    public StepResult Step(IObjective objective)
    {
        var eval = objective.Evaluate();
        using (no_grad())
            for (int i = 0; i < parameters.Count; i++)
                parameters[i].add_(eval.Gradient[i], alpha: -LearningRate);
        return new StepResult(eval.Loss);
    }

    public OptimizerState ExportState() => new();
    public void ImportState(OptimizerState state) { }
    public void Dispose() { }
}
