using Harness.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Probes;

/// <summary>
/// θ itself as trace columns, for models with few parameters (the exact toys, whose papers plot the trajectory):
/// theta_0 … theta_{p−1} (parameter tensors in model order, each flattened row-major) when p ≤ max_parameters, and
/// always ‖θ‖₁ and ‖θ‖₂ (e.g. the distance of a minimum of Cattaneo et al.'s toy from the minimal one-norm solution
/// is theta_l1 − 2·sqrt(0.75)). O(p), no gradient.
/// </summary>
public sealed class ParametersProbePlugin : IProbePlugin
{
    public string Name => "parameters";
    public string Description => "θ coordinates (theta_0 … theta_{p−1}, for p ≤ max_parameters) and ‖θ‖₁, ‖θ‖₂.";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } =
    [
        HyperparameterSpec.Integer("max_parameters", 64, "write one column per coordinate only when p is at most this", min: 0, max: 1024),
    ];

    private static readonly MetricSpec[] Norms =
    [
        new("theta_l1", "‖θ‖₁"),
        new("theta_l2", "‖θ‖₂"),
    ];

    public IReadOnlyList<MetricSpec> MetricsFor(HyperparameterValues hp) => Norms;

    public IReadOnlyList<MetricSpec> MetricsFor(HyperparameterValues hp, IReadOnlyList<ModelParameter> parameters)
    {
        long p = parameters.Sum(x => x.Tensor.numel());
        if (p > hp.Integer("max_parameters")) return Norms;
        var metrics = new List<MetricSpec>();
        for (long i = 0; i < p; i++) metrics.Add(new($"theta_{i}", $"coordinate {i} of the flattened parameter vector θ"));
        metrics.AddRange(Norms);
        return metrics;
    }

    public IProbe Create(HyperparameterValues hp) => new ParametersProbe(hp.Integer("max_parameters"));
}

public sealed class ParametersProbe(long maxParameters) : IProbe
{
    public IReadOnlyDictionary<string, double> Measure(ProbeContext ctx)
    {
        using var scope = NewDisposeScope();
        var theta = ProbeMath.Flat(ctx.Objective.Parameters).to(ScalarType.Float64);
        var values = theta.data<double>().ToArray();
        var m = new Dictionary<string, double>();
        if (values.Length <= maxParameters)
            for (int i = 0; i < values.Length; i++) m[$"theta_{i}"] = values[i];
        double l1 = 0, l2 = 0;
        foreach (var v in values) { l1 += Math.Abs(v); l2 += v * v; }
        m["theta_l1"] = l1;
        m["theta_l2"] = Math.Sqrt(l2);
        return m;
    }

    public void Dispose() { }
}
