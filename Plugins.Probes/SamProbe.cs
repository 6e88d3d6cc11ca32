using Harness.Abstractions;
using Harness.Abstractions.Numerics;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Probes;

/// <summary>
/// SAM sharpness max_{‖δ‖₂ ≤ ρ} f(θ+δ) − f(θ) on the probe set, by normalised gradient ascent on the sphere:
/// δ₁ = ρ g/‖g‖, δ_{k+1} = ρ ∇f(θ+δ_k)/‖∇f(θ+δ_k)‖ (steps = 1 is SAM's one-step estimate; θ is restored exactly).
/// Reports f(θ+δ_K) − f(θ) and the first-order value ρ‖g‖. Cost: `steps` gradient evaluations + 1 forward.
/// </summary>
public sealed class SamProbePlugin : IProbePlugin
{
    public string Name => "sam";
    public string Description => "SAM sharpness f(θ+δ) − f(θ), δ = ρ g/‖g‖ (ρ = 0.05), optionally K ascent steps.";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } =
    [
        HyperparameterSpec.Real("rho", 0.05, "radius ρ of the perturbation ball (parameter units)", min: 0, minExclusive: true),
        HyperparameterSpec.Integer("steps", 1, "ascent steps K", min: 1, max: 100),
    ];

    public IReadOnlyList<MetricSpec> MetricsFor(HyperparameterValues hp) =>
    [
        new("sam_sharpness", "f(θ+δ) − f(θ) with the ascent perturbation ‖δ‖ = ρ"),
        new("sam_loss", "f(θ) on the probe set"),
        new("sam_first_order", "ρ‖g‖, the first-order prediction of sam_sharpness"),
    ];

    public IProbe Create(HyperparameterValues hp) => new SamProbe(hp.Real("rho"), (int)hp.Integer("steps"));
}

public sealed class SamProbe(double rho, int steps) : IProbe
{
    public IReadOnlyDictionary<string, double> Measure(ProbeContext ctx)
    {
        using var scope = NewDisposeScope();
        var eval = ctx.Objective.Evaluate();
        double gnorm = ParameterVectors.Norm(eval.Gradient);
        var m = new Dictionary<string, double> { ["sam_loss"] = eval.Loss, ["sam_first_order"] = rho * gnorm };
        if (gnorm == 0) { m["sam_sharpness"] = 0; return m; }
        IReadOnlyList<Tensor> delta;
        using (var s = (rho / gnorm).ToScalar()) delta = eval.Gradient.Select(t => t.mul(s)).ToList();
        for (int k = 1; k < steps; k++)
        {
            var at = ctx.Objective.EvaluateAt(delta, 1.0);
            double n = ParameterVectors.Norm(at.Gradient);
            if (n == 0) break;
            using var s = (rho / n).ToScalar();
            delta = at.Gradient.Select(t => t.mul(s)).ToList();
        }
        m["sam_sharpness"] = ctx.Objective.LossAt(delta, 1.0) - eval.Loss;
        return m;
    }

    public void Dispose() { }
}
