using Harness.Abstractions;
using Harness.Abstractions.Numerics;
using Harness.Host.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Tests.Probes;

using Math = System.Math;

/// <summary>f(θ) = ½ θᵀAθ + bᵀθ in float64 with a given symmetric A (its Hessian, exactly).</summary>
public sealed class ExplicitQuadratic : IModel
{
    private readonly Tensor _theta, _a, _b;

    public ExplicitQuadratic(double[,] a, double[] theta, double[]? b = null, bool layerWeight = false)
    {
        int n = theta.Length;
        _a = tensor(a, dtype: ScalarType.Float64).DetachFromDisposeScope();
        _b = (b is null ? zeros(n, dtype: ScalarType.Float64) : tensor(b, dtype: ScalarType.Float64)).DetachFromDisposeScope();
        _theta = tensor(theta, dtype: ScalarType.Float64).requires_grad_(true).DetachFromDisposeScope();
        Parameters = [new ModelParameter("theta", _theta, layerWeight)];
    }

    public Tensor A => _a;
    public IReadOnlyList<ModelParameter> Parameters { get; }
    public Tensor Loss(Dataset batch) => 0.5 * _theta.dot(_a.mv(_theta)) + _b.dot(_theta);
    public double? Accuracy(Dataset batch) => null;
    public Dataset Train { get; } = new(null, null, 1);
    public Dataset? Test => null;
    public void Dispose() { _theta.Dispose(); _a.Dispose(); _b.Dispose(); }
}

/// <summary>Cattaneo et al.'s two-parameter toy: E = ½(y − θ1 θ2 x)², x = 2, y = 1.5.</summary>
public sealed class ToyModel : IModel
{
    public const double X = 2, Y = 1.5;
    private readonly Tensor _theta;

    public ToyModel(double t1, double t2)
    {
        _theta = tensor(new[] { t1, t2 }, dtype: ScalarType.Float64).requires_grad_(true).DetachFromDisposeScope();
        Parameters = [new ModelParameter("theta", _theta, false)];
    }

    public IReadOnlyList<ModelParameter> Parameters { get; }
    public Tensor Loss(Dataset batch) => 0.5 * (Y - _theta[0] * _theta[1] * X).square();
    public double? Accuracy(Dataset batch) => null;
    public Dataset Train { get; } = new(null, null, 1);
    public Dataset? Test => null;
    public void Dispose() => _theta.Dispose();
}

/// <summary>docs/science.md §5's two-layer linear net f(x) = W2 W1 x (d_x = h = d, d_y = 1) on exactly whitened inputs
/// ((1/N) XᵀX = I), loss ½·mean (f(x) − y)².</summary>
public sealed class TwoLayerLinear : IModel
{
    public TwoLayerLinear(int d, int n, long seed)
    {
        var gen = new Generator((ulong)seed);
        using (var scope = NewDisposeScope())
        {
            var (q, _) = linalg.qr(randn(n, d, dtype: ScalarType.Float64, generator: gen));
            var x = (q * Math.Sqrt(n)).MoveToOuterDisposeScope();
            var y = randn(n, dtype: ScalarType.Float64, generator: gen).MoveToOuterDisposeScope();
            Train = new Dataset(x.DetachFromDisposeScope(), y.DetachFromDisposeScope(), n);
        }
        W1 = randn(d, d, dtype: ScalarType.Float64, generator: gen).requires_grad_(true).DetachFromDisposeScope();
        W2 = randn(1, d, dtype: ScalarType.Float64, generator: gen).requires_grad_(true).DetachFromDisposeScope();
        Parameters = [new ModelParameter("w1.weight", W1, true), new ModelParameter("w2.weight", W2, true)];
    }

    public Tensor W1 { get; }
    public Tensor W2 { get; }
    public IReadOnlyList<ModelParameter> Parameters { get; }
    public Tensor Loss(Dataset batch) => 0.5 * (batch.Inputs!.matmul(W1.T).matmul(W2.T).squeeze(1) - batch.Targets!).square().mean();
    public double? Accuracy(Dataset batch) => null;
    public Dataset Train { get; }
    public Dataset? Test => null;
    public void Dispose() { W1.Dispose(); W2.Dispose(); Train.Inputs!.Dispose(); Train.Targets!.Dispose(); }
}

/// <summary>A small tanh MLP 3 → 4 → 2 with biases, MSE on random targets, float64.</summary>
public sealed class TinyMlp : IModel
{
    private readonly Tensor[] _p;

    public TinyMlp(long seed, int n = 7)
    {
        var gen = new Generator((ulong)seed);
        Tensor R(params long[] shape) => (randn(shape, dtype: ScalarType.Float64, generator: gen) * 0.8).requires_grad_(true).DetachFromDisposeScope();
        _p = [R(4, 3), R(4), R(2, 4), R(2)];
        Parameters =
        [
            new("layer0.weight", _p[0], true), new("layer0.bias", _p[1], false),
            new("layer1.weight", _p[2], true), new("layer1.bias", _p[3], false),
        ];
        Train = new Dataset(randn(n, 3, dtype: ScalarType.Float64, generator: gen).DetachFromDisposeScope(),
            randn(n, 2, dtype: ScalarType.Float64, generator: gen).DetachFromDisposeScope(), n);
    }

    public IReadOnlyList<ModelParameter> Parameters { get; }
    public Tensor Loss(Dataset batch)
    {
        var h = nn.functional.linear(batch.Inputs!, _p[0], _p[1]).tanh();
        var o = nn.functional.linear(h, _p[2], _p[3]);
        return 0.5 * (o - batch.Targets!).square().sum(1).mean();
    }
    public double? Accuracy(Dataset batch) => null;
    public Dataset Train { get; }
    public Dataset? Test => null;
    public void Dispose() { foreach (var t in _p) t.Dispose(); Train.Inputs!.Dispose(); Train.Targets!.Dispose(); }
}

