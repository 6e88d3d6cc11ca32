using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Abstractions.Numerics;

/// <summary>Settings of one Lanczos run.</summary>
/// <param name="MaxIterations">Krylov dimension limit (= operator products).</param>
/// <param name="RelativeTolerance">Stop when the residual of every wanted Ritz pair is below this times |λ|.</param>
/// <param name="TopK">How many of the largest algebraic eigenvalues must converge.</param>
/// <param name="Smallest">Also require the smallest algebraic eigenvalue to converge.</param>
public sealed record LanczosOptions(int MaxIterations = 30, double RelativeTolerance = 1e-3, int TopK = 1, bool Smallest = false)
{
    /// <summary>When true, the smallest pair converges once its residual is below RelativeTolerance·max(|λ_min|, |λ1|)
    /// (the operator's scale) rather than ·|λ_min|, which a λ_min near 0 never meets before MaxIterations.</summary>
    public bool SmallestRelativeToScale { get; init; }
}

/// <summary>An eigenpair estimate: Ritz value, unit Ritz vector, and residual ‖Av − λv‖ (from the Lanczos
/// recurrence, |β_j s_j|, which equals the true residual in exact arithmetic under full reorthogonalisation).</summary>
public sealed record RitzPair(double Value, Tensor Vector, double Residual);

public sealed record LanczosResult(
    /// <summary>Largest algebraic eigenvalues, descending (TopK of them, fewer if the space is smaller).</summary>
    IReadOnlyList<RitzPair> Top,
    /// <summary>Smallest algebraic eigenvalue, when requested.</summary>
    RitzPair? Bottom,
    int Iterations,
    bool Converged);

/// <summary>
/// Symmetric Lanczos with full reorthogonalisation (classical Gram–Schmidt applied twice). Returns the
/// largest *algebraic* eigenvalues (not largest magnitude: a Hessian with a large negative eigenvalue
/// still reports its largest positive one), optionally the smallest, with residuals and iteration count.
/// Warm start: pass the previous top vector as <c>start</c>.
/// </summary>
public static class Lanczos
{
    public static LanczosResult Run(ISymmetricOperator op, LanczosOptions options, Tensor? start = null, long seed = 0,
        ScalarType dtype = ScalarType.Float32, Device? device = null)
    {
        long n = op.Dimension;
        int maxIter = (int)Math.Min(options.MaxIterations, n);
        using var scope = NewDisposeScope();
        Tensor q;
        if (start is not null && start.numel() == n && NormOf(start) > 0)
            q = start.detach().clone().to(dtype);
        else
        {
            var gen = new Generator((ulong)seed);
            q = randn(n, dtype: dtype, device: device, generator: gen);
        }
        q = q.div(NormOf(q));
        // The Lanczos vectors are the rows of one matrix (capacity doubled as needed), so that reorthogonalising
        // against all of them is two matrix-vector products rather than 4j vector operations: the per-iteration
        // overhead stays a handful of tensor operations however many vectors there are.
        var basis = empty(Math.Min(8, maxIter), n, dtype: dtype, device: q.device);
        basis[0].copy_(q);
        var alphas = new List<double>();
        var betas = new List<double>();
        double prevBeta = 0;
        double[] evals = [];
        Tensor evecs = empty(0);
        bool converged = false;
        int iterations = 0;

        for (int j = 0; j < maxIter; j++)
        {
            iterations = j + 1;
            var qj = basis[j];
            var w = op.Multiply(qj).to(dtype);
            double alpha = ParameterVectors.Dot(qj, w);
            alphas.Add(alpha);
            w = w - alpha * qj;
            if (j > 0) w = w - prevBeta * basis[j - 1];
            var known = basis.narrow(0, 0, j + 1);
            Reorthogonalise(ref w, known);
            Reorthogonalise(ref w, known);
            double beta = NormOf(w);

            (evals, evecs) = TridiagonalEigen(alphas, betas);
            int m = evals.Length;
            bool invariant = beta <= 1e-12 * Math.Max(1.0, Math.Abs(evals[m - 1]));
            double scale = Math.Max(Math.Abs(evals[0]), Math.Abs(evals[m - 1]));
            var last = evecs[m - 1].data<double>().ToArray();
            converged = invariant || Wanted(options, m).All(i => beta * Math.Abs(last[i])
                                         <= options.RelativeTolerance * Math.Max(
                                             i == 0 && options.SmallestRelativeToScale ? scale : Math.Abs(evals[i]), 1e-30));
            if (converged || j == maxIter - 1)
            {
                var vectors = basis.narrow(0, 0, m);
                var top = new List<RitzPair>();
                for (int k = 0; k < Math.Min(options.TopK, m); k++)
                    top.Add(Pair(m - 1 - k, evals, evecs, vectors, invariant ? 0 : beta));
                var bottom = options.Smallest ? Pair(0, evals, evecs, vectors, invariant ? 0 : beta) : null;
                foreach (var p in top) p.Vector.MoveToOuterDisposeScope();
                bottom?.Vector.MoveToOuterDisposeScope();
                return new LanczosResult(top, bottom, iterations, converged);
            }
            betas.Add(beta);
            prevBeta = beta;
            if (j + 1 == basis.shape[0])
            {
                var grown = empty(Math.Min(2 * basis.shape[0], maxIter), n, dtype: dtype, device: basis.device);
                grown.narrow(0, 0, j + 1).copy_(basis);
                basis.Dispose();
                basis = grown;
            }
            basis[j + 1].copy_(w / beta);
        }
        throw new InvalidOperationException("unreachable: Lanczos loop exited without a result");
    }

    private static IEnumerable<int> Wanted(LanczosOptions o, int m)
    {
        for (int k = 0; k < Math.Min(o.TopK, m); k++) yield return m - 1 - k;
        if (o.Smallest) yield return 0;
    }

    private static RitzPair Pair(int i, double[] evals, Tensor evecs, Tensor vectors, double beta)
    {
        int m = evals.Length;
        var s = evecs[.., i];
        var v = s.to(vectors.dtype).matmul(vectors);
        v = v / NormOf(v);
        return new RitzPair(evals[i], v, beta * Math.Abs(s[m - 1].ToDouble()));
    }

    /// <summary>One pass of classical Gram–Schmidt against the rows of <paramref name="basis"/>: w ← w − Qᵀ(Q w).</summary>
    private static void Reorthogonalise(ref Tensor w, Tensor basis) => w = w - basis.T.mv(basis.mv(w));

    private static double NormOf(Tensor v)
    {
        using var n = v.to(ScalarType.Float64).norm();
        return n.ToDouble();
    }

    /// <summary>Eigen-decomposition of the symmetric tridiagonal matrix (ascending eigenvalues), in float64.</summary>
    private static (double[] values, Tensor vectors) TridiagonalEigen(List<double> alphas, List<double> betas)
    {
        int m = alphas.Count;
        var t = new double[m * m];
        for (int i = 0; i < m; i++)
        {
            t[i * m + i] = alphas[i];
            if (i + 1 < m) { t[i * m + i + 1] = betas[i]; t[(i + 1) * m + i] = betas[i]; }
        }
        var (l, v) = linalg.eigh(tensor(t, dtype: ScalarType.Float64).reshape(m, m));
        return (l.data<double>().ToArray(), v);
    }
}
