using Harness.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

// Every plugin assembly says which contract it was compiled against; the host refuses other versions.
[assembly: ContractVersion(Contract.Version)]

namespace MyOptimizer;

/// <summary>The factory the host discovers: a public class with a public parameterless constructor.</summary>
public sealed class MyOptimizerPlugin : IOptimizerPlugin
{
    // The name matrix files use: lower_snake_case, unique in the plugin folder.
    public string Name => "myoptimizer";
    public string Description => "SGD with dampened momentum: m ← βm + (1−τ)g; θ ← θ − ηm.";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } =
    [
        HyperparameterSpec.Real("lr", 0.01, "learning rate η", min: 0, minExclusive: true),
        HyperparameterSpec.Real("momentum", 0.9, "momentum β", min: 0, max: 1, maxExclusive: true),
        HyperparameterSpec.Real("dampening", 0.5, "dampening τ", min: 0, max: 1, maxExclusive: true),
    ];

    public IOptimizer Create(IReadOnlyList<Tensor> parameters, HyperparameterValues hp) =>
        new MyOptimizer(parameters, hp.Real("lr"), hp.Real("momentum"), hp.Real("dampening"));
}

public sealed class MyOptimizer(IReadOnlyList<Tensor> parameters, double lr, double beta, double dampening) : IOptimizer
{
    private readonly Tensor?[] _momentum = new Tensor?[parameters.Count];
    private long _steps;

    public double LearningRate { get; set; } = lr;
    public IReadOnlyList<Tensor>? Preconditioner => null;
    public MomentumKind Momentum => MomentumKind.Other;
    public double MomentumCoefficient => beta;

    // The threshold: the update's linear recurrence on one eigen-direction of a quadratic, as a matrix of x = η·λ in
    // the state (θ, η·m). The host computes the smallest λ at which it diverges; the gate checks that by running.
    public ThresholdRule ThresholdRule => ThresholdRule.LinearRecurrence;
    public double[,]? UpdateMatrix(double x) => new[,]
    {
        { 1 - (1 - dampening) * x, -beta },
        { (1 - dampening) * x, beta },
    };
    public double StabilityThreshold => LinearRecurrence.Threshold(this);

    public StepResult Step(IObjective objective)
    {
        var eval = objective.Evaluate();
        using (NewDisposeScope())
        using (no_grad())
        {
            using var b = beta.ToScalar();
            using var keep = (1 - dampening).ToScalar();
            using var step = (-LearningRate).ToScalar();
            for (int i = 0; i < parameters.Count; i++)
            {
                var m = _momentum[i] ??= zeros_like(parameters[i]).DetachFromDisposeScope();
                m.mul_(b).add_(eval.Gradient[i], alpha: keep);
                parameters[i].add_(m, alpha: step);
            }
        }
        _steps++;
        objective.Invalidate();
        return new StepResult(eval.Loss);
    }

    // Everything the next step depends on, as float64 arrays: the gate resumes a run from it and compares bits.
    public OptimizerState ExportState() => new()
    {
        Scalars = { ["step"] = _steps, ["lr"] = LearningRate },
        Buffers = { ["momentum"] = _momentum.Select(ToDoubles).ToArray() },
    };

    public void ImportState(OptimizerState state)
    {
        foreach (var name in state.Buffers.Keys)
            if (name != "momentum") throw new ArgumentException($"MyOptimizer has no state buffer '{name}'");
        _steps = (long)state.Scalars.GetValueOrDefault("step");
        LearningRate = state.Scalars.GetValueOrDefault("lr", LearningRate);
        DisposeMomentum();
        if (!state.Buffers.TryGetValue("momentum", out var buffers)) return;
        for (int i = 0; i < parameters.Count; i++)
        {
            if (buffers[i] is not { } a) continue;
            using var scope = NewDisposeScope();
            _momentum[i] = tensor(a, dtype: ScalarType.Float64).to(parameters[i].dtype, parameters[i].device)
                .view(parameters[i].shape).clone().DetachFromDisposeScope();
        }
    }

    private static double[]? ToDoubles(Tensor? t)
    {
        if (t is null) return null;
        using var d = t.detach().to(ScalarType.Float64).cpu().contiguous();
        return d.data<double>().ToArray();
    }

    private void DisposeMomentum()
    {
        for (int i = 0; i < _momentum.Length; i++) { _momentum[i]?.Dispose(); _momentum[i] = null; }
    }

    public void Dispose() => DisposeMomentum();
}
