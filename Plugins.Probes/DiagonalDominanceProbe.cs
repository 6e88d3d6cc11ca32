using Harness.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Probes;

/// <summary>
/// Diagonal dominance of the Hessian on small layers (Jiang et al., Appendix E): for every coordinate i of a layer weight
/// tensor with at most max_size entries, r_i = Σ_{j≠i} |H_ij| / |H_ii| — over the whole Hessian row (all parameters)
/// and over the layer's own block — reported as mean and median per layer (smaller = more diagonal). Exact: column i
/// of H is one Hessian-vector product H e_i. Cost: Σ (sizes of the qualifying layers) HVPs.
/// </summary>
public sealed class DiagonalDominanceProbePlugin : IProbePlugin
{
    public string Name => "diag_dominance";
    public string Description => "Mean/median of Σ_{j≠i}|H_ij|/|H_ii| over every coordinate of each small weight tensor (exact Hessian columns).";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } =
    [
        HyperparameterSpec.Integer("max_size", 1024, "weight tensors with at most this many entries are measured (one HVP per entry)", min: 1, max: 1_000_000),
    ];

    public IReadOnlyList<MetricSpec> MetricsFor(HyperparameterValues hp) => [];

    public IReadOnlyList<MetricSpec> MetricsFor(HyperparameterValues hp, IReadOnlyList<ModelParameter> parameters)
    {
        long max = hp.Integer("max_size");
        var result = new List<MetricSpec>();
        foreach (var layer in ProbeMath.LayerWeights(parameters).Where(l => l.Count <= max))
        {
            string k = layer.Key;
            result.Add(new($"diagdom_{k}_mean", $"mean over {layer.Name}'s coordinates of Σ_(j≠i)|H_ij| / |H_ii| (whole Hessian row)"));
            result.Add(new($"diagdom_{k}_median", $"median of the same ratio over {layer.Name}"));
            result.Add(new($"diagdom_{k}_block_mean", $"mean of Σ_(j≠i)|H_ij| / |H_ii| with j restricted to {layer.Name} (its diagonal block)"));
            result.Add(new($"diagdom_{k}_block_median", "median of the block ratio"));
        }
        return result;
    }

    public IProbe Create(HyperparameterValues hp) => new DiagonalDominanceProbe(hp.Integer("max_size"));
}

public sealed class DiagonalDominanceProbe(long maxSize) : IProbe
{
    public IReadOnlyDictionary<string, double> Measure(ProbeContext ctx)
    {
        ProbeMath.CheckAligned(ctx);
        using var scope = NewDisposeScope();
        var metrics = new Dictionary<string, double>();
        var layers = ProbeMath.LayerWeights(ctx.Model.Parameters).Where(l => l.Count <= maxSize).ToList();
        if (layers.Count == 0) return metrics;
        var p0 = ctx.Objective.Parameters[0];
        using var hessian = ctx.Objective.Hessian();
        foreach (var layer in layers)
        {
            var full = new double[layer.Count];
            var block = new double[layer.Count];
            for (long i = 0; i < layer.Count; i++)
            {
                using var s = NewDisposeScope();
                long gi = layer.Offset + i;
                var e = zeros(hessian.Dimension, dtype: p0.dtype, device: p0.device);
                e[gi] = 1.0;
                var column = hessian.Multiply(e).to(ScalarType.Float64).abs();
                double diag = column[gi].item<double>();
                double rowSum = column.sum().item<double>() - diag;
                double blockSum = column.narrow(0, layer.Offset, layer.Count).sum().item<double>() - diag;
                full[i] = rowSum / diag;
                block[i] = blockSum / diag;
            }
            string k = layer.Key;
            metrics[$"diagdom_{k}_mean"] = full.Average();
            metrics[$"diagdom_{k}_median"] = ProbeMath.Median(full);
            metrics[$"diagdom_{k}_block_mean"] = block.Average();
            metrics[$"diagdom_{k}_block_median"] = ProbeMath.Median(block);
        }
        return metrics;
    }

    public void Dispose() { }
}
