using Harness.Abstractions;
using Harness.Plugins.Optimizers;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Tests.Optimizers;

using Math = System.Math;

/// <summary>
/// A random smooth problem in plain doubles, shared by the optimizer under test (through <see cref="ArrayObjective"/>)
/// and the hand-written float64 references: f(θ) = ½ xᵀAx + bᵀx + (c/4) Σ x⁴ over the flattened parameters x, plus a
/// seeded per-step gradient noise σ ξ_t (so gradient signs vary and AMSGrad's max matters). Both sides get the
/// bit-identical gradient for the same θ; only the update arithmetic differs.
/// </summary>
public sealed class RefProblem
{
    public long[][] Shapes { get; }
    public int Dimension { get; }
    private readonly double[,] _a;
    private readonly double[] _b;
    private readonly double _c, _noise;
    private readonly int _seed;
    public double[][] Initial { get; }

    public RefProblem(int seed, long[][]? shapes = null, double noise = 0.3, double quartic = 0.05)
    {
        _seed = seed;
        Shapes = shapes ?? [[3, 4], [5], [2, 3, 2]];
        Dimension = Shapes.Sum(s => (int)s.Aggregate(1L, (x, y) => x * y));
        var rng = new Random(seed);
        int p = Dimension;
        // A = M Mᵀ / p + 0.1 I: symmetric positive definite, eigenvalues roughly in [0.1, 4].
        var m = new double[p, p];
        for (int i = 0; i < p; i++) for (int j = 0; j < p; j++) m[i, j] = Normal(rng);
        _a = new double[p, p];
        for (int i = 0; i < p; i++)
            for (int j = 0; j < p; j++)
            {
                double s = 0;
                for (int k = 0; k < p; k++) s += m[i, k] * m[j, k];
                _a[i, j] = s / p + (i == j ? 0.1 : 0);
            }
        _b = Enumerable.Range(0, p).Select(_ => 0.5 * Normal(rng)).ToArray();
        _c = quartic;
        _noise = noise;
        Initial = Shapes.Select(s => Enumerable.Range(0, (int)s.Aggregate(1L, (x, y) => x * y)).Select(_ => Normal(rng)).ToArray()).ToArray();
    }

    public static double Normal(Random rng)
    {
        double u1 = 1 - rng.NextDouble(), u2 = rng.NextDouble();
        return Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }

    /// <summary>Loss and (noisy) gradient at θ for step t.</summary>
    public (double loss, double[][] grad) Evaluate(double[][] theta, long t)
    {
        var x = theta.SelectMany(a => a).ToArray();
        int p = Dimension;
        var g = new double[p];
        double f = 0;
        var rng = new Random(_seed * 7919 + (int)t);
        for (int i = 0; i < p; i++)
        {
            double ax = 0;
            for (int j = 0; j < p; j++) ax += _a[i, j] * x[j];
            f += 0.5 * x[i] * ax + _b[i] * x[i] + 0.25 * _c * x[i] * x[i] * x[i] * x[i];
            g[i] = ax + _b[i] + _c * x[i] * x[i] * x[i] + _noise * Normal(rng);
        }
        var grad = new double[theta.Length][];
        int o = 0;
        for (int k = 0; k < theta.Length; k++) { grad[k] = g[o..(o + theta[k].Length)]; o += theta[k].Length; }
        return (f, grad);
    }

    /// <summary>Fresh float64 parameter tensors at the initial point (requires_grad, like a model's).</summary>
    public List<Tensor> Parameters() =>
        Initial.Select((a, i) => tensor(a, dtype: ScalarType.Float64).reshape(Shapes[i]).requires_grad_(true).DetachFromDisposeScope()).ToList();

    public double[][] InitialCopy() => Initial.Select(a => (double[])a.Clone()).ToArray();
}

/// <summary>The problem as an <see cref="IObjective"/> over torch parameters; <see cref="T"/> selects the noise.</summary>
public sealed class ArrayObjective(IReadOnlyList<Tensor> parameters, RefProblem problem) : IObjective
{
    private Evaluation? _cached;
    public long T { get; set; } = 1;
    public IReadOnlyList<Tensor> Parameters => parameters;
    public long ParameterCount => parameters.Sum(p => p.numel());
    public int GradientEvaluations { get; private set; }

    public static double[][] Read(IReadOnlyList<Tensor> tensors) =>
        tensors.Select(p => { using var d = p.detach().to(ScalarType.Float64).contiguous(); return d.data<double>().ToArray(); }).ToArray();

    public Evaluation Evaluate()
    {
        if (_cached is not null) return _cached;
        GradientEvaluations++;
        var (loss, grad) = problem.Evaluate(Read(parameters), T);
        return _cached = new Evaluation(loss, grad.Select((g, i) => tensor(g, dtype: ScalarType.Float64).reshape(parameters[i].shape)).ToList());
    }

    public void Invalidate() => _cached = null;
    public double LossAt(IReadOnlyList<Tensor> direction, double scale) => throw new NotSupportedException();
    public Evaluation EvaluateAt(IReadOnlyList<Tensor> direction, double scale) => throw new NotSupportedException();
    public IHessianOperator Hessian() => throw new NotSupportedException();
    public Tensor PerSampleGradients(int maxSamples) => throw new NotSupportedException();
}

public static class OptimizerTestKit
{
    /// <summary>Every built-in optimizer plugin by name (direct instances; loading through the folder is tested separately).</summary>
    public static IReadOnlyDictionary<string, IOptimizerPlugin> Plugins { get; } =
        typeof(OptimizerBase).Assembly.GetTypes()
            .Where(t => typeof(IOptimizerPlugin).IsAssignableFrom(t) && t is { IsClass: true, IsAbstract: false })
            .Select(t => (IOptimizerPlugin)Activator.CreateInstance(t)!)
            .ToDictionary(p => p.Name);

    public static HyperparameterValues Values(string optimizer, IReadOnlyDictionary<string, object>? given = null) =>
        new(Plugins[optimizer].Hyperparameters, given);

    public static IOptimizer Create(string optimizer, IReadOnlyList<Tensor> parameters, IReadOnlyDictionary<string, object>? given = null) =>
        Plugins[optimizer].Create(parameters, Values(optimizer, given));

    /// <summary>max_i |x_i − r_i| / max_i |r_i| over one tensor.</summary>
    public static double RelativeError(double[] x, double[] r)
    {
        double diff = 0, scale = 0;
        for (int i = 0; i < r.Length; i++) { diff = Math.Max(diff, Math.Abs(x[i] - r[i])); scale = Math.Max(scale, Math.Abs(r[i])); }
        return scale == 0 ? diff : diff / scale;
    }

    public static long[] Bits(IReadOnlyList<Tensor> tensors) =>
        ArrayObjective.Read(tensors).SelectMany(a => a).Select(BitConverter.DoubleToInt64Bits).ToArray();
}
