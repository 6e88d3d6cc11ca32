using Harness.Abstractions;
using Harness.Abstractions.Numerics;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Tuners;

/// <summary>
/// Exact-sharpness rule: η = σ/λ1(H) with λ1 from power iteration on the step's Hessian (Hessian-vector products of the
/// shared objective), warm-started from the previous step's vector (a seeded random vector on the first step); stops
/// when the Rayleigh quotient changes by less than tol (relative) or after max_iterations. η = 0 when λ1 ≤ 0.
/// Power iteration finds the eigenvalue of largest magnitude; near a saddle with a dominant negative eigenvalue, η = 0.
/// </summary>
public sealed class ExactSharpnessPlugin : ILearningRateTunerPlugin
{
    public string Name => "exact_sharpness";
    public string Description => "Exact-sharpness rule: η = σ/λ1(H), λ1 by power iteration on the step's batch every step.";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } =
    [
        HyperparameterSpec.Real("sigma", 2, "target η·λ1", min: 0, minExclusive: true),
        HyperparameterSpec.Integer("max_iterations", 20, "power iterations per step (Hessian-vector products)", min: 1, max: 10000),
        HyperparameterSpec.Real("tol", 1e-4, "relative change of the Rayleigh quotient that stops the iteration", min: 0),
        HyperparameterSpec.Integer("seed", 0, "seed of the first start vector", min: 0),
    ];
    public IReadOnlyList<MetricSpec> MetricsFor(HyperparameterValues hp) => ExactSharpnessTuner.Metrics;
    public ILearningRateTuner Create(HyperparameterValues hp) =>
        new ExactSharpnessTuner(hp.Real("sigma"), (int)hp.Integer("max_iterations"), hp.Real("tol"), hp.Integer("seed"));
}

public sealed class ExactSharpnessTuner(double sigma, int maxIterations, double tol, long seed) : ILearningRateTuner
{
    public static readonly IReadOnlyList<MetricSpec> Metrics =
    [
        TunerMetrics.Eta,
        new("lambda1", "λ1(H) by power iteration on the step's batch"),
        new("iterations", "power iterations (HVPs) this step") { Type = MetricType.Int64 },
    ];

    private Tensor? _v;
    private readonly Dictionary<string, double> _internals = new();
    public IReadOnlyDictionary<string, double> Internals => _internals;

    public double Choose(TunerContext ctx)
    {
        double lambda = 0;
        int it = 0;
        using (NewDisposeScope())
        using (no_grad())
        {
            using var h = ctx.Objective.Hessian();
            var like = ctx.Objective.Parameters;
            var dtype = like[0].dtype;
            var v = _v is null
                ? randn(h.Dimension, dtype: dtype, device: like[0].device, generator: new Generator((ulong)seed))
                : _v.clone();
            v.div_(v.norm());
            double previous = double.NaN;
            for (it = 1; it <= maxIterations; it++)
            {
                var hv = h.Multiply(v).detach();
                lambda = ParameterVectors.Dot(v, hv);
                double norm = hv.norm().ReadDouble();
                if (norm == 0) break;
                using (var n = norm.ToScalar()) v = hv.div(n);
                if (!double.IsNaN(previous) && Math.Abs(lambda - previous) <= tol * Math.Abs(lambda)) break;
                previous = lambda;
            }
            it = Math.Min(it, maxIterations);
            _v?.Dispose();
            _v = v.detach().clone().DetachFromDisposeScope();
        }
        double eta = lambda > 0 ? sigma / lambda : 0;
        _internals["eta"] = eta;
        _internals["lambda1"] = lambda;
        _internals["iterations"] = it;
        return eta;
    }

    public void Dispose() => _v?.Dispose();
}
