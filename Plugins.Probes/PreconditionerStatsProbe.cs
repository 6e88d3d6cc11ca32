using Harness.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Probes;

/// <summary>Percentiles of the optimizer's diagonal preconditioner P over all p entries (min, 0.1 %, 1 %, 5 %, 50 %,
/// 99 %, max; linear interpolation between order statistics). Nothing for an optimizer without a preconditioner.
/// Cost: O(p log p), no gradient.</summary>
public sealed class PreconditionerStatsProbePlugin : IProbePlugin
{
    public static readonly (string Suffix, double Q, string Doc)[] Levels =
    [
        ("min", 0, "smallest entry of P"),
        ("q001", 0.001, "0.1 % percentile of P"),
        ("q01", 0.01, "1 % percentile of P"),
        ("q05", 0.05, "5 % percentile of P"),
        ("q50", 0.5, "median of P"),
        ("q99", 0.99, "99 % percentile of P"),
        ("max", 1, "largest entry of P"),
    ];

    public string Name => "preconditioner";
    public string Description => "Percentiles of the optimizer's preconditioner P (min, 0.1%, 1%, 5%, 50%, 99%, max).";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } = [];

    public IReadOnlyList<MetricSpec> MetricsFor(HyperparameterValues hp) =>
        Levels.Select(l => new MetricSpec($"precond_p_{l.Suffix}", l.Doc)).ToList();

    public IProbe Create(HyperparameterValues hp) => new PreconditionerStatsProbe();
}

public sealed class PreconditionerStatsProbe : IProbe
{
    public IReadOnlyDictionary<string, double> Measure(ProbeContext ctx)
    {
        using var scope = NewDisposeScope();
        var m = new Dictionary<string, double>();
        if (ctx.Optimizer.Preconditioner is not { } p) return m;
        var values = ProbeMath.ToArray(ProbeMath.Flat(p));
        Array.Sort(values);
        foreach (var (suffix, q, _) in PreconditionerStatsProbePlugin.Levels)
            m[$"precond_p_{suffix}"] = ProbeMath.Quantile(values, q);
        return m;
    }

    public void Dispose() { }
}
