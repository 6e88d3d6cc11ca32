using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Abstractions.Numerics;

/// <summary>Settings of one Lanczos run.</summary>
/// <param name="MaxIterations">Limit on the basis size (= operator products), the check chains included.</param>
/// <param name="RelativeTolerance">A pair converges when its residual is below this times |λ|.</param>
/// <param name="TopK">How many of the largest algebraic eigenvalues must converge.</param>
/// <param name="Smallest">Also require the smallest algebraic eigenvalue to converge.</param>
public sealed record LanczosOptions(int MaxIterations = 30, double RelativeTolerance = 1e-3, int TopK = 1, bool Smallest = false)
{
    /// <summary>When true, the smallest pair converges once its residual is below RelativeTolerance·max(|λ_min|, |λ1|)
    /// (the operator's scale) rather than ·|λ_min|, which a λ_min near 0 never meets before MaxIterations.</summary>
    public bool SmallestRelativeToScale { get; init; }
}

/// <summary>An eigenpair estimate: Ritz value, unit Ritz vector, and residual ‖Av − λv‖ (from the recurrence:
/// equal to the true residual in exact arithmetic under full reorthogonalisation).</summary>
public sealed record RitzPair(double Value, Tensor Vector, double Residual);

public sealed record LanczosResult(
    /// <summary>Largest algebraic eigenvalues, descending (TopK of them, fewer only if the operator is smaller).</summary>
    IReadOnlyList<RitzPair> Top,
    /// <summary>Smallest algebraic eigenvalue, when requested.</summary>
    RitzPair? Bottom,
    int Iterations,
    bool Converged)
{
    /// <summary>Chains started from a fresh random direction (check chains and restarts after an invariant subspace).</summary>
    public int FreshChains { get; init; }
}

