using Harness.Abstractions;

namespace Harness.Plugins.Tuners;

/// <summary>
/// CDAT (Roulet et al., eq. 8): n = max(−gᵀu, 0), d = |uᵀHu| + ε (one Hessian-vector product on the step's batch),
/// ñ = β ñ + (1−β) n, d̃ = β d̃ + (1−β) d (current step included, both from 0), η = σ ñ/d̃; η = 0 when d̃ = 0 (logged
/// as zero_curvature = 1). σ = 1 is quadratically greedy, σ = 2 "on edge".
/// </summary>
public sealed class CdatPlugin : ILearningRateTunerPlugin
{
    public string Name => "cdat";
    public string Description => "CDAT: η = σ ñ/d̃ with n = max(−gᵀu, 0), d = |uᵀHu| + ε and EMAs β (Roulet et al.); σ = 2 targets the edge of stability.";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } =
    [
        HyperparameterSpec.Real("sigma", 2, "scale σ of the quadratic-model step (1 = greedy, 2 = on edge)", min: 0, minExclusive: true),
        HyperparameterSpec.Real("beta", 0, "β_cdat: EMA factor of n and d (0 = no averaging)", min: 0, max: 1, maxExclusive: true),
        HyperparameterSpec.Real("eps", 0, "ε added to |uᵀHu|", min: 0),
    ];
    public IReadOnlyList<MetricSpec> MetricsFor(HyperparameterValues hp) => CdatTuner.Metrics;
    public ILearningRateTuner Create(HyperparameterValues hp) => new CdatTuner(hp.Real("sigma"), hp.Real("beta"), hp.Real("eps"));
}

public sealed class CdatTuner(double sigma, double beta, double eps) : ILearningRateTuner
{
    public static readonly IReadOnlyList<MetricSpec> Metrics =
    [
        TunerMetrics.Eta,
        new("n", "n = max(−gᵀu, 0)"),
        new("d", "d = |uᵀHu| + ε"),
        new("n_ema", "ñ, EMA of n"),
        new("d_ema", "d̃, EMA of d"),
        new("zero_curvature", "true when d̃ = 0 (η set to 0)") { Type = MetricType.Boolean },
    ];

    private double _nEma, _dEma;
    private readonly Dictionary<string, double> _internals = new();
    public IReadOnlyDictionary<string, double> Internals => _internals;

    public double Choose(TunerContext c)
    {
        double n = Math.Max(-TunerMath.Dot(c.Evaluation.Gradient, c.Direction), 0);
        double d = Math.Abs(TunerMath.Curvature(c.Objective, c.Direction)) + eps;
        _nEma = beta * _nEma + (1 - beta) * n;
        _dEma = beta * _dEma + (1 - beta) * d;
        bool zero = _dEma == 0;
        double eta = zero ? 0 : sigma * _nEma / _dEma;
        _internals["eta"] = eta;
        _internals["n"] = n;
        _internals["d"] = d;
        _internals["n_ema"] = _nEma;
        _internals["d_ema"] = _dEma;
        _internals["zero_curvature"] = zero ? 1 : 0;
        return eta;
    }

    public void Dispose() { }
}

/// <summary>Quadratically greedy rule: CDAT with σ = 1 and β = 0, η = max(−gᵀu, 0)/(|uᵀHu| + ε), the minimiser of the
/// local quadratic model along u.</summary>
public sealed class GreedyPlugin : ILearningRateTunerPlugin
{
    public string Name => "greedy";
    public string Description => "Quadratically greedy: η = max(−gᵀu, 0)/(|uᵀHu| + ε), i.e. CDAT with σ = 1, β = 0.";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } =
    [
        HyperparameterSpec.Real("eps", 0, "ε added to |uᵀHu|", min: 0),
    ];
    public IReadOnlyList<MetricSpec> MetricsFor(HyperparameterValues hp) => CdatTuner.Metrics;
    public ILearningRateTuner Create(HyperparameterValues hp) => new CdatTuner(1, 0, hp.Real("eps"));
}
