using Harness.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Probes;

/// <summary>
/// Empirical Fisher F = (1/N) Σ_i ∇ℓ_i ∇ℓ_iᵀ on the first N examples of the probe set: λ1(F) and λ1(P^-1/2 F P^-1/2)
/// from the N×N Gram matrices (1/N) G Gᵀ and (1/N) G P^-1 Gᵀ (G = the N×p per-sample gradients), which share F's
/// nonzero eigenvalues; also their traces. Exact (dense symmetric eigensolver in float64, no iteration).
/// Cost: N per-sample gradient evaluations.
/// </summary>
public sealed class FisherProbePlugin : IProbePlugin
{
    public string Name => "fisher";
    public string Description => "λ1 and trace of the empirical Fisher, raw and preconditioned, via the per-sample Gram matrix.";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } =
    [
        HyperparameterSpec.Integer("samples", 64, "examples N (the first N of the probe set; one backward each)", min: 1, max: 100000),
    ];

    public IReadOnlyList<MetricSpec> MetricsFor(HyperparameterValues hp) =>
    [
        new("fisher_lambda1", "λ1 of the empirical Fisher (1/N) Σ ∇ℓ_i∇ℓ_iᵀ"),
        new("fisher_trace", "tr F = (1/N) Σ ‖∇ℓ_i‖²"),
        new("fisher_precond_lambda1", "λ1(P^-1/2 F P^-1/2) with the optimizer's P (= fisher_lambda1 without a preconditioner)"),
        new("fisher_precond_trace", "tr(P^-1 F)"),
        new("fisher_samples", "examples used N") { Type = MetricType.Int64 },
    ];

    public IProbe Create(HyperparameterValues hp) => new FisherProbe((int)hp.Integer("samples"));
}

public sealed class FisherProbe(int samples) : IProbe
{
    /// <summary>Largest eigenvalue and trace of (1/N) G Gᵀ (G: N×p).</summary>
    public static (double Lambda1, double Trace) GramSpectrum(Tensor g)
    {
        using var s = NewDisposeScope();
        var g64 = g.to(ScalarType.Float64);
        long n = g64.shape[0];
        using var nScalar = n.ToScalar();
        using var two = 2.ToScalar();
        using var one = 1.ToScalar();
        var gram = g64.matmul(g64.T).div(nScalar);
        gram = gram.add(gram.T, one).div(two);
        var eig = linalg.eigvalsh(gram);
        return (eig[-1].item<double>(), gram.trace().item<double>());
    }

    public IReadOnlyDictionary<string, double> Measure(ProbeContext ctx)
    {
        using var scope = NewDisposeScope();
        var g = ctx.Objective.PerSampleGradients(samples);
        var (l1, tr) = GramSpectrum(g);
        var m = new Dictionary<string, double>
        {
            ["fisher_lambda1"] = l1,
            ["fisher_trace"] = tr,
            ["fisher_samples"] = g.shape[0],
        };
        if (PreconditionedOperator.FlatPreconditioner(ctx.Optimizer) is { } p)
        {
            var (pl1, ptr) = GramSpectrum(g * p.rsqrt().unsqueeze(0));
            m["fisher_precond_lambda1"] = pl1;
            m["fisher_precond_trace"] = ptr;
        }
        else
        {
            m["fisher_precond_lambda1"] = l1;
            m["fisher_precond_trace"] = tr;
        }
        return m;
    }

    public void Dispose() { }
}