/// <summary>
/// Symmetric Lanczos with full reorthogonalisation (classical Gram–Schmidt applied twice) and Rayleigh–Ritz on the
/// whole basis. Returns the largest *algebraic* eigenvalues (not largest magnitude: a Hessian with a large negative
/// eigenvalue still reports its largest positive one), optionally the smallest, with residuals and iteration count.
/// Warm start: pass the previous top vector as <c>start</c>.
/// <para>Stopping rule. A small residual certifies an eigenpair, not the largest one: a start vector with little
/// weight on v1 yields a converged λ2 long before λ1 appears. So convergence of the wanted pairs (every residual ≤
/// tolerance·|λ|) is not the end: it starts a <b>check chain</b> from a fresh random direction orthogonal to the
/// whole basis — Lanczos on the operator deflated by the space found so far, where a missed λ1 is no longer hidden
/// behind the converged λ2. The run stops when the check chain's own top pair (and bottom pair, for λ_min) has
/// converged to tolerance·(operator scale) and the wanted values did not move by more than their tolerance. If they
/// moved, the check chain found something: it continues as a normal chain until the wanted pairs converge again,
/// then another fresh check chain follows. An invariant subspace (breakdown, e.g. a warm start that is an exact
/// eigenvector) also continues with a fresh random direction. Without a completed check, the result is not
/// converged. One iteration = one operator product; the check chains count.</para>
/// </summary>
public static class Lanczos
{
    public static LanczosResult Run(ISymmetricOperator op, LanczosOptions options, Tensor? start = null, long seed = 0,
        ScalarType dtype = ScalarType.Float32, Device? device = null)
    {
        long n = op.Dimension;
        int maxIter = (int)Math.Min(options.MaxIterations, n);
        int topK = (int)Math.Min(options.TopK, n);
        // Basis size before the wanted set can be complete: λ_min must not be one of the top k.
        int need = (int)Math.Min(n, options.TopK + (options.Smallest ? 1 : 0));
        double tol = options.RelativeTolerance;
        double eps = dtype == ScalarType.Float64 ? 2.2e-16 : 1.2e-7;
        using var scope = NewDisposeScope();
        using var gen = new Generator((ulong)seed);
        Tensor q;
        if (start is not null && start.numel() == n && NormOf(start) > 0)
            q = Normalised(start.detach().reshape(n).to(dtype).clone());
        else
            q = Normalised(randn(n, dtype: dtype, device: device, generator: gen));
        var dev = q.device;

        // The basis vectors are the rows of one matrix (capacity doubled as needed), so that reorthogonalising against
        // all of them is two matrix-vector products. H = QᵀAQ is assembled from the Gram–Schmidt coefficients.
        var basis = empty(Math.Min(8, maxIter), n, dtype: dtype, device: dev);
        basis[0].copy_(q);
        var h = new double[maxIter, maxIter];
        // Remainders not turned into the next basis vector (where a fresh chain started), kept orthogonal to the basis:
        // with the current remainder r_j they give AQ − QH, hence every Ritz pair's residual.
        var leaks = new List<(int Column, Tensor Vector)>();
        int chainStart = 0;          // first basis index of the current chain
        bool checking = false;       // the current chain is a check chain
        bool recovering = false;     // a check was interrupted: expand with residual vectors until the wanted pairs converge
        double[] reference = [];     // wanted values when the check chain started
        int fresh = 0;

        for (int j = 0; j < maxIter; j++)
        {
            int m = j + 1;
            var qj = basis[j];
            var w = op.Multiply(qj).to(dtype);
            double productNorm = NormOf(w);
            var known = basis.narrow(0, 0, m);
            var c1 = known.mv(w);
            w = w - known.T.mv(c1);
            var c2 = known.mv(w);
            w = w - known.T.mv(c2);
            double[] coef;
            using (var one = 1.0.ToScalar())
                coef = c1.add(c2, one).to(ScalarType.Float64).cpu().data<double>().ToArray();
            for (int i = 0; i < m; i++) h[i, j] = h[j, i] = coef[i];
            double beta = NormOf(w);

            var (evals, evecs) = SymmetricEigen(h, 0, m);
            double scale = Math.Max(Math.Abs(evals[0]), Math.Abs(evals[m - 1]));
            var gram = LeakGram(leaks, w);
            var residual = new double[m];
            foreach (int i in Wanted(options, m)) residual[i] = Residual(evecs, i, m, leaks, gram);

            double Allowed(int i) => tol * Math.Max(i == 0 && options.Smallest && options.SmallestRelativeToScale ? scale : Math.Abs(evals[i]), 1e-300);
            bool wantedConverged = m >= need && Wanted(options, m).All(i => residual[i] <= Allowed(i));
            var values = WantedValues(options, evals, topK);
            // A wanted value moved when it changed by more than its own convergence tolerance.
            bool moved = checking && values.Select((v, k) => Math.Abs(v - reference[k]) > tol * Math.Max(
                k == topK && options.SmallestRelativeToScale ? scale : Math.Abs(reference[k]), 1e-300)).Any(b => b);
            bool exhausted = m == n;
            bool breakdown = beta <= 64 * eps * Math.Max(productNorm, scale);

            bool done = false, converged = false;
            if (exhausted) { done = true; converged = wantedConverged; }
            else if (checking && moved) { checking = false; recovering = true; } // the check found something: converge it, then check again
            else if (checking)
            {
                // The check chain is Lanczos on the deflated operator: its block of H is tridiagonal and its residuals
                // are β·|last component|.
                int len = m - chainStart;
                var (_, cvec) = SymmetricEigen(h, chainStart, len);
                double chainTol = tol * Math.Max(scale, 1e-300);
                bool topDone = beta * Math.Abs(cvec[len - 1, len - 1]) <= chainTol;
                bool bottomDone = !options.Smallest || (len >= 2 || breakdown) && beta * Math.Abs(cvec[len - 1, 0]) <= chainTol;
                if (topDone && bottomDone && wantedConverged) { done = true; converged = true; }
                else if (topDone && bottomDone) { checking = false; recovering = true; }
            }
            if (!done && j == maxIter - 1) done = true;
            if (done)
                return Result(options, topK, evals, evecs, residual, basis.narrow(0, 0, m), m, converged, fresh);

            // Next basis vector: the Lanczos continuation, or a fresh random direction orthogonal to the basis.
            bool startCheck = !checking && wantedConverged;
            if (wantedConverged) recovering = false;
            Tensor next;
            if (startCheck || breakdown)
            {
                if (!breakdown) leaks.Add((j, w.clone()));
                var z = randn(n, dtype: dtype, device: dev, generator: gen);
                z = z - known.T.mv(known.mv(z));
                z = z - known.T.mv(known.mv(z));
                next = Normalised(z);
                chainStart = m;
                fresh++;
                if (startCheck) { checking = true; reference = values; }
            }
            else if (recovering && leaks.Count > 0)
            {
                // The remainders of earlier chains are not in the basis, so continuing the current chain need not reduce
                // the residual of a wanted pair built from several chains: expand with the residual vector (AQ − QH)y of
                // the worst one (what a Lanczos step does for a single chain) and keep the current remainder as a leak.
                int worst = Wanted(options, m).MaxBy(i => residual[i] / Allowed(i));
                var ry = LeakCombination(evecs, worst, m, leaks, w);
                leaks.Add((j, w.clone()));
                ry = ry - known.T.mv(known.mv(ry));
                next = Normalised(ry);
            }
            else next = Normalised(w);
            foreach (var (_, leak) in leaks)
            {
                using var c = ParameterVectors.Dot(next, leak).ToScalar();
                leak.sub_(next.mul(c));
            }
            if (m == basis.shape[0])
            {
                var grown = empty(Math.Min(2 * basis.shape[0], maxIter), n, dtype: dtype, device: dev);
                grown.narrow(0, 0, m).copy_(basis);
                basis.Dispose();
                basis = grown;
            }
            basis[m].copy_(next);
        }
        throw new InvalidOperationException("unreachable: Lanczos loop exited without a result");
    }

