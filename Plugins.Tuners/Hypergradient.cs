using Harness.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Tuners;

/// <summary>
/// Hypergradient descent (Roulet et al., eq. 15): step t uses η_t, then η_{t+1} = η_t (1 − β cos(∇f(θ_t + η_t u_t), u_t)),
/// with the gradient at the trial point evaluated on the step's own batch (one extra gradient evaluation per step).
/// η_0 = eta0, or the base optimizer's η when eta0 = 0.
/// </summary>
public sealed class HypergradientPlugin : ILearningRateTunerPlugin
{
    public string Name => "hypergradient";
    public string Description => "Hypergradient: η_{t+1} = η_t (1 − β cos(∇f(θ_t + η_t u_t), u_t)); η_0 = eta0 (0 = the base optimizer's η).";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } =
    [
        HyperparameterSpec.Real("beta", 0.01, "hyper learning rate β", min: 0),
        HyperparameterSpec.Real("eta0", 0, "initial learning rate η_0 (0 = the base optimizer's lr)", min: 0),
    ];
    public IReadOnlyList<MetricSpec> MetricsFor(HyperparameterValues hp) => HypergradientTuner.Metrics;
    public ILearningRateTuner Create(HyperparameterValues hp) => new HypergradientTuner(hp.Real("beta"), hp.Real("eta0"));
}

public sealed class HypergradientTuner(double beta, double eta0) : ILearningRateTuner
{
    public static readonly IReadOnlyList<MetricSpec> Metrics =
    [
        TunerMetrics.Eta,
        new("cos", "cos(∇f(θ_t + η_t u_t), u_t)"),
        new("eta_next", "η_{t+1}"),
    ];

    private double? _eta;
    private readonly Dictionary<string, double> _internals = new();
    public IReadOnlyDictionary<string, double> Internals => _internals;

    public double Choose(TunerContext ctx)
    {
        double eta = _eta ?? (eta0 > 0 ? eta0 : ctx.BaseLearningRate);
        double cos;
        using (NewDisposeScope())
        {
            var trial = ctx.Objective.EvaluateAt(ctx.Direction, eta);
            double gu = TunerMath.Dot(trial.Gradient, ctx.Direction);
            double gg = TunerMath.Dot(trial.Gradient, trial.Gradient), uu = TunerMath.Dot(ctx.Direction, ctx.Direction);
            cos = gg > 0 && uu > 0 ? gu / (Math.Sqrt(gg) * Math.Sqrt(uu)) : 0;
        }
        _eta = eta * (1 - beta * cos);
        _internals["eta"] = eta;
        _internals["cos"] = cos;
        _internals["eta_next"] = _eta.Value;
        return eta;
    }

    public void Dispose() { }
}
