using Harness.Abstractions.Numerics;
using Harness.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Host.Conformance;

/// <summary>
/// The small test problems of the conformance gate, as <see cref="IObjective"/>s with closed-form gradients and
/// Hessians in float64 (no model, no autograd: fast and exact). Parameters are leaf tensors with requires_grad, like
/// a model's, so an optimizer that forgets no_grad fails here as it would in a run.
/// </summary>
internal abstract class GateObjective : IObjective, IDisposable
{
    private readonly Tensor[] _params;
    private Evaluation? _cached;

    protected GateObjective(IEnumerable<Tensor> initial)
    {
        _params = initial.Select(t => t.detach().clone().to(ScalarType.Float64).requires_grad_(true).DetachFromDisposeScope()).ToArray();
        ParameterCount = _params.Sum(p => p.numel());
    }

    public IReadOnlyList<Tensor> Parameters => _params;
    public long ParameterCount { get; }
    public int GradientEvaluations { get; private set; }

    /// <summary>f, ∇f at a flat point x (length p).</summary>
    protected abstract (double loss, Tensor grad) LossAndGradient(Tensor x);
    protected abstract Tensor HessianAt(Tensor x);

    private Tensor Flat(IReadOnlyList<Tensor>? direction = null, double scale = 0)
    {
        using var _ = no_grad();
        var x = cat(_params.Select(p => p.detach().reshape(-1)).ToArray());
        if (direction is not null && scale != 0)
        {
            using var alpha = scale.ToScalar();
            x = x.add(cat(direction.Select(d => d.detach().to(ScalarType.Float64).reshape(-1)).ToArray()), alpha);
        }
        return x;
    }

    private Evaluation EvaluateFlat(Tensor x)
    {
        GradientEvaluations++;
        using var _ = no_grad();
        var (loss, g) = LossAndGradient(x);
        var parts = new Tensor[_params.Length];
        long offset = 0;
        for (int i = 0; i < parts.Length; i++)
        {
            long n = _params[i].numel();
            parts[i] = g.narrow(0, offset, n).reshape(_params[i].shape).clone();
            offset += n;
        }
        return new Evaluation(loss, parts);
    }

    public Evaluation Evaluate() => _cached ??= EvaluateFlat(Flat());
    public void Invalidate() => _cached = null;
    public double Loss => Evaluate().Loss;
    public double LossAt(IReadOnlyList<Tensor> direction, double scale) { using var _ = no_grad(); return LossAndGradient(Flat(direction, scale)).loss; }
    public Evaluation EvaluateAt(IReadOnlyList<Tensor> direction, double scale) => EvaluateFlat(Flat(direction, scale));
    public IHessianOperator Hessian() => new MatrixOperator(HessianAt(Flat()));
    public Tensor PerSampleGradients(int maxSamples) => cat(Evaluate().Gradient.Select(g => g.reshape(-1)).ToArray()).unsqueeze(0);

    /// <summary>θ as float64 bit patterns, for bit-identity checks.</summary>
    public long[] Bits()
    {
        using var _ = no_grad();
        using var x = Flat();
        return x.data<double>().ToArray().Select(BitConverter.DoubleToInt64Bits).ToArray();
    }

    public virtual void Dispose() { foreach (var p in _params) p.Dispose(); }

    private sealed class MatrixOperator(Tensor h) : IHessianOperator
    {
        public long Dimension => h.shape[0];
        public int Products { get; private set; }
        public Tensor Multiply(Tensor v) { Products++; return h.mv(v.to(ScalarType.Float64)).to(v.dtype); }
        public void Dispose() => h.Dispose();
    }
}

/// <summary>f(θ) = ½ θᵀAθ over a 3×4 matrix and a 5-vector (p = 17), A = Q diag(λ) Qᵀ with λ geometric in
/// [1, 4] and Q a seeded random rotation; θ0 ~ 0.2·N(0, 1).</summary>
internal sealed class GateQuadratic : GateObjective
{
    private readonly Tensor _a;