    private static IEnumerable<int> Wanted(LanczosOptions o, int m)
    {
        for (int k = 0; k < Math.Min(o.TopK, m); k++) yield return m - 1 - k;
        if (o.Smallest) yield return 0;
    }

    private static double[] WantedValues(LanczosOptions o, double[] evals, int topK)
    {
        int m = evals.Length;
        var v = new List<double>();
        for (int k = 0; k < topK; k++) v.Add(k < m ? evals[m - 1 - k] : double.NaN);
        if (o.Smallest) v.Add(evals[0]);
        return v.ToArray();
    }

    private static LanczosResult Result(LanczosOptions o, int topK, double[] evals, double[,] evecs, double[] residual,
        Tensor vectors, int m, bool converged, int fresh)
    {
        var top = new List<RitzPair>();
        for (int k = 0; k < Math.Min(topK, m); k++) top.Add(Pair(m - 1 - k, evals, evecs, residual, vectors));
        var bottom = o.Smallest ? Pair(0, evals, evecs, residual, vectors) : null;
        foreach (var p in top) p.Vector.MoveToOuterDisposeScope();
        bottom?.Vector.MoveToOuterDisposeScope();
        return new LanczosResult(top, bottom, m, converged) { FreshChains = fresh };
    }

    private static RitzPair Pair(int i, double[] evals, double[,] evecs, double[] residual, Tensor vectors)
    {
        int m = evals.Length;
        var s = new double[m];
        for (int r = 0; r < m; r++) s[r] = evecs[r, i];
        var v = tensor(s, dtype: ScalarType.Float64, device: vectors.device).to(vectors.dtype).matmul(vectors);
        return new RitzPair(evals[i], Normalised(v), residual[i]);
    }

    /// <summary>‖(AQ − QH) y‖ for the Ritz vector y = column i: only the leaks and the current remainder contribute.</summary>
    private static double Residual(double[,] evecs, int i, int m, List<(int Column, Tensor Vector)> leaks, double[,] gram)
    {
        int l = leaks.Count;
        var y = new double[l + 1];
        for (int a = 0; a < l; a++) y[a] = evecs[leaks[a].Column, i];
        y[l] = evecs[m - 1, i];
        double s = 0;
        for (int a = 0; a <= l; a++)
            for (int b = 0; b <= l; b++) s += y[a] * gram[a, b] * y[b];
        return Math.Sqrt(Math.Max(s, 0));
    }

    /// <summary>(AQ − QH) y for the Ritz vector y = column i.</summary>
    private static Tensor LeakCombination(double[,] evecs, int i, int m, List<(int Column, Tensor Vector)> leaks, Tensor remainder)
    {
        using var last = evecs[m - 1, i].ToScalar();
        using var one = 1.0.ToScalar();
        var r = remainder.mul(last);
        foreach (var (column, leak) in leaks)
        {
            using var c = evecs[column, i].ToScalar();
            r = r.add(leak.mul(c), one);
        }
        return r;
    }

    private static double[,] LeakGram(List<(int Column, Tensor Vector)> leaks, Tensor remainder)
    {
        int l = leaks.Count;
        var g = new double[l + 1, l + 1];
        Tensor V(int a) => a < l ? leaks[a].Vector : remainder;
        for (int a = 0; a <= l; a++)
            for (int b = a; b <= l; b++) g[a, b] = g[b, a] = ParameterVectors.Dot(V(a), V(b));
        return g;
    }

    private static Tensor Normalised(Tensor v)
    {
        using var s = NormOf(v).ToScalar();
        return v.div(s);
    }

    private static double NormOf(Tensor v)
    {
        using var n = v.to(ScalarType.Float64).norm();
        return n.ReadDouble();
    }

    /// <summary>Eigen-decomposition (ascending) of the symmetric block h[from.., from..] of size m, in float64;
    /// eigenvectors as columns.</summary>
    private static (double[] values, double[,] vectors) SymmetricEigen(double[,] h, int from, int m)
    {
        var t = new double[m * m];
        for (int i = 0; i < m; i++)
            for (int k = 0; k < m; k++) t[i * m + k] = h[from + i, from + k];
        using var scope = NewDisposeScope();
        var (l, v) = linalg.eigh(tensor(t, dtype: ScalarType.Float64).reshape(m, m));
        var flat = v.contiguous().data<double>().ToArray();
        var vectors = new double[m, m];
        for (int i = 0; i < m; i++)
            for (int k = 0; k < m; k++) vectors[i, k] = flat[i * m + k];
        return (l.data<double>().ToArray(), vectors);
    }
}
