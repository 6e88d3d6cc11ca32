using Harness.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

// Every plugin assembly says which contract it was built against; the host refuses other versions.
[assembly: ContractVersion(Contract.Version)]

namespace Examples.AdaBelief;

/// <summary>
/// AdaBelief (Zhuang et al., NeurIPS 2020), without the optional rectification: Adam whose second moment tracks the
/// "belief" (g − m)² instead of g²:
///   m ← β1 m + (1−β1) g;  s ← β2 s + (1−β2)(g − m)² + ε;  θ ← θ − η m̂ / (sqrt(ŝ) + ε).
/// As a preconditioned EMA heavy ball θ ← θ − η P^-1 m with P = (1−β1^t)(sqrt(s/(1−β2^t)) + ε): stability threshold
/// (2+2β1)/(η(1−β1)) on λ1(P^-1/2 H P^-1/2), like Adam.
/// The factory: a public class with a parameterless constructor, found by the host in the plugin folder.
/// </summary>
public sealed class AdaBeliefPlugin : IOptimizerPlugin
{
    public string Name => "adabelief";   // lower_snake_case, unique across the plugin folder
    public string Description => "AdaBelief (no rectification): Adam with the second moment of g − m. Threshold (2+2β1)/(η(1−β1)).";

    // The schema: the host validates matrix values against it and records every resolved value in manifest.json.
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } =
    [
        HyperparameterSpec.Real("lr", 1e-3, "learning rate η", min: 0, minExclusive: true),
        HyperparameterSpec.Real("beta1", 0.9, "first-moment decay β1", min: 0, max: 1, maxExclusive: true),
        HyperparameterSpec.Real("beta2", 0.999, "belief decay β2", min: 0, max: 1, maxExclusive: true),
        HyperparameterSpec.Real("eps", 1e-16, "ε added to the belief and to its root", min: 0),
        HyperparameterSpec.Real("weight_decay", 0, "decoupled weight decay λ: θ ← θ(1 − ηλ)", min: 0),
    ];

    public IOptimizer Create(IReadOnlyList<Tensor> parameters, HyperparameterValues hp) =>
        new AdaBelief(parameters, hp.Real("lr"), hp.Real("beta1"), hp.Real("beta2"), hp.Real("eps"), hp.Real("weight_decay"));
}

/// <summary>The running optimizer. It owns two state tensors per parameter, kept out of every dispose scope.</summary>
public sealed class AdaBelief(IReadOnlyList<Tensor> parameters, double lr, double beta1, double beta2, double eps, double weightDecay) : IOptimizer
{
    private readonly Tensor[] _m = parameters.Select(p => zeros_like(p).DetachFromDisposeScope()).ToArray();
    private readonly Tensor[] _s = parameters.Select(p => zeros_like(p).DetachFromDisposeScope()).ToArray();
    private long _step;

    public double LearningRate { get; set; } = lr;   // the host sets it before every step when a schedule is configured
    public MomentumKind Momentum => MomentumKind.Ema;
    public double MomentumCoefficient => beta1;
    public double StabilityThreshold => Harness.Abstractions.StabilityThreshold.For(Momentum, LearningRate, beta1);

    public StepResult Step(IObjective objective)
    {
        // The gradient comes from the objective (so the host and probes can reuse the same evaluation).
        var eval = objective.Evaluate();
        long t = ++_step;
        using (NewDisposeScope())   // frees the temporaries of this step
        using (no_grad())           // in-place updates of leaf tensors that require grad
        {
            for (int i = 0; i < parameters.Count; i++)
            {
                var g = eval.Gradient[i];
                if (weightDecay != 0) parameters[i].mul_(1 - LearningRate * weightDecay);
                _m[i].mul_(beta1).add_(g, alpha: 1 - beta1);
                var belief = g - _m[i];
                _s[i].mul_(beta2).addcmul_(belief, belief, value: 1 - beta2).add_(eps);
                parameters[i].addcdiv_(_m[i], PreconditionerOf(i, t), value: -LearningRate);
            }
        }
        objective.Invalidate();   // the parameters changed
        return new StepResult(eval.Loss);
    }

    private Tensor PreconditionerOf(int i, long t) =>
        (_s[i] / (1 - Math.Pow(beta2, t))).sqrt_().add_(eps).mul_(1 - Math.Pow(beta1, t));

    /// <summary>P of the most recent update, per parameter tensor (new tensors in the caller's dispose scope).</summary>
    public IReadOnlyList<Tensor>? Preconditioner
    {
        get
        {
            using var _ = no_grad();
            return parameters.Select((_, i) => PreconditionerOf(i, Math.Max(_step, 1))).ToList();
        }
    }

    // State export/import: everything the next step depends on, as float64 arrays (checkpoints, resume, the gate).
    public OptimizerState ExportState() => new()
    {
        Scalars = { ["step"] = _step, ["lr"] = LearningRate },
        Buffers = { ["exp_avg"] = _m.Select(ToArray).ToArray(), ["exp_avg_belief"] = _s.Select(ToArray).ToArray() },
    };

    public void ImportState(OptimizerState state)
    {
        foreach (var name in state.Buffers.Keys.Where(k => k is not ("exp_avg" or "exp_avg_belief")))
            throw new ArgumentException($"AdaBelief has no state buffer '{name}'");
        _step = (long)state.Scalars.GetValueOrDefault("step");
        LearningRate = state.Scalars.GetValueOrDefault("lr", LearningRate);
        foreach (var (name, target) in new[] { ("exp_avg", _m), ("exp_avg_belief", _s) })
        {
            if (!state.Buffers.TryGetValue(name, out var arrays)) { foreach (var x in target) x.zero_(); continue; }
            if (arrays.Length != target.Length) throw new ArgumentException($"'{name}' has {arrays.Length} tensors, expected {target.Length}");
            for (int i = 0; i < target.Length; i++)
            {
                if (arrays[i] is not { } a || a.Length != target[i].numel())
                    throw new ArgumentException($"'{name}'[{i}] is missing or has the wrong size");
                using var src = tensor(a, dtype: ScalarType.Float64);
                using (no_grad()) target[i].copy_(src.view(target[i].shape));
            }
        }
    }

    private static double[]? ToArray(Tensor t)
    {
        using var d = t.detach().to(ScalarType.Float64).cpu().contiguous();
        return d.data<double>().ToArray();
    }

    public void Dispose()
    {
        foreach (var t in _m.Concat(_s)) t.Dispose();
    }
}
