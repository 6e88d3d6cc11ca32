using System.Text;
using Harness.Abstractions;
using Harness.Abstractions.Numerics;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Probes;

/// <summary>A weight tensor a per-layer probe reports on: its index in the parameter list, its offset in the flat
/// parameter vector, and its metric key (the parameter name sanitized to [a-z0-9_]).</summary>
public sealed record LayerSlice(int Index, string Name, string Key, long Offset, long Count);

/// <summary>Small numerical helpers shared by the probes (float64 on the host, no allocation surprises).</summary>
public static class ProbeMath
{
    /// <summary>A metric-name fragment from a parameter name: lower case, every run of characters outside [a-z0-9]
    /// becomes one '_', no leading/trailing '_' ("layer0.weight" → "layer0_weight").</summary>
    public static string Sanitize(string name)
    {
        var sb = new StringBuilder(name.Length);
        foreach (char ch in name.ToLowerInvariant())
        {
            bool ok = ch is >= 'a' and <= 'z' or >= '0' and <= '9';
            if (ok) sb.Append(ch);
            else if (sb.Length > 0 && sb[^1] != '_') sb.Append('_');
        }
        var s = sb.ToString().Trim('_');
        return s.Length == 0 ? "param" : s;
    }

    /// <summary>The layer weights (IsLayerWeight) with their flat offsets and unique sanitized keys.</summary>
    public static IReadOnlyList<LayerSlice> LayerWeights(IReadOnlyList<ModelParameter> parameters)
    {
        var result = new List<LayerSlice>();
        var used = new HashSet<string>(StringComparer.Ordinal);
        long offset = 0;
        for (int i = 0; i < parameters.Count; i++)
        {
            long n = parameters[i].Tensor.numel();
            if (parameters[i].IsLayerWeight)
            {
                string key = Sanitize(parameters[i].Name), unique = key;
                for (int k = 2; !used.Add(unique); k++) unique = $"{key}_{k}";
                result.Add(new LayerSlice(i, parameters[i].Name, unique, offset, n));
            }
            offset += n;
        }
        return result;
    }

    /// <summary>A fixed sample of <paramref name="count"/> distinct coordinates of 0..n−1 (all of them when count ≥ n),
    /// ascending, from a SplitMix64 stream seeded by (seed, stream): a partial Fisher–Yates shuffle. The same
    /// arguments give the same sample on every machine and in every run.</summary>
    public static long[] SampleCoordinates(long n, int count, long seed, int stream)
    {
        if (count >= n) return Enumerable.Range(0, (int)n).Select(i => (long)i).ToArray();
        ulong state = (ulong)seed * 0x9E3779B97F4A7C15UL ^ ((ulong)stream + 1) * 0xD1B54A32D192ED03UL;
        var swapped = new Dictionary<long, long>();
        var result = new long[count];
        for (int i = 0; i < count; i++)
        {
            long j = i + (long)(NextUInt64(ref state) % (ulong)(n - i));
            long vi = swapped.TryGetValue(i, out var a) ? a : i;
            long vj = swapped.TryGetValue(j, out var b) ? b : j;
            result[i] = vj;
            swapped[j] = vi;
        }
        Array.Sort(result);
        return result;
    }

