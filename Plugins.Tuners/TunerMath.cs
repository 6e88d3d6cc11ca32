using Harness.Abstractions;
using Harness.Abstractions.Numerics;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Tuners;

/// <summary>Float64 reductions over per-tensor lists shared by the tuners.</summary>
public static class TunerMath
{
    /// <summary>Σ_i ⟨a_i, b_i⟩ in float64.</summary>
    public static double Dot(IReadOnlyList<Tensor> a, IReadOnlyList<Tensor> b)
    {
        double s = 0;
        using var scope = NewDisposeScope();
        for (int i = 0; i < a.Count; i++)
            s += a[i].detach().to(ScalarType.Float64).flatten().dot(b[i].detach().to(ScalarType.Float64).flatten()).ReadDouble();
        return s;
    }

    /// <summary>uᵀHu with one Hessian-vector product of the objective (the step's batch, current θ).</summary>
    public static double Curvature(IObjective objective, IReadOnlyList<Tensor> u)
    {
        using var scope = NewDisposeScope();
        using var h = objective.Hessian();
        var flat = ParameterVectors.Flatten(u.Select(t => t.detach()).ToList());
        var hu = h.Multiply(flat);
        return ParameterVectors.Dot(flat, hu);
    }
}

/// <summary>Metric specs common to every tuner.</summary>
internal static class TunerMetrics
{
    public static MetricSpec Eta => new("eta", "learning rate η_t chosen for this step");
}
