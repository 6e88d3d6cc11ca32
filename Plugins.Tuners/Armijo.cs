using Harness.Abstractions;

namespace Harness.Plugins.Tuners;

/// <summary>
/// Armijo backtracking line search (Roulet et al., appendix C): start from η₀ = min(c₊ η_prev, η_max) (η_max on the first
/// step), multiply by c₋ until f(θ + ηu) ≤ (1+δ) f(θ) + c η gᵀu, at most max_backtracks times. If the cap is reached
/// the last (smallest) η is used and satisfied = 0 is logged. One loss evaluation per trial, on the step's batch.
/// </summary>
public sealed class ArmijoPlugin : ILearningRateTunerPlugin
{
    public string Name => "armijo";
    public string Description => "Armijo backtracking: η₀ = min(c₊ η_prev, η_max), shrink by c₋ until f(θ+ηu) ≤ (1+δ)f + c η gᵀu (capped).";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } =
    [
        HyperparameterSpec.Real("c", 1e-4, "sufficient-decrease constant c", min: 0, max: 1, maxExclusive: true),
        HyperparameterSpec.Real("c_plus", 4, "growth factor c₊ of the initial guess (use a large value, e.g. 1e30, for 'start from η_max')", min: 1),
        HyperparameterSpec.Real("c_minus", 0.8, "shrink factor c₋ per backtrack", min: 0, max: 1, minExclusive: true, maxExclusive: true),
        HyperparameterSpec.Real("delta", 0, "relative slack δ on f(θ)", min: 0),
        HyperparameterSpec.Real("eta_max", 1, "largest initial guess", min: 0, minExclusive: true),
        HyperparameterSpec.Integer("max_backtracks", 30, "hard cap on backtracks per step", min: 0, max: 1000),
    ];
    public IReadOnlyList<MetricSpec> MetricsFor(HyperparameterValues hp) => ArmijoTuner.Metrics;
    public ILearningRateTuner Create(HyperparameterValues hp) =>
        new ArmijoTuner(hp.Real("c"), hp.Real("c_plus"), hp.Real("c_minus"), hp.Real("delta"), hp.Real("eta_max"), (int)hp.Integer("max_backtracks"));
}

public sealed class ArmijoTuner(double c, double cPlus, double cMinus, double delta, double etaMax, int maxBacktracks) : ILearningRateTuner
{
    public static readonly IReadOnlyList<MetricSpec> Metrics =
    [
        TunerMetrics.Eta,
        new("backtracks", "number of shrinks by c₋ at this step") { Type = MetricType.Int64 },
        new("satisfied", "true when the accepted η satisfies the Armijo condition, false when the cap was hit") { Type = MetricType.Boolean },
        new("gtu", "gᵀu (negative for a descent direction)"),
        new("trial_loss", "f(θ + ηu) at the accepted η"),
    ];

    private double? _previous;
    private readonly Dictionary<string, double> _internals = new();
    public IReadOnlyDictionary<string, double> Internals => _internals;

    public double Choose(TunerContext ctx)
    {
        double f = ctx.Evaluation.Loss;
        double gtu = TunerMath.Dot(ctx.Evaluation.Gradient, ctx.Direction);
        double eta = _previous is { } p ? Math.Min(cPlus * p, etaMax) : etaMax;
        int k = 0;
        double trial;
        bool ok;
        while (true)
        {
            trial = ctx.Objective.LossAt(ctx.Direction, eta);
            ok = double.IsFinite(trial) && trial <= (1 + delta) * f + c * eta * gtu;
            if (ok || k >= maxBacktracks) break;
            eta *= cMinus;
            k++;
        }
        _previous = eta;
        _internals["eta"] = eta;
        _internals["backtracks"] = k;
        _internals["satisfied"] = ok ? 1 : 0;
        _internals["gtu"] = gtu;
        _internals["trial_loss"] = trial;
        return eta;
    }

    public void Dispose() { }
}
