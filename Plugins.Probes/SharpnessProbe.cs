using Harness.Abstractions;
using Harness.Abstractions.Numerics;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Probes;

/// <summary>Sharpness λ1(H): the largest algebraic eigenvalue of the probe-set Hessian, by Lanczos on
/// Hessian-vector products with full reorthogonalisation, warm-started from the previous top vector; optionally the
/// top-k and λ_min(H). For an unpreconditioned optimizer also the edge ratio λ1(H)/threshold and its upward
/// crossings of 1. Publishes the top eigenvector and the spectrum on the blackboard.</summary>
public sealed class SharpnessProbePlugin : IProbePlugin
{
    public string Name => "sharpness";
    public string Description => "λ1(H) (and top-k, λ_min) by Lanczos (warm start, full reorthogonalisation); λ1/threshold and its upward crossings.";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } = LanczosProbe.Schema();

    public IReadOnlyList<MetricSpec> MetricsFor(HyperparameterValues hp) =>
    [
        .. SpectrumMetrics.For("sharpness", "the probe-set Hessian H", LanczosProbe.Options(hp)),
        new("edge_ratio", "λ1(H) / stability threshold (only for optimizers without a preconditioner: see precond_edge_ratio)"),
        new("edge_crossing", "true when edge_ratio crossed 1 upwards since the previous measurement (an event for bursts)") { Type = MetricType.Boolean },
    ];

    public IProbe Create(HyperparameterValues hp) => new SharpnessProbe(LanczosProbe.Create(hp));
}

public sealed class SharpnessProbe : IProbe, ICheckpointedProbe
{
    private readonly LanczosProbe _lanczos;
    private readonly CrossingDetector _crossing = new();

    internal SharpnessProbe(LanczosProbe lanczos) => _lanczos = lanczos;

    public IReadOnlyDictionary<string, double> Measure(ProbeContext ctx)
    {
        using var scope = NewDisposeScope();
        using var hessian = ctx.Objective.Hessian();
        var result = _lanczos.Run(hessian, ctx.Objective, ctx.Step, ctx.Shared);
        ctx.Shared[ProbeBlackboard.HessianSpectrum] = SpectrumMetrics.Estimate(ctx.Step, result);
        var metrics = new Dictionary<string, double>();
        SpectrumMetrics.Write(metrics, "sharpness", result);
        if (ctx.Optimizer.Preconditioner is null && StabilityThreshold.Of(ctx.Optimizer) is { } threshold)
        {
            double ratio = result.Top[0].Value / threshold;
            metrics["edge_ratio"] = ratio;
            metrics["edge_crossing"] = _crossing.Observe(ratio);
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
        _lanczos.Import(state, "", shared);
        _crossing.Import(state, "previous_edge_ratio");
    }

    public void Dispose() => _lanczos.Dispose();
}
