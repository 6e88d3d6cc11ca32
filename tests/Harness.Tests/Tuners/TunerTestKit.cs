using Harness.Abstractions;
using Harness.Host.Training;
using Harness.Plugins.Tuners;
using Harness.Tests.Optimizers;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Tests.Tuners;

using Math = System.Math;

/// <summary>f(θ) = ½ θᵀAθ with an explicit symmetric A, over float64 parameter tensors (θ split into tensors of
/// the given sizes); gradients, losses and Hessian-vector products in plain doubles.</summary>
public sealed class QuadraticObjective(IReadOnlyList<Tensor> parameters, double[,] a) : IObjective
{
    private Evaluation? _cached;
    public IReadOnlyList<Tensor> Parameters => parameters;
    public long ParameterCount => parameters.Sum(p => p.numel());
    public int GradientEvaluations { get; private set; }
    public int HessianProducts { get; private set; }
    public int LossEvaluations { get; private set; }

    public double[] Theta() => ArrayObjective.Read(parameters).SelectMany(x => x).ToArray();

    public static double[] Mul(double[,] a, double[] x)
    {
        int p = x.Length;
        var y = new double[p];
        for (int i = 0; i < p; i++) { double s = 0; for (int j = 0; j < p; j++) s += a[i, j] * x[j]; y[i] = s; }
        return y;
    }

    public static double Dot(double[] x, double[] y) { double s = 0; for (int i = 0; i < x.Length; i++) s += x[i] * y[i]; return s; }
    public static double Loss(double[,] a, double[] x) => 0.5 * Dot(x, Mul(a, x));

    private double[] Shifted(IReadOnlyList<Tensor> direction, double scale)
    {
        var x = Theta();
        var d = ArrayObjective.Read(direction).SelectMany(v => v).ToArray();
        for (int i = 0; i < x.Length; i++) x[i] += scale * d[i];
        return x;
    }

    private Evaluation At(double[] x)
    {
        GradientEvaluations++;
        var g = Mul(a, x);
        var list = new List<Tensor>();
        int o = 0;
        foreach (var p in parameters)
        {
            int n = (int)p.numel();
            list.Add(tensor(g[o..(o + n)], dtype: ScalarType.Float64).reshape(p.shape));
            o += n;
        }
        return new Evaluation(Loss(a, x), list);
    }

    public Evaluation Evaluate() => _cached ??= At(Theta());
    public void Invalidate() => _cached = null;
    public double LossAt(IReadOnlyList<Tensor> direction, double scale) { LossEvaluations++; return Loss(a, Shifted(direction, scale)); }
    public Evaluation EvaluateAt(IReadOnlyList<Tensor> direction, double scale) => At(Shifted(direction, scale));
    public IHessianOperator Hessian() => new Op(this, a);
    public Tensor PerSampleGradients(int maxSamples) => throw new NotSupportedException();

    private sealed class Op(QuadraticObjective owner, double[,] a) : IHessianOperator
    {
        public long Dimension => a.GetLength(0);
        public int Products { get; private set; }
        public Tensor Multiply(Tensor v)
        {
            Products++;
            owner.HessianProducts++;
            using var d = v.detach().to(ScalarType.Float64).contiguous();
            return tensor(Mul(a, d.data<double>().ToArray()), dtype: ScalarType.Float64);
        }
        public void Dispose() { }
    }
}

public static class TunerTestKit
{
    /// <summary>A = Qᵀ diag(λ) Q with Q orthogonal (Gram–Schmidt of a seeded Gaussian matrix): λ1(A) = max λ exactly
    /// up to rounding.</summary>
    public static double[,] Matrix(double[] lambdas, int seed)
    {
        int p = lambdas.Length;
        var rng = new Random(seed);
        var q = new double[p][];
        for (int i = 0; i < p; i++)
        {
            var v = Enumerable.Range(0, p).Select(_ => RefProblem.Normal(rng)).ToArray();
            for (int j = 0; j < i; j++)
            {
                double c = QuadraticObjective.Dot(v, q[j]);
                for (int k = 0; k < p; k++) v[k] -= c * q[j][k];
            }
            double n = Math.Sqrt(QuadraticObjective.Dot(v, v));
            q[i] = v.Select(x => x / n).ToArray();
        }
        var a = new double[p, p];
        for (int i = 0; i < p; i++)
            for (int j = 0; j < p; j++)
            {
                double s = 0;
                for (int k = 0; k < p; k++) s += q[k][i] * lambdas[k] * q[k][j];
                a[i, j] = s;
            }
        for (int i = 0; i < p; i++) for (int j = 0; j < i; j++) a[i, j] = a[j, i] = 0.5 * (a[i, j] + a[j, i]);
        return a;
    }

    /// <summary>Float64 parameters (tensors of sizes 2 and p−2) at a seeded Gaussian point.</summary>
    public static List<Tensor> Parameters(int p, int seed, double scale = 1)
    {
        var rng = new Random(seed);
        var x = Enumerable.Range(0, p).Select(_ => scale * RefProblem.Normal(rng)).ToArray();
        return
        [
            tensor(x[..2], dtype: ScalarType.Float64).requires_grad_(true).DetachFromDisposeScope(),
            tensor(x[2..], dtype: ScalarType.Float64).requires_grad_(true).DetachFromDisposeScope(),
        ];
    }

    public static IReadOnlyDictionary<string, ILearningRateTunerPlugin> Plugins { get; } =
        typeof(CdatPlugin).Assembly.GetTypes()
            .Where(t => typeof(ILearningRateTunerPlugin).IsAssignableFrom(t) && t is { IsClass: true, IsAbstract: false })
            .Select(t => (ILearningRateTunerPlugin)Activator.CreateInstance(t)!)
            .ToDictionary(p => p.Name);

    public static ILearningRateTuner Tuner(string name, IReadOnlyDictionary<string, object>? given = null) =>
        Plugins[name].Create(new HyperparameterValues(Plugins[name].Hyperparameters, given));

    /// <summary>GD (lr as given) wrapped by <paramref name="tuner"/>.</summary>
    public static TunedOptimizer Gd(IReadOnlyList<Tensor> parameters, ILearningRateTuner tuner, double lr = 0.1) =>
        new((IDirectionalOptimizer)OptimizerTestKit.Create("gd", parameters, new Dictionary<string, object> { ["lr"] = lr }), tuner);
}
