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
/// (2+2β1)/(η(1−β1)) on λ1(P^-1/2 H P^-1/2), like Adam. With freeze_at_step = k &gt; 0, s stops changing after update k
/// (P_t = P_k is then static: the conformance gate proves the threshold with k = 1, see ThresholdCheckSettings).
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
        HyperparameterSpec.Integer("freeze_at_step", 0, "stop updating the belief s after update k (a static P); 0 = never", min: 0),
    ];

    // An adaptive P follows the gradient, so a quadratic never diverges and the threshold could not be checked: the
    // gate proves it with P frozen after the first update (and no weight decay: the threshold is the loss's).
    public IReadOnlyDictionary<string, object> ThresholdCheckSettings { get; } =
        new Dictionary<string, object> { ["freeze_at_step"] = 1L, ["weight_decay"] = 0.0 };

    public IOptimizer Create(IReadOnlyList<Tensor> parameters, HyperparameterValues hp) =>
        new AdaBelief(parameters, hp.Real("lr"), hp.Real("beta1"), hp.Real("beta2"), hp.Real("eps"), hp.Real("weight_decay"), hp.Integer("freeze_at_step"));
}

/// <summary>The running optimizer. It owns two state tensors per parameter, kept out of every dispose scope.</summary>
public sealed class AdaBelief(IReadOnlyList<Tensor> parameters, double lr, double beta1, double beta2, double eps, double weightDecay,
    long freezeAtStep = 0) : IOptimizer
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
            // Scalars made explicitly (an implicit double → Scalar conversion can be finalized mid-call).
            using var decay = (1 - LearningRate * weightDecay).ToScalar();
            using var b1 = beta1.ToScalar();
            using var oneMinusB1 = (1 - beta1).ToScalar();
            using var b2 = beta2.ToScalar();
            using var oneMinusB2 = (1 - beta2).ToScalar();
            using var e = eps.ToScalar();
            using var step = (-LearningRate).ToScalar();
            bool frozen = freezeAtStep > 0 && t > freezeAtStep;
            for (int i = 0; i < parameters.Count; i++)
            {
                var g = eval.Gradient[i];
                if (weightDecay != 0) parameters[i].mul_(decay);
                _m[i].mul_(b1).add_(g, alpha: oneMinusB1);
                if (!frozen)
                {
                    var belief = g - _m[i];
                    _s[i].mul_(b2).addcmul_(belief, belief, value: oneMinusB2).add_(e);
                }
                parameters[i].addcdiv_(_m[i], PreconditionerOf(i, t), value: step);
            }
        }
        objective.Invalidate();   // the parameters changed
        return new StepResult(eval.Loss);
    }

    /// <summary>P at update t. Frozen after update k = freeze_at_step: P_t = P_k, bias corrections included (a P whose
    /// (1 − β1^t) factor still moved would not be static, and the gate would measure a moving boundary).</summary>
    private Tensor PreconditionerOf(int i, long t)
    {
        long ts = freezeAtStep > 0 ? Math.Min(t, freezeAtStep) : t;
        using var c2 = (1 - Math.Pow(beta2, ts)).ToScalar();
        using var e = eps.ToScalar();
        using var c1 = (1 - Math.Pow(beta1, ts)).ToScalar();
        return (_s[i] / c2).sqrt_().add_(e).mul_(c1);
    }

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
