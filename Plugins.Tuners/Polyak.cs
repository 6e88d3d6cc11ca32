using Harness.Abstractions;

namespace Harness.Plugins.Tuners;

/// <summary>
/// Polyak step size (Roulet et al., eq. 14) along the base direction: η = min((f − f*)/(−gᵀu), η_max); for GD (u = −g)
/// this is the paper's min((f − f*)/‖g‖², η_max). η = 0 when f ≤ f* or u is not a descent direction (−gᵀu ≤ 0).
/// </summary>
public sealed class PolyakPlugin : ILearningRateTunerPlugin
{
    public string Name => "polyak";
    public string Description => "Polyak: η = min((f − f*)/(−gᵀu), η_max); for GD the classical (f − f*)/‖g‖².";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } =
    [
        HyperparameterSpec.Real("f_star", 0, "estimate f* of the minimum of the objective"),
        HyperparameterSpec.Real("eta_max", 1, "largest learning rate", min: 0, minExclusive: true),
    ];
    public IReadOnlyList<MetricSpec> MetricsFor(HyperparameterValues hp) => PolyakTuner.Metrics;
    public ILearningRateTuner Create(HyperparameterValues hp) => new PolyakTuner(hp.Real("f_star"), hp.Real("eta_max"));
}

public sealed class PolyakTuner(double fStar, double etaMax) : ILearningRateTuner
{
    public static readonly IReadOnlyList<MetricSpec> Metrics =
    [
        TunerMetrics.Eta,
        new("gap", "f − f*"),
        new("n", "−gᵀu (‖g‖² for GD)"),
    ];

    private readonly Dictionary<string, double> _internals = new();
    public IReadOnlyDictionary<string, double> Internals => _internals;

    public double Choose(TunerContext ctx)
    {
        double gap = ctx.Evaluation.Loss - fStar;
        double n = -TunerMath.Dot(ctx.Evaluation.Gradient, ctx.Direction);
        double eta = gap > 0 && n > 0 ? Math.Min(gap / n, etaMax) : 0;
        _internals["eta"] = eta;
        _internals["gap"] = gap;
        _internals["n"] = n;
        return eta;
    }

    public void Dispose() { }
}
