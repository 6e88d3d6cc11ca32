using System.Globalization;
using Harness.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Probes;

/// <summary>
/// R_med per layer (Jiang et al.): for each layer weight tensor, exact Hessian diagonal entries H_ii on a
/// fixed seeded sample of its coordinates, R_med = max_i |H_ii| / median_i |H_ii| (raw) and max/(median + eps_med)
/// (guarded); the sampled H_ii are kept in the trace (trace-only columns) so any statistic can be recomputed.
/// Exact per coordinate: H_ii = (H e_i)_i, one Hessian-vector product (one backward of the retained gradient graph)
/// per sampled coordinate — never a sum of one-hot directions, which would mix in off-diagonal entries.
/// Alignment (same samples): Spearman ρ(H_ii, |g_i|) with the probe-set gradient, and ρ(H_ii, |Δθ_i|) with the
/// optimizer's last update (the adaptive step it actually took; null at step 0).
/// Cost: coordinates × layers HVPs + 1 gradient evaluation.
/// </summary>
public sealed class RMedProbePlugin : IProbePlugin
{
    public string Name => "rmed";
    public string Description => "R_med = max|H_ii|/median|H_ii| per layer from exact sampled Hessian diagonals; Spearman alignment with |g| and the step.";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } =
    [
        HyperparameterSpec.Integer("coordinates", 200, "sampled coordinates per weight tensor (paper: 200); all of them if the tensor is smaller", min: 2, max: 100000),
        HyperparameterSpec.Real("eps_med", 1e-8, "guard added to the median in the guarded ratio", min: 0),
        HyperparameterSpec.Integer("seed", 0, "seed of the coordinate sample (the same sample at every step and in every run)", min: 0),
        HyperparameterSpec.Boolean("keep_samples", true, "write every sampled H_ii to the trace (trace-only columns rmed_<layer>_hii_<j>)"),
    ];

    public IReadOnlyList<MetricSpec> MetricsFor(HyperparameterValues hp) => [];

    public IReadOnlyList<MetricSpec> MetricsFor(HyperparameterValues hp, IReadOnlyList<ModelParameter> parameters)
    {
        int coords = (int)hp.Integer("coordinates");
        var result = new List<MetricSpec>();
        foreach (var layer in ProbeMath.LayerWeights(parameters))
        {
            string k = layer.Key;
            result.Add(new($"rmed_{k}", $"R_med of {layer.Name}: max|H_ii| / median|H_ii| over the sampled coordinates"));
            result.Add(new($"rmed_{k}_guarded", $"max|H_ii| / (median|H_ii| + eps_med) of {layer.Name}"));
            result.Add(new($"rmed_{k}_median", $"median |H_ii| of {layer.Name}'s sample"));
            result.Add(new($"rmed_{k}_max", $"max |H_ii| of {layer.Name}'s sample"));
            result.Add(new($"rmed_{k}_align_grad", $"Spearman ρ(H_ii, |g_i|) over {layer.Name}'s sample"));
            result.Add(new($"rmed_{k}_align_step", $"Spearman ρ(H_ii, |Δθ_i|) with the last update over {layer.Name}'s sample"));
            if (hp.Boolean("keep_samples"))
            {
                int n = (int)Math.Min(coords, layer.Count);
                for (int j = 0; j < n; j++)
                    result.Add(new(SampleColumn(k, j, n), $"sampled H_ii #{j} of {layer.Name} (coordinate {j}-th smallest of the fixed sample)") { TraceOnly = true });
            }
        }
        return result;
    }

    internal static string SampleColumn(string key, int j, int n) =>
        $"rmed_{key}_hii_{j.ToString(n > 1000 ? "D5" : n > 100 ? "D3" : "D2", CultureInfo.InvariantCulture)}";

    public IProbe Create(HyperparameterValues hp) =>
        new RMedProbe((int)hp.Integer("coordinates"), hp.Real("eps_med"), hp.Integer("seed"), hp.Boolean("keep_samples"));
}

public sealed class RMedProbe(int coordinates, double epsMed, long seed, bool keepSamples) : IProbe
{
    /// <summary>The coordinates (flat indices within the tensor) sampled in layer <paramref name="layerIndex"/>
    /// (its index in the parameter list) of <paramref name="count"/> entries.</summary>
    public long[] Sample(long count, int layerIndex) => ProbeMath.SampleCoordinates(count, coordinates, seed, layerIndex);

    /// <summary>H_ii for the given flat (whole-parameter-vector) indices, one HVP each: (H e_i)_i.</summary>
    public static double[] ExactDiagonal(ISymmetricOperator hessian, IReadOnlyList<long> flatIndices, ScalarType dtype, Device device)
    {
        var result = new double[flatIndices.Count];
        for (int j = 0; j < flatIndices.Count; j++)
        {
            using var s = NewDisposeScope();
            var e = zeros(hessian.Dimension, dtype: dtype, device: device);
            e[flatIndices[j]] = 1.0;
            var column = hessian.Multiply(e);
            result[j] = column[flatIndices[j]].to(ScalarType.Float64).item<double>();
        }
        return result;
    }

    public IReadOnlyDictionary<string, double> Measure(ProbeContext ctx)
    {
        ProbeMath.CheckAligned(ctx);
        using var scope = NewDisposeScope();
        var layers = ProbeMath.LayerWeights(ctx.Model.Parameters);
        var metrics = new Dictionary<string, double>();
        if (layers.Count == 0) return metrics;
        var p0 = ctx.Objective.Parameters[0];
        var grad = ProbeMath.ToArray(ProbeMath.Flat(ctx.Objective.Evaluate().Gradient));
        var step = ctx.PreviousUpdate is { } u ? ProbeMath.ToArray(ProbeMath.Flat(u)) : null;
        using var hessian = ctx.Objective.Hessian();
        foreach (var layer in layers)
        {
            var local = Sample(layer.Count, layer.Index);
            var flat = local.Select(i => layer.Offset + i).ToArray();
            var h = ExactDiagonal(hessian, flat, p0.dtype, p0.device);
            var abs = h.Select(Math.Abs).ToArray();
            double max = abs.Max(), median = ProbeMath.Median(abs);
            string k = layer.Key;
            metrics[$"rmed_{k}"] = max / median;
            metrics[$"rmed_{k}_guarded"] = max / (median + epsMed);
            metrics[$"rmed_{k}_median"] = median;
            metrics[$"rmed_{k}_max"] = max;
            metrics[$"rmed_{k}_align_grad"] = ProbeMath.Spearman(h, flat.Select(i => Math.Abs(grad[i])).ToArray());
            if (step is not null) metrics[$"rmed_{k}_align_step"] = ProbeMath.Spearman(h, flat.Select(i => Math.Abs(step[i])).ToArray());
            if (keepSamples)
                for (int j = 0; j < h.Length; j++) metrics[RMedProbePlugin.SampleColumn(k, j, h.Length)] = h[j];
        }
        return metrics;
    }

    public void Dispose() { }
}