    private static ulong NextUInt64(ref ulong state)
    {
        ulong z = state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Spearman's rank correlation (average ranks for ties); NaN when either side is constant or n &lt; 2.</summary>
    public static double Spearman(IReadOnlyList<double> x, IReadOnlyList<double> y)
    {
        if (x.Count != y.Count) throw new ArgumentException("Spearman: the samples differ in length");
        if (x.Count < 2) return double.NaN;
        return Pearson(Ranks(x), Ranks(y));
    }

    public static double[] Ranks(IReadOnlyList<double> v)
    {
        var order = Enumerable.Range(0, v.Count).OrderBy(i => v[i]).ToArray();
        var ranks = new double[v.Count];
        for (int i = 0; i < order.Length;)
        {
            int j = i;
            while (j + 1 < order.Length && v[order[j + 1]] == v[order[i]]) j++;
            double r = (i + j) / 2.0 + 1;
            for (int k = i; k <= j; k++) ranks[order[k]] = r;
            i = j + 1;
        }
        return ranks;
    }

    public static double Pearson(IReadOnlyList<double> x, IReadOnlyList<double> y)
    {
        double mx = x.Average(), my = y.Average(), sxy = 0, sxx = 0, syy = 0;
        for (int i = 0; i < x.Count; i++)
        {
            double dx = x[i] - mx, dy = y[i] - my;
            sxy += dx * dy; sxx += dx * dx; syy += dy * dy;
        }
        return sxx == 0 || syy == 0 ? double.NaN : sxy / Math.Sqrt(sxx * syy);
    }

    /// <summary>The q-quantile (0 ≤ q ≤ 1) of ascending values, linear interpolation between order statistics at
    /// position q·(n−1) (numpy's default).</summary>
    public static double Quantile(IReadOnlyList<double> sorted, double q)
    {
        if (sorted.Count == 0) return double.NaN;
        double pos = q * (sorted.Count - 1);
        int lo = (int)Math.Floor(pos), hi = Math.Min(lo + 1, sorted.Count - 1);
        return sorted[lo] + (pos - lo) * (sorted[hi] - sorted[lo]);
    }

    public static double Median(IEnumerable<double> values)
    {
        var s = values.ToArray();
        Array.Sort(s);
        return Quantile(s, 0.5);
    }

    /// <summary>A flat tensor as float64 values on the host.</summary>
    public static double[] ToArray(Tensor flat)
    {
        using var d = flat.detach().reshape(-1).to(ScalarType.Float64).cpu();
        return d.data<double>().ToArray();
    }

    /// <summary>The flat parameter vector of a per-tensor list (same order as the objective's parameters).</summary>
    public static Tensor Flat(IReadOnlyList<Tensor> tensors) => ParameterVectors.Flatten(tensors.Select(t => t.detach()).ToList());

    /// <summary>cos(a, b) in float64; NaN when either is zero.</summary>
    public static double Cosine(Tensor a, Tensor b)
    {
        double na = Math.Sqrt(ParameterVectors.Dot(a, a)), nb = Math.Sqrt(ParameterVectors.Dot(b, b));
        return na == 0 || nb == 0 ? double.NaN : ParameterVectors.Dot(a, b) / (na * nb);
    }

    /// <summary>Checks that the objective's parameters are the model's, in order (flat offsets depend on it).</summary>
    public static void CheckAligned(ProbeContext ctx)
    {
        var mp = ctx.Model.Parameters;
        var op = ctx.Objective.Parameters;
        if (mp.Count != op.Count) throw new InvalidOperationException($"the objective has {op.Count} parameter tensors, the model {mp.Count}");
        for (int i = 0; i < mp.Count; i++)
            if (mp[i].Tensor.numel() != op[i].numel()) throw new InvalidOperationException($"parameter {mp[i].Name}: sizes of model and objective differ");
    }
}

/// <summary>Upward crossings of 1 by an edge ratio between consecutive measurements of one probe.</summary>
public sealed class CrossingDetector
{
    private double? _previous;

    /// <summary>1 when the previous measured ratio was &lt; 1 and this one is ≥ 1, else 0 (0 at the first measurement).</summary>
    public double Observe(double ratio)
    {
        bool up = _previous is { } p && p < 1 && ratio >= 1;
        if (double.IsFinite(ratio)) _previous = ratio;
        return up ? 1 : 0;
    }

    public void Export(ProbeState state, string key)
    {
        if (_previous is { } p) state.Values[key] = p;
    }

    public void Import(ProbeState state, string key) =>
        _previous = state.Values.TryGetValue(key, out var p) ? p : null;
}