    private GateQuadratic(IEnumerable<Tensor> initial, Tensor a) : base(initial) => _a = a;

    public static GateQuadratic Create(long seed)
    {
        using var scope = NewDisposeScope();
        var gen = new torch.Generator((ulong)seed);
        const int p = 17;
        var lambda = tensor(Enumerable.Range(0, p).Select(i => Math.Pow(4, i / (p - 1.0))).ToArray(), dtype: ScalarType.Float64);
        var (q, _) = linalg.qr(randn(p, p, dtype: ScalarType.Float64, generator: gen));
        var a = q.matmul(diag(lambda)).matmul(q.T);
        using var one = 1.0.ToScalar();
        using var half = 0.5.ToScalar();
        using var small = 0.2.ToScalar();
        a = a.add(a.T, one).mul(half).DetachFromDisposeScope();
        var w = randn(3, 4, dtype: ScalarType.Float64, generator: gen).mul(small);
        var b = randn(5, dtype: ScalarType.Float64, generator: gen).mul(small);
        return new GateQuadratic([w, b], a);
    }

    protected override (double, Tensor) LossAndGradient(Tensor x)
    {
        var g = _a.mv(x);
        return (0.5 * x.dot(g).ReadDouble(), g);
    }

    protected override Tensor HessianAt(Tensor x) => _a.clone();

    internal (double, Tensor) LossAndGradientOf(Tensor x) => LossAndGradient(x);
    internal Tensor HessianOf(Tensor x) => HessianAt(x);

    public override void Dispose() { base.Dispose(); _a.Dispose(); }
}

/// <summary>f(x, y) = 0.1·((1 − x)² + 100(y − x²)²) from (−1.2, 1), one 2-vector parameter. The factor 0.1 keeps
/// λ1(H) ≈ 150 at the start, so momentum methods at PyTorch's default η = 1e-3 are stable.</summary>
internal sealed class GateRosenbrock() : GateObjective([tensor(new[] { -1.2, 1.0 }, dtype: ScalarType.Float64)])
{
    private const double Scale = 0.1;

    protected override (double, Tensor) LossAndGradient(Tensor v)
    {
        var d = v.data<double>().ToArray();
        double x = d[0], y = d[1], r = y - x * x;
        double f = Scale * ((1 - x) * (1 - x) + 100 * r * r);
        var g = tensor(new[] { Scale * (-2 * (1 - x) - 400 * x * r), Scale * 200 * r }, dtype: ScalarType.Float64);
        return (f, g);
    }

    protected override Tensor HessianAt(Tensor v)
    {
        var d = v.data<double>().ToArray();
        double x = d[0], y = d[1];
        return tensor(new[] { Scale * (2 - 400 * y + 1200 * x * x), Scale * -400 * x, Scale * -400 * x, Scale * 200 }, dtype: ScalarType.Float64).reshape(2, 2);
    }
}

/// <summary>f(θ) = ½λθ², one parameter of one element: one eigen-direction, for the threshold-boundary check.</summary>
internal sealed class GateLine(double lambda, double theta0) : GateObjective([tensor(new[] { theta0 }, dtype: ScalarType.Float64)])
{
    public double Lambda { get; } = lambda;

    protected override (double, Tensor) LossAndGradient(Tensor v)
    {
        double x = v.data<double>()[0];
        return (0.5 * Lambda * x * x, tensor(new[] { Lambda * x }, dtype: ScalarType.Float64));
    }

    protected override Tensor HessianAt(Tensor v) => tensor(new[] { Lambda }, dtype: ScalarType.Float64).reshape(1, 1);

    /// <summary>θ now.</summary>
    public double Theta
    {
        get
        {
            using var _ = no_grad();
            return Parameters[0].detach().to(ScalarType.Float64).data<double>()[0];
        }
    }
}
