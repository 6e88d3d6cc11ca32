using Harness.Abstractions;
using Harness.Abstractions.Numerics;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Probes;

/// <summary>Preconditioned sharpness λ1(P^-1/2 H P^-1/2) = λ1(P^-1 H) with the optimizer's P (read through the
/// contract), by Lanczos on the symmetric operator v ↦ P^-1/2 H (P^-1/2 v) — never on the non-symmetric P^-1 H —;
/// optionally its top-k and λ_min; its ratio to the optimizer's threshold and the upward crossings of 1.
/// For an unpreconditioned optimizer P = I and it equals λ1(H).</summary>
public sealed class PreconditionedSharpnessProbePlugin : IProbePlugin
{
    public string Name => "precond_sharpness";
    public string Description => "λ1(P^-1/2 H P^-1/2) (and top-k, λ_min) with the optimizer's preconditioner; edge ratio and upward crossings.";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } = LanczosProbe.Schema();

    public IReadOnlyList<MetricSpec> MetricsFor(HyperparameterValues hp) =>
    [
        .. SpectrumMetrics.For("precond_sharpness", "P^-1/2 H P^-1/2", LanczosProbe.Options(hp)),
        new("precond_edge_ratio", "precond_sharpness / the optimizer's stability threshold"),
        new("precond_edge_crossing", "true when precond_edge_ratio crossed 1 upwards since the previous measurement (an event for bursts)") { Type = MetricType.Boolean },
    ];

    public IProbe Create(HyperparameterValues hp) => new PreconditionedSharpnessProbe(LanczosProbe.Create(hp));
}

public sealed class PreconditionedSharpnessProbe : IProbe, ICheckpointedProbe
{
    private readonly LanczosProbe _lanczos;
    private readonly CrossingDetector _crossing = new();

    internal PreconditionedSharpnessProbe(LanczosProbe lanczos) => _lanczos = lanczos;

    public IReadOnlyDictionary<string, double> Measure(ProbeContext ctx)
    {
        using var scope = NewDisposeScope();
        using var hessian = ctx.Objective.Hessian();
        var op = PreconditionedOperator.For(hessian, ctx.Optimizer);
        var result = _lanczos.Run(op, ctx.Objective);
        ctx.Shared[ProbeBlackboard.PreconditionedSpectrum] = SpectrumMetrics.Estimate(ctx.Step, result);
        var metrics = new Dictionary<string, double>();
        SpectrumMetrics.Write(metrics, "precond_sharpness", result);
        if (StabilityThreshold.Of(ctx.Optimizer) is { } threshold)   // null: the optimizer has no linear threshold
        {
            double ratio = result.Top[0].Value / threshold;
            metrics["precond_edge_ratio"] = ratio;
            metrics["precond_edge_crossing"] = _crossing.Observe(ratio);
        }
        return metrics;
    }

    public ProbeState ExportState()
    {
        var state = new ProbeState();
        _lanczos.Export(state, "");
        _crossing.Export(state, "previous_edge_ratio");
        return state;
    }

    public void ImportState(ProbeState state, IDictionary<string, object> shared)
    {
        _lanczos.Import(state, "");
        _crossing.Import(state, "previous_edge_ratio");
    }

    public void Dispose() => _lanczos.Dispose();
}

/// <summary>v ↦ D H D v with D = diag(P^-1/2): symmetric whenever H is.</summary>
public sealed class PreconditionedOperator(ISymmetricOperator hessian, Tensor inverseSqrtP) : ISymmetricOperator
{
    public long Dimension => hessian.Dimension;
    public Tensor InverseSqrtP => inverseSqrtP;
    public Tensor Multiply(Tensor v) => inverseSqrtP * hessian.Multiply(inverseSqrtP * v);

    /// <summary>The optimizer's P flattened (length p), or null for an unpreconditioned optimizer. Throws when P has
    /// a non-positive or non-finite entry (the contract promises positive entries).</summary>
    public static Tensor? FlatPreconditioner(IOptimizer optimizer)
    {
        if (optimizer.Preconditioner is not { } p) return null;
        var flat = ParameterVectors.Flatten(p.Select(t => t.detach()).ToList());
        using var zero = 0.ToScalar();
        using (var bad = flat.le(zero).logical_or(flat.isfinite().logical_not()).any())
            if (bad.ReadBoolean()) throw new InvalidOperationException("the optimizer's preconditioner has a non-positive or non-finite entry");
        return flat;
    }

    /// <summary>D H D with the optimizer's P, or H itself when the optimizer has no preconditioner.</summary>
    public static ISymmetricOperator For(ISymmetricOperator hessian, IOptimizer optimizer) =>
        FlatPreconditioner(optimizer) is { } p ? new PreconditionedOperator(hessian, p.rsqrt()) : hessian;
}
