using Harness.Abstractions;
using Harness.Abstractions.Numerics;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Probes;

/// <summary>
/// Coherence as defined in docs/science.md §6 (after the coherence paper). The correct form γ = λ1(P^-1/2 H P^-1/2) (= the preconditioned sharpness;
/// preconditioned GD is stable iff η &lt; 2/γ), with λ_min of the same operator (negative = saddle), its ratio to the
/// optimizer's threshold and the learning-rate boundary it implies; beside it, as diagnostics, the paper's forms:
/// the eigenvalue/diagonal pairing max_i |λ_i/p_i| (λ_i of H descending paired with P's entries descending — over the
/// top-k eigenvalues and λ_min with p_min; exact when k covers the spectrum), its Lemma-1 bound λ1(H)/p_min and the
/// same with p_min replaced by the 0.1 %, 1 % and 5 % percentiles of P.
/// Spectra measured at this step by the sharpness / precond_sharpness probes (listed earlier in the matrix) are
/// reused from the blackboard; otherwise one Hessian graph serves both Lanczos runs (P = I: one run).
/// </summary>
public sealed class CoherenceProbePlugin : IProbePlugin
{
    public string Name => "coherence";
    public string Description => "γ = λ1(P^-1/2 H P^-1/2) with λ_min, edge ratio and lr boundary; the paper's pairing and λ1(H)/p-percentile bounds beside it.";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } =
    [
        HyperparameterSpec.Integer("max_iterations", 60, "Lanczos iterations at most per operator, the check chains included", min: 1, max: 1000),
        HyperparameterSpec.Real("tolerance", 1e-3, "relative residual tolerance of the wanted pairs", min: 0, minExclusive: true),
        HyperparameterSpec.Integer("top_k", 5, "eigenvalues of H paired with P's largest entries in the paper's form", min: 1, max: 50),
        HyperparameterSpec.Boolean("warm_start", true, "start each operator's Lanczos from its previous top vector"),
        HyperparameterSpec.Integer("seed", 0, "seed of the random start vectors", min: 0),
        HyperparameterSpec.Boolean("reuse", true, "reuse spectra the sharpness probes published at this step"),
    ];

    public IReadOnlyList<MetricSpec> MetricsFor(HyperparameterValues hp) =>
    [
        new("coherence", "γ = λ1(P^-1/2 H P^-1/2), the correct coherence (= preconditioned sharpness)"),
        new("coherence_min", "λ_min(P^-1/2 H P^-1/2) (negative = saddle)"),
        new("coherence_edge_ratio", "γ / the optimizer's stability threshold"),
        new("coherence_lr_boundary", "largest stable η implied by γ: η·threshold(η)/γ (2/γ for preconditioned GD)"),
        new("coherence_hessian_max", "λ1(H)"),
        new("coherence_hessian_min", "λ_min(H) (negative = saddle)"),
        new("coherence_paper_pairing", "paper's γ = max_i |λ_i / p_i| with eigenvalues and P entries paired by rank (diagnostic; wrong unless H is diagonal in P's basis)"),
        new("coherence_paper_bound", "paper's Lemma-1 form λ1(H) / p_min"),
        new("coherence_paper_lr_boundary", "the paper's stable-η bound: η·threshold(η) · p_min/λ1(H) (2 p_min/λ_max for GD; only sufficient)"),
        new("coherence_bound_q001", "λ1(H) / (0.1 % percentile of P)"),
        new("coherence_bound_q01", "λ1(H) / (1 % percentile of P)"),
        new("coherence_bound_q05", "λ1(H) / (5 % percentile of P)"),
        new("coherence_residual", "Lanczos residual of γ's pair"),
        new("coherence_hessian_residual", "Lanczos residual of λ1(H)'s pair"),
        new("coherence_iterations", "Lanczos iterations run by this probe in this measurement (0 when both spectra were reused)") { Type = MetricType.Int64 },
        new("coherence_converged", "true when every wanted pair of both operators met the tolerance") { Type = MetricType.Boolean },
    ];

    public IProbe Create(HyperparameterValues hp) => new CoherenceProbe(
        new LanczosProbe(new LanczosOptions((int)hp.Integer("max_iterations"), hp.Real("tolerance"), 1, true) { SmallestRelativeToScale = true },
            hp.Boolean("warm_start"), hp.Integer("seed")),
        new LanczosProbe(new LanczosOptions((int)hp.Integer("max_iterations"), hp.Real("tolerance"), (int)hp.Integer("top_k"), true) { SmallestRelativeToScale = true },
            hp.Boolean("warm_start"), hp.Integer("seed")),
        (int)hp.Integer("top_k"), hp.Boolean("reuse"));
}

