using Harness.Abstractions;
using Harness.Abstractions.Numerics;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Probes;

/// <summary>Preconditioned sharpness λ1(P^-1/2 H P^-1/2) = λ1(P^-1 H) with the optimizer's P (read through the
/// contract), by Lanczos on the symmetric operator v ↦ P^-1/2 H (P^-1/2 v) — never on the non-symmetric P^-1 H —
/// and its ratio to the optimizer's threshold. For an unpreconditioned optimizer P = I and it equals λ1(H).</summary>
public sealed class PreconditionedSharpnessProbePlugin : IProbePlugin
{
    public string Name => "precond_sharpness";
    public string Description => "λ1(P^-1/2 H P^-1/2) with the optimizer's preconditioner, and its edge ratio.";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } = LanczosProbe.Schema;

    public IReadOnlyList<MetricSpec> MetricsFor(HyperparameterValues hp) =>
    [
        new("precond_sharpness", "λ1(P^-1/2 H P^-1/2) on the probe set"),
        new("precond_sharpness_residual", "Lanczos residual of the top pair"),
        new("precond_sharpness_iterations", "Lanczos iterations used"),
        new("precond_edge_ratio", "precond_sharpness / stability threshold"),
    ];

    public IProbe Create(HyperparameterValues hp) =>
        new PreconditionedSharpnessProbe(LanczosProbe.Options(hp), hp.Boolean("warm_start"), hp.Integer("seed"));
}

public sealed class PreconditionedSharpnessProbe(LanczosOptions options, bool warmStart, long seed) : IProbe
{
    private readonly LanczosProbe _lanczos = new(options, warmStart, seed);

    public IReadOnlyDictionary<string, double> Measure(ProbeContext ctx)
    {
        using var scope = NewDisposeScope();
        using var hessian = ctx.Objective.Hessian();
        ISymmetricOperator op = hessian;
        if (ctx.Optimizer.Preconditioner is { } p)
            op = new PreconditionedOperator(hessian, ParameterVectors.Flatten(p).rsqrt());
        var result = _lanczos.Run(op, ctx.Objective);
        var top = result.Top[0];
        return new Dictionary<string, double>
        {
            ["precond_sharpness"] = top.Value,
            ["precond_sharpness_residual"] = top.Residual,
            ["precond_sharpness_iterations"] = result.Iterations,
            ["precond_edge_ratio"] = top.Value / ctx.Optimizer.StabilityThreshold,
        };
    }

    public void Dispose() => _lanczos.Dispose();
}

/// <summary>v ↦ D H D v with D = diag(P^-1/2): symmetric whenever H is.</summary>
public sealed class PreconditionedOperator(ISymmetricOperator hessian, Tensor inverseSqrtP) : ISymmetricOperator
{
    public long Dimension => hessian.Dimension;
    public Tensor Multiply(Tensor v) => inverseSqrtP * hessian.Multiply(inverseSqrtP * v);
}
