using Harness.Abstractions;
using Harness.Abstractions.Numerics;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Probes;

/// <summary>Sharpness λ1(H): the largest algebraic eigenvalue of the probe-set Hessian, by Lanczos on
/// Hessian-vector products with full reorthogonalisation, warm-started from the previous top vector.
/// Also the edge ratio λ1(H)/threshold when the optimizer is not preconditioned.</summary>
public sealed class SharpnessProbePlugin : IProbePlugin
{
    public string Name => "sharpness";
    public string Description => "λ1(H) by Lanczos (warm start, full reorthogonalisation) and λ1/threshold.";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } = LanczosProbe.Schema;

    public IReadOnlyList<MetricSpec> MetricsFor(HyperparameterValues hp) =>
    [
        new("sharpness", "largest algebraic eigenvalue λ1 of the probe-set Hessian"),
        new("sharpness_residual", "Lanczos residual ‖Hv − λv‖ of the top pair"),
        new("sharpness_iterations", "Lanczos iterations (= Hessian-vector products) used"),
        new("edge_ratio", "λ1(H) / stability threshold (null for preconditioned optimizers: see precond_edge_ratio)"),
    ];

    public IProbe Create(HyperparameterValues hp) => new SharpnessProbe(LanczosProbe.Options(hp), hp.Boolean("warm_start"), hp.Integer("seed"));
}

public sealed class SharpnessProbe(LanczosOptions options, bool warmStart, long seed) : IProbe
{
    private readonly LanczosProbe _lanczos = new(options, warmStart, seed);

    public IReadOnlyDictionary<string, double> Measure(ProbeContext ctx)
    {
        using var scope = NewDisposeScope();
        using var hessian = ctx.Objective.Hessian();
        var result = _lanczos.Run(hessian, ctx.Objective, ctx.Shared);
        var top = result.Top[0];
        var metrics = new Dictionary<string, double>
        {
            ["sharpness"] = top.Value,
            ["sharpness_residual"] = top.Residual,
            ["sharpness_iterations"] = result.Iterations,
        };
        if (ctx.Optimizer.Preconditioner is null)
            metrics["edge_ratio"] = top.Value / ctx.Optimizer.StabilityThreshold;
        return metrics;
    }

    public void Dispose() => _lanczos.Dispose();
}
