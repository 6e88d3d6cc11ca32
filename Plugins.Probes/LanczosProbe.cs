using Harness.Abstractions;
using Harness.Abstractions.Numerics;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Probes;

/// <summary>The Lanczos settings shared by the eigenvalue probes, and the warm-start vector one probe keeps
/// between measurements.</summary>
internal sealed class LanczosProbe(LanczosOptions options, bool warmStart, long seed) : IDisposable
{
    public static IReadOnlyList<HyperparameterSpec> Schema(int defaultTopK = 1, bool defaultSmallest = false) =>
    [
        HyperparameterSpec.Integer("max_iterations", 40, "Lanczos iterations at most, the check chain included (each is one Hessian-vector product)", min: 1, max: 1000),
        HyperparameterSpec.Real("tolerance", 1e-3, "a pair converges when its residual ‖Av − λv‖ is below tolerance·|λ| (λ_min: tolerance·max(|λ_min|, |λ1|)); see the stopping rule in docs/probes.md", min: 0, minExclusive: true),
        HyperparameterSpec.Boolean("warm_start", true, "start from the previous measurement's top vector"),
        HyperparameterSpec.Integer("seed", 0, "seed of the random start vector", min: 0),
        HyperparameterSpec.Integer("top_k", defaultTopK, "how many of the largest algebraic eigenvalues to report", min: 1, max: 50),
        HyperparameterSpec.Boolean("smallest", defaultSmallest, "also report the smallest algebraic eigenvalue λ_min (negative = saddle direction)"),
    ];

    /// <summary>The settings; λ_min's residual is judged against tolerance·max(|λ_min|, |λ1|) (the operator's scale).</summary>
    public static LanczosOptions Options(HyperparameterValues hp) =>
        new((int)hp.Integer("max_iterations"), hp.Real("tolerance"), (int)hp.Integer("top_k"), hp.Boolean("smallest")) { SmallestRelativeToScale = true };

    public static LanczosProbe Create(HyperparameterValues hp) => new(Options(hp), hp.Boolean("warm_start"), hp.Integer("seed"));

    public LanczosOptions Settings => options;

    private Tensor? _previous;
    private Tensor? _published;
    private long _publishedStep;

    /// <summary>Runs Lanczos. When <paramref name="publishTo"/> is given, the top Ritz vector is published there under
    /// <see cref="ProbeBlackboard.TopEigenvector"/> with its step (this probe owns it until the next run or disposal).</summary>
    public LanczosResult Run(ISymmetricOperator op, IObjective objective, long step = 0, IDictionary<string, object>? publishTo = null)
    {
        var p0 = objective.Parameters[0];
        if (_previous is not null && _previous.device != p0.device)
        {
            var moved = _previous.to(p0.device).DetachFromDisposeScope();
            _previous.Dispose();
            _previous = moved;
        }
        var result = Lanczos.Run(op, options, warmStart ? _previous : null, seed, p0.dtype, p0.device);
        if (warmStart)
        {
            _previous?.Dispose();
            _previous = result.Top[0].Vector.detach().clone().DetachFromDisposeScope();
        }
        if (publishTo is not null)
        {
            var old = _published;
            _published = result.Top[0].Vector.detach().clone().DetachFromDisposeScope();
            publishTo[ProbeBlackboard.TopEigenvector] = _published;
            _publishedStep = step;
            publishTo[ProbeBlackboard.TopEigenvectorStep] = step;
            old?.Dispose();
        }
        return result;
    }

    /// <summary>Saves the warm-start vector under <paramref name="prefix"/> (nothing before the first measurement).</summary>
    public void Export(ProbeState state, string prefix)
    {
        if (_previous is not null) state.Tensors[prefix + "warm_start"] = _previous;
        if (_published is not null)
        {
            state.Tensors[prefix + "published"] = _published;
            state.Values[prefix + "published_step"] = _publishedStep;
        }
    }

    /// <summary>Restores the warm-start vector and, given the blackboard, re-publishes the top vector there.</summary>
    public void Import(ProbeState state, string prefix, IDictionary<string, object>? publishTo = null)
    {
        if (warmStart && state.Tensors.TryGetValue(prefix + "warm_start", out var v))
        {
            _previous?.Dispose();
            _previous = v.detach().clone().DetachFromDisposeScope();
        }
        if (publishTo is not null && state.Tensors.TryGetValue(prefix + "published", out var published)
            && state.Values.TryGetValue(prefix + "published_step", out var step))
        {
            _published?.Dispose();
            _published = published.detach().clone().DetachFromDisposeScope();
            _publishedStep = (long)step;
            publishTo[ProbeBlackboard.TopEigenvector] = _published;
            publishTo[ProbeBlackboard.TopEigenvectorStep] = _publishedStep;
        }
    }

    public void Dispose()
    {
        _previous?.Dispose();
        _published?.Dispose();
    }
}

/// <summary>Metric names and values of one Lanczos spectrum measurement under a prefix.</summary>
internal static class SpectrumMetrics
{
    public static IEnumerable<MetricSpec> For(string prefix, string op, LanczosOptions o)
    {
        yield return new(prefix, $"largest algebraic eigenvalue λ1 of {op}");
        for (int k = 2; k <= o.TopK; k++) yield return new($"{prefix}_top{k}", $"λ{k} of {op} (k-th largest algebraic)");
        if (o.Smallest)
        {
            yield return new($"{prefix}_min", $"smallest algebraic eigenvalue λ_min of {op} (negative = saddle direction)");
            yield return new($"{prefix}_min_residual", "Lanczos residual ‖Av − λv‖ of the λ_min pair");
        }
        yield return new($"{prefix}_residual", "Lanczos residual ‖Av − λv‖ of the top pair");
        yield return new($"{prefix}_iterations", "Lanczos iterations (= operator products = Hessian-vector products)") { Type = MetricType.Int64 };
        yield return new($"{prefix}_converged", "true when every wanted pair met the tolerance") { Type = MetricType.Boolean };
    }

    public static void Write(IDictionary<string, double> m, string prefix, LanczosResult r)
    {
        m[prefix] = r.Top[0].Value;
        for (int k = 1; k < r.Top.Count; k++) m[$"{prefix}_top{k + 1}"] = r.Top[k].Value;
        if (r.Bottom is { } b)
        {
            m[$"{prefix}_min"] = b.Value;
            m[$"{prefix}_min_residual"] = b.Residual;
        }
        m[$"{prefix}_residual"] = r.Top[0].Residual;
        m[$"{prefix}_iterations"] = r.Iterations;
        m[$"{prefix}_converged"] = r.Converged ? 1 : 0;
    }

    public static SpectrumEstimate Estimate(long step, LanczosResult r) =>
        new(step, r.Top.Select(p => p.Value).ToArray(), r.Bottom?.Value, r.Top[0].Residual, r.Converged);
}
