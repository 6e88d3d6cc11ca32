using Harness.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

// Every plugin assembly says which contract it was compiled against; the host refuses other versions.
[assembly: ContractVersion(Contract.Version)]

namespace MinimalOptimizer;

/// <summary>The factory the host discovers: a public class with a parameterless constructor.</summary>
public sealed class WeightDecayGdPlugin : IOptimizerPlugin
{
    public string Name => "gd_weight_decay";
    public string Description => "Gradient descent with L2 weight decay: θ ← θ − η (g + λθ).";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } =
    [
        HyperparameterSpec.Real("lr", 0.01, "learning rate η", min: 0, minExclusive: true),
        HyperparameterSpec.Real("weight_decay", 1e-4, "L2 coefficient λ", min: 0),
    ];

    public IOptimizer Create(IReadOnlyList<Tensor> parameters, HyperparameterValues hp) =>
        new WeightDecayGd(parameters, hp.Real("lr"), hp.Real("weight_decay"));
}

public sealed class WeightDecayGd(IReadOnlyList<Tensor> parameters, double lr, double weightDecay) : IOptimizer
{
    private long _steps;

    public double LearningRate { get; set; } = lr;
    public IReadOnlyList<Tensor>? Preconditioner => null;
    public MomentumKind Momentum => MomentumKind.None;
    public double MomentumCoefficient => 0;
    // The update is GD on f + (λ/2)‖θ‖², whose Hessian is H + λI: stable while λ1(H) + λ < 2/η.
    public double StabilityThreshold => 2 / LearningRate - weightDecay;

    public StepResult Step(IObjective objective)
    {
        var eval = objective.Evaluate();
        using (no_grad())
            for (int i = 0; i < parameters.Count; i++)
                parameters[i].add_(eval.Gradient[i] + weightDecay * parameters[i], alpha: -LearningRate);
        objective.Invalidate();
        _steps++;
        return new StepResult(eval.Loss);
    }

    public OptimizerState ExportState() => new() { Scalars = { ["step"] = _steps, ["lr"] = LearningRate } };

    public void ImportState(OptimizerState state)
    {
        _steps = (long)state.Scalars.GetValueOrDefault("step");
        LearningRate = state.Scalars.GetValueOrDefault("lr", LearningRate);
    }

    public void Dispose() { }
}
