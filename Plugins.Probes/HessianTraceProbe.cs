using Harness.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Probes;

/// <summary>Hessian trace by Hutchinson's estimator with Rademacher vectors: tr H ≈ (1/m) Σ zᵀHz, z_i = ±1.
/// The vectors come from a generator seeded anew at every measurement (the same m vectors each time, so the time
/// series is not blurred by fresh sampling noise). Stops when the standard error of the mean falls below
/// tolerance·|mean| (after min_samples) or at samples. Cost: one HVP per sample.</summary>
public sealed class HessianTraceProbePlugin : IProbePlugin
{
    public string Name => "hessian_trace";
    public string Description => "tr H by Hutchinson (Rademacher), with its standard error and sample count.";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } =
    [
        HyperparameterSpec.Integer("samples", 100, "Rademacher vectors at most (one Hessian-vector product each)", min: 1, max: 100000),
        HyperparameterSpec.Integer("min_samples", 10, "vectors before the tolerance may stop the estimate", min: 2, max: 100000),
        HyperparameterSpec.Real("tolerance", 0.01, "stop when standard error ≤ tolerance·|estimate| (0 = always use every sample)", min: 0),
        HyperparameterSpec.Integer("seed", 0, "seed of the Rademacher vectors", min: 0),
    ];

    public IReadOnlyList<MetricSpec> MetricsFor(HyperparameterValues hp) =>
    [
        new("hutchinson_trace", "Hutchinson estimate of tr H on the probe set"),
        new("hutchinson_stderr", "standard error of the estimate (sample std of zᵀHz / sqrt(samples))"),
        new("hutchinson_samples", "Rademacher vectors used (= Hessian-vector products)") { Type = MetricType.Int64 },
    ];

    public IProbe Create(HyperparameterValues hp) =>
        new HessianTraceProbe((int)hp.Integer("samples"), (int)hp.Integer("min_samples"), hp.Real("tolerance"), hp.Integer("seed"));
}

public sealed class HessianTraceProbe(int samples, int minSamples, double tolerance, long seed) : IProbe
{
    public IReadOnlyDictionary<string, double> Measure(ProbeContext ctx)
    {
        using var scope = NewDisposeScope();
        using var hessian = ctx.Objective.Hessian();
        var p0 = ctx.Objective.Parameters[0];
        var gen = new Generator((ulong)seed);
        var (trace, stderr, used) = Estimate(hessian, samples, minSamples, tolerance, gen, p0.dtype, p0.device);
        return new Dictionary<string, double>
        {
            ["hutchinson_trace"] = trace,
            ["hutchinson_stderr"] = stderr,
            ["hutchinson_samples"] = used,
        };
    }

    /// <summary>Hutchinson with Rademacher vectors; returns (mean, standard error, samples used).</summary>
    public static (double Trace, double StdErr, int Samples) Estimate(ISymmetricOperator op, int samples, int minSamples, double tolerance,
        Generator gen, ScalarType dtype, Device device)
    {
        double mean = 0, m2 = 0;
        int n = 0;
        using var two = 2.ToScalar();
        using var one = 1.ToScalar();
        while (n < samples)
        {
            using var s = NewDisposeScope();
            var z = randint(0, 2, [op.Dimension], dtype: ScalarType.Float64, device: device, generator: gen).mul_(two).sub_(one).to(dtype);
            double q = Harness.Abstractions.Numerics.ParameterVectors.Dot(z, op.Multiply(z));
            n++;
            double delta = q - mean;       // Welford
            mean += delta / n;
            m2 += delta * (q - mean);
            if (n >= Math.Max(2, minSamples) && tolerance > 0 && Math.Sqrt(m2 / (n - 1) / n) <= tolerance * Math.Abs(mean)) break;
        }
        double stderr = n > 1 ? Math.Sqrt(m2 / (n - 1) / n) : double.NaN;
        return (mean, stderr, n);
    }

    public void Dispose() { }
}