/// <summary>Preconditioned GD with a fixed diagonal P (or none): θ −= η P^-1 g; threshold from the momentum kind.</summary>
public sealed class FixedPreconditionerOptimizer(IReadOnlyList<Tensor> parameters, double lr, IReadOnlyList<double[]>? p,
    MomentumKind momentum = MomentumKind.None, double beta = 0) : IOptimizer
{
    public double LearningRate { get; set; } = lr;
    public MomentumKind Momentum => momentum;
    public double MomentumCoefficient => beta;
    public double StabilityThreshold => Abstractions.StabilityThreshold.For(momentum, LearningRate, beta);

    public IReadOnlyList<Tensor>? Preconditioner =>
        p?.Select((v, i) => tensor(v, dtype: parameters[i].dtype).view(parameters[i].shape)).ToList();

    public StepResult Step(IObjective objective)
    {
        var eval = objective.Evaluate();
        using (no_grad())
            for (int i = 0; i < parameters.Count; i++)
            {
                var g = eval.Gradient[i];
                if (p is not null) g = g / tensor(p[i], dtype: g.dtype).view(g.shape);
                parameters[i].sub_(g * LearningRate);
            }
        objective.Invalidate();
        return new StepResult(eval.Loss);
    }

    public OptimizerState ExportState() => new();
    public void ImportState(OptimizerState state) { }
    public void Dispose() { }
}

public static class ProbeTestSupport
{
    /// <summary>Explicit Hessian (p×p, float64) by double loops of autograd: row i = ∂(∂f/∂θ_i)/∂θ — a code path
    /// independent of the Hessian-vector product (no vector-Jacobian product with a direction).</summary>
    public static double[,] ExplicitHessian(IModel model, Dataset? batch = null)
    {
        var ps = model.Parameters.Select(p => p.Tensor).ToArray();
        using var scope = NewDisposeScope();
        using var _ = enable_grad();
        var loss = model.Loss(batch ?? model.Train);
        var grads = autograd.grad([loss], ps, retain_graph: true, create_graph: true);
        var g = cat(grads.Select(t => t.reshape(-1)).ToArray());
        int n = (int)g.shape[0];
        var h = new double[n, n];
        for (int i = 0; i < n; i++)
        {
            var row = autograd.grad([g[i]], ps, retain_graph: true, allow_unused: true);
            int k = 0;
            for (int j = 0; j < ps.Length; j++)
            {
                var r = row[j] is null || row[j].IsInvalid ? zeros_like(ps[j]) : row[j];
                foreach (var v in r.reshape(-1).data<double>()) h[i, k++] = v;
            }
        }
        return h;
    }

    public static double[] Flat(IReadOnlyList<Tensor> tensors) => ParameterVectors.Flatten(tensors.Select(t => t.detach()).ToList()).data<double>().ToArray();

    /// <summary>Ascending eigenvalues of a symmetric matrix (float64 LAPACK).</summary>
    public static double[] Eigenvalues(double[,] m)
    {
        using var t = tensor(m, dtype: ScalarType.Float64);
        using var e = linalg.eigvalsh((t + t.T) / 2);
        return e.data<double>().ToArray();
    }

    public static double[,] Scale(double[,] h, double[] d)
    {
        int n = d.Length;
        var r = new double[n, n];
        for (int i = 0; i < n; i++) for (int j = 0; j < n; j++) r[i, j] = d[i] * h[i, j] * d[j];
        return r;
    }

    public static ProbeContext Context(IModel model, IOptimizer optimizer, long step = 0, IDictionary<string, object>? shared = null,
        IReadOnlyList<Tensor>? initial = null, IReadOnlyList<Tensor>? previousUpdate = null, IReadOnlyList<Tensor>? before = null) =>
        new(new TorchObjective(model, model.Train), optimizer, model, step,
            initial ?? model.Parameters.Select(p => p.Tensor.detach().clone()).ToList(), previousUpdate,
            shared ?? new Dictionary<string, object>()) { UpdateBeforePrevious = before };

    public static IReadOnlyDictionary<string, double> Measure(IProbePlugin plugin, IReadOnlyDictionary<string, object>? hp, ProbeContext ctx,
        out IReadOnlyList<MetricSpec> declared)
    {
        var values = new HyperparameterValues(plugin.Hyperparameters, hp);
        declared = plugin.MetricsFor(values, ctx.Model.Parameters);
        using var probe = plugin.Create(values);
        var result = probe.Measure(ctx);
        var names = declared.Select(m => m.Name).ToHashSet();
        foreach (var key in result.Keys)
            Assert.IsTrue(names.Contains(key), $"{plugin.Name} emitted undeclared metric {key}");
        return result;
    }

    public static IReadOnlyDictionary<string, double> Measure(IProbePlugin plugin, IReadOnlyDictionary<string, object>? hp, ProbeContext ctx) =>
        Measure(plugin, hp, ctx, out _);

    public static void AreClose(double expected, double actual, double rel, string what)
    {
        double err = Math.Abs(expected - actual);
        Assert.IsTrue(err <= rel * Math.Max(Math.Abs(expected), 1e-300),
            $"{what}: expected {expected:R}, got {actual:R} (relative error {err / Math.Max(Math.Abs(expected), 1e-300):E2} > {rel:E0})");
    }
}