public sealed class CoherenceProbe : IProbe, ICheckpointedProbe
{
    private readonly LanczosProbe _precond, _hessian;
    private readonly int _topK;
    private readonly bool _reuse;

    internal CoherenceProbe(LanczosProbe precond, LanczosProbe hessian, int topK, bool reuse)
    {
        _precond = precond; _hessian = hessian; _topK = topK; _reuse = reuse;
    }

    /// <summary>The paper's pairing: λ (descending, top-k) with P's entries descending, and λ_min with p_min.</summary>
    public static double PaperPairing(IReadOnlyList<double> topDescending, double? bottom, IReadOnlyList<double> pAscending)
    {
        double g = 0;
        int n = pAscending.Count;
        for (int i = 0; i < topDescending.Count && i < n; i++) g = Math.Max(g, Math.Abs(topDescending[i]) / pAscending[n - 1 - i]);
        if (bottom is { } b) g = Math.Max(g, Math.Abs(b) / pAscending[0]);
        return g;
    }

    private SpectrumEstimate? Reusable(ProbeContext ctx, string key, int topK) =>
        _reuse && ctx.Shared.TryGetValue(key, out var o) && o is SpectrumEstimate s && s.Step == ctx.Step && s.Top.Count >= topK && s.Bottom is not null
            ? s : null;

    public IReadOnlyDictionary<string, double> Measure(ProbeContext ctx)
    {
        using var scope = NewDisposeScope();
        var pFlat = PreconditionedOperator.FlatPreconditioner(ctx.Optimizer);
        int iterations = 0;
        bool converged = true;
        IHessianOperator? hessian = null;
        try
        {
            IHessianOperator H() => hessian ??= ctx.Objective.Hessian();
            SpectrumEstimate Run(LanczosProbe lanczos, ISymmetricOperator op)
            {
                var r = lanczos.Run(op, ctx.Objective);
                iterations += r.Iterations;
                converged &= r.Converged;
                return SpectrumMetrics.Estimate(ctx.Step, r);
            }

            var hs = Reusable(ctx, ProbeBlackboard.HessianSpectrum, _topK) ?? Run(_hessian, H());
            SpectrumEstimate ps;
            if (pFlat is null) ps = hs;
            else ps = Reusable(ctx, ProbeBlackboard.PreconditionedSpectrum, 1) ?? Run(_precond, new PreconditionedOperator(H(), pFlat.rsqrt()));

            var p = pFlat is null ? [1.0] : ProbeMath.ToArray(pFlat);
            Array.Sort(p);
            double threshold = StabilityThreshold.Of(ctx.Optimizer) ?? double.NaN;
            double c = threshold * ctx.Optimizer.LearningRate;      // threshold(η) = c/η for every momentum kind of docs/science.md §2
            double gamma = ps.Top[0], lambda1 = hs.Top[0];
            var m = new Dictionary<string, double>
            {
                ["coherence"] = gamma,
                ["coherence_min"] = ps.Bottom!.Value,
                ["coherence_edge_ratio"] = gamma / threshold,
                ["coherence_lr_boundary"] = c / gamma,
                ["coherence_hessian_max"] = lambda1,
                ["coherence_hessian_min"] = hs.Bottom!.Value,
                ["coherence_paper_pairing"] = PaperPairing(hs.Top, hs.Bottom, p),
                ["coherence_paper_bound"] = lambda1 / p[0],
                ["coherence_paper_lr_boundary"] = c * p[0] / lambda1,
                ["coherence_bound_q001"] = lambda1 / ProbeMath.Quantile(p, 0.001),
                ["coherence_bound_q01"] = lambda1 / ProbeMath.Quantile(p, 0.01),
                ["coherence_bound_q05"] = lambda1 / ProbeMath.Quantile(p, 0.05),
                ["coherence_residual"] = ps.TopResidual,
                ["coherence_hessian_residual"] = hs.TopResidual,
                ["coherence_iterations"] = iterations,
                ["coherence_converged"] = converged && ps.Converged && hs.Converged ? 1 : 0,
            };
            if (double.IsNaN(threshold))   // no linear threshold (ThresholdRule.None): these columns stay null
                foreach (var key in new[] { "coherence_edge_ratio", "coherence_lr_boundary", "coherence_paper_lr_boundary" }) m.Remove(key);
            return m;
        }
        finally { hessian?.Dispose(); }
    }

    public ProbeState ExportState()
    {
        var state = new ProbeState();
        _precond.Export(state, "precond_");
        _hessian.Export(state, "hessian_");
        return state;
    }

    public void ImportState(ProbeState state, IDictionary<string, object> shared)
    {
        _precond.Import(state, "precond_");
        _hessian.Import(state, "hessian_");
    }

    public void Dispose() { _precond.Dispose(); _hessian.Dispose(); }
}
