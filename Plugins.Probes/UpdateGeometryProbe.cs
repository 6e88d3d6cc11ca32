using Harness.Abstractions;
using Harness.Abstractions.Numerics;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Probes;

/// <summary>
/// Geometry of the optimizer's updates (O(p), no gradient): ‖Δθ‖ of the last update u_t = θ_t − θ_{t−1};
/// cos(u_t, u_{t−1}) with the update before it; |cos(u_t, v_top)| with the top Hessian eigenvector the sharpness
/// probe published (and that vector's age in steps — list sharpness first to measure at the same step);
/// the distance ‖θ_t − θ_0‖ from initialisation.
/// </summary>
public sealed class UpdateGeometryProbePlugin : IProbePlugin
{
    public string Name => "update_geometry";
    public string Description => "‖Δθ‖, cos(u_t, u_{t−1}), |cos(u_t, v_top)|, distance from initialisation.";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } = [];

    public IReadOnlyList<MetricSpec> MetricsFor(HyperparameterValues hp) =>
    [
        new("update_norm", "‖θ_t − θ_{t−1}‖₂ of the last update"),
        new("update_cos_prev", "cos(u_t, u_{t−1}) of the last two updates (< 0: oscillation)"),
        new("update_cos_top", "|cos(u_t, v_top)| with the top eigenvector of H published by the sharpness probe"),
        new("update_top_age", "steps since that eigenvector was computed (0 = this step)") { Type = MetricType.Int64 },
        new("update_dist_init", "‖θ_t − θ_0‖₂"),
    ];

    public IProbe Create(HyperparameterValues hp) => new UpdateGeometryProbe();
}

public sealed class UpdateGeometryProbe : IProbe
{
    public IReadOnlyDictionary<string, double> Measure(ProbeContext ctx)
    {
        using var scope = NewDisposeScope();
        var m = new Dictionary<string, double>();
        var theta = ProbeMath.Flat(ctx.Objective.Parameters);
        var theta0 = ProbeMath.Flat(ctx.InitialParameters);
        m["update_dist_init"] = Math.Sqrt(ParameterVectors.Dot(theta - theta0, theta - theta0));
        if (ctx.PreviousUpdate is not { } last) return m;
        var u = ProbeMath.Flat(last);
        m["update_norm"] = Math.Sqrt(ParameterVectors.Dot(u, u));
        if (ctx.UpdateBeforePrevious is { } before)
            m["update_cos_prev"] = ProbeMath.Cosine(u, ProbeMath.Flat(before));
        if (ctx.Shared.TryGetValue(ProbeBlackboard.TopEigenvector, out var v) && v is Tensor { IsInvalid: false } top && top.numel() == u.numel())
        {
            m["update_cos_top"] = Math.Abs(ProbeMath.Cosine(u, top));
            if (ctx.Shared.TryGetValue(ProbeBlackboard.TopEigenvectorStep, out var s) && s is long step)
                m["update_top_age"] = ctx.Step - step;
        }
        return m;
    }

    public void Dispose() { }
}
