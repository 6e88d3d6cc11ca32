using System.Numerics;
using System.Runtime.CompilerServices;

namespace Harness.Abstractions;

/// <summary>
/// Numerical stability thresholds of linear update rules (<see cref="ThresholdRule.LinearRecurrence"/>). On one
/// eigen-direction of a quadratic, a linear optimizer's state evolves as s_{t+1} = M(x) s_t with x = η·λ; the
/// iteration diverges once the spectral radius ρ(M(x)) exceeds 1. The critical step x* is the smallest x &gt; 0 with
/// ρ(M(x)) &gt; 1, and the threshold on λ is x*/η, for any η. Eigenvalues come from the characteristic polynomial
/// (Faddeev–LeVerrier) and its roots (Aberth–Ehrlich), in float64.
/// </summary>
public static class LinearRecurrence
{
    /// <summary>The scan starts here (thresholds below 1e-6/η are not searched) ...</summary>
    public const double MinStep = 1e-6;
    /// <summary>... and ends here: a recurrence still stable at x = 1e8 has no finite threshold (+∞).</summary>
    public const double MaxStep = 1e8;
    /// <summary>ρ above 1 + this counts as divergent (a few ulps: the roots of a simple eigenvalue are accurate to ~1e-16).</summary>
    private const double Margin = 1e-14;
    /// <summary>Ratio of the coarse geometric grid (an unstable window narrower than 5% between two stable grid
    /// points would be missed; no linear method known to us has one).</summary>
    private const double GridRatio = 1.05;

    private sealed record Cached(double[] Signature, double Step);
    private static readonly ConditionalWeakTable<IOptimizer, Cached> Cache = new();

    /// <summary>x* for a matrix function: the smallest x in [<see cref="MinStep"/>, <see cref="MaxStep"/>] with
    /// ρ(M(x)) &gt; 1, to full float64 precision; +∞ when there is none.</summary>
    public static double CriticalStep(Func<double, double[,]> matrix)
    {
        double lo = 0, x = MinStep;
        while (x <= MaxStep)
        {
            if (Unstable(matrix, x)) break;
            lo = x;
            x *= GridRatio;
        }
        if (x > MaxStep) return double.PositiveInfinity;
        double hi = x;
        for (int i = 0; i < 200 && hi - lo > 1e-16 * hi; i++)
        {
            double mid = 0.5 * (lo + hi);
            if (Unstable(matrix, mid)) hi = mid; else lo = mid;
        }
        return hi;
    }

    /// <summary>x* of an optimizer that declares <see cref="ThresholdRule.LinearRecurrence"/>, cached per instance
    /// until its matrix changes (checked at two sample points each call, so hyperparameters that change with the
    /// step are followed).</summary>
    public static double CriticalStep(IOptimizer optimizer)
    {
        var signature = Signature(optimizer);
        if (Cache.TryGetValue(optimizer, out var c) && c.Signature.AsSpan().SequenceEqual(signature)) return c.Step;
        double step = CriticalStep(x => Checked(optimizer, x));
        Cache.AddOrUpdate(optimizer, new Cached(signature, step));
        return step;
    }

    /// <summary>The threshold x*/η at the optimizer's current η, or NaN when the recurrence has no finite one. A
    /// plugin declaring <see cref="ThresholdRule.LinearRecurrence"/> returns this from
    /// <see cref="IOptimizer.StabilityThreshold"/>.</summary>
    public static double Threshold(IOptimizer optimizer)
    {
        double x = CriticalStep(optimizer);
        return double.IsFinite(x) ? x / optimizer.LearningRate : double.NaN;
    }

    /// <summary>The per-direction update matrix of one of the five momentum kinds of <see cref="MomentumKind"/>, in
    /// the state (θ, η·m), at x = η·λ (the recurrences whose thresholds <see cref="StabilityThreshold.For"/> gives in
    /// closed form).</summary>
    public static double[,] Momentum(MomentumKind kind, double beta, double x) => kind switch
    {
        MomentumKind.None => new[,] { { 1 - x } },
        MomentumKind.Standard => new[,] { { 1 - x, -beta }, { x, beta } },
        MomentumKind.Ema => new[,] { { 1 - (1 - beta) * x, -beta }, { (1 - beta) * x, beta } },
        MomentumKind.StandardNesterov => new[,] { { 1 - (1 + beta) * x, -beta * beta }, { x, beta } },
        MomentumKind.EmaNesterov => new[,] { { 1 - (1 - beta * beta) * x, -beta * beta }, { (1 - beta) * x, beta } },
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "only the five momentum kinds have a fixed recurrence"),
    };

    private static double[] Signature(IOptimizer optimizer)
    {
        var a = Checked(optimizer, 0.37);
        var b = Checked(optimizer, 1.91);
        return [.. a.Cast<double>(), .. b.Cast<double>()];
    }

    private static double[,] Checked(IOptimizer optimizer, double x)
    {
        var m = optimizer.UpdateMatrix(x)
            ?? throw new InvalidOperationException($"{optimizer.GetType().Name} declares ThresholdRule.LinearRecurrence but UpdateMatrix({x}) returned null");
        int n = m.GetLength(0);
        if (n == 0 || m.GetLength(1) != n)
            throw new InvalidOperationException($"{optimizer.GetType().Name}.UpdateMatrix({x}) is {m.GetLength(0)}×{m.GetLength(1)}, not a non-empty square matrix");
        foreach (var v in m)
            if (!double.IsFinite(v))
                throw new InvalidOperationException($"{optimizer.GetType().Name}.UpdateMatrix({x}) has a non-finite entry {v}");
        return m;
    }

    private static bool Unstable(Func<double, double[,]> matrix, double x) => SpectralRadius(matrix(x)) > 1 + Margin;

    /// <summary>max |μ| over the eigenvalues μ of a real square matrix.</summary>
    public static double SpectralRadius(double[,] m) => Eigenvalues(m).Max(z => z.Magnitude);

    /// <summary>The eigenvalues of a small real square matrix (n ≤ 12), as roots of its characteristic polynomial.</summary>
    public static Complex[] Eigenvalues(double[,] m)
    {
        int n = m.GetLength(0);
        if (m.GetLength(1) != n || n == 0) throw new ArgumentException("a non-empty square matrix is required");
        if (n > 12) throw new ArgumentException($"{n}×{n}: the characteristic-polynomial method is for small recurrences (n ≤ 12)");
        return Roots(CharacteristicPolynomial(m));
    }

    /// <summary>Coefficients c[0..n] of det(μI − M) = μ^n + c[1]μ^(n−1) + … + c[n] (c[0] = 1), Faddeev–LeVerrier.</summary>
    public static double[] CharacteristicPolynomial(double[,] m)
    {
        int n = m.GetLength(0);
        var c = new double[n + 1];
        c[0] = 1;
        var mk = new double[n, n];          // M_0 = 0
        var am = new double[n, n];
        for (int k = 1; k <= n; k++)
        {
            // M_k = A M_{k−1} + c_{k−1} I;  c_k = −tr(A M_k)/k
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++)
                    am[i, j] = mk[i, j] + (i == j ? c[k - 1] : 0);
            var next = new double[n, n];
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++)
                {
                    double s = 0;
                    for (int l = 0; l < n; l++) s += m[i, l] * am[l, j];
                    next[i, j] = s;
                }
            mk = next;
            double tr = 0;
            for (int i = 0; i < n; i++) tr += mk[i, i];
            c[k] = -tr / k;
        }
        return c;
    }

    /// <summary>All roots of the monic polynomial c[0]μ^n + … + c[n] (Aberth–Ehrlich, then Newton polishing).</summary>
    private static Complex[] Roots(double[] c)
    {
        int n = c.Length - 1;
        if (n == 1) return [new Complex(-c[1], 0)];
        if (n == 2)
        {
            // Stable quadratic formula.
            double b = c[1], q = c[2], disc = b * b - 4 * q;
            if (disc >= 0)
            {
                double r = -0.5 * (b + Math.CopySign(Math.Sqrt(disc), b));
                return r == 0 ? [Complex.Zero, new Complex(-b, 0)] : [new Complex(r, 0), new Complex(q / r, 0)];
            }
            return [new Complex(-b / 2, Math.Sqrt(-disc) / 2), new Complex(-b / 2, -Math.Sqrt(-disc) / 2)];
        }
        double radius = 1 + Enumerable.Range(1, n).Max(i => Math.Abs(c[i]));   // Cauchy bound
        var z = new Complex[n];
        for (int k = 0; k < n; k++) z[k] = Complex.FromPolarCoordinates(radius * 0.5, 2 * Math.PI * k / n + 0.4);
        for (int iter = 0; iter < 500; iter++)
        {
            double change = 0;
            for (int k = 0; k < n; k++)
            {
                var (p, dp) = Evaluate(c, z[k]);
                if (p == Complex.Zero) continue;
                var ratio = p / dp;
                var sum = Complex.Zero;
                for (int j = 0; j < n; j++) if (j != k) sum += 1 / (z[k] - z[j]);
                var w = ratio / (1 - ratio * sum);
                if (double.IsNaN(w.Real) || double.IsNaN(w.Imaginary)) continue;
                z[k] -= w;
                change = Math.Max(change, w.Magnitude / Math.Max(1, z[k].Magnitude));
            }
            if (change < 1e-16) break;
        }
        return z;
    }

    private static (Complex p, Complex dp) Evaluate(double[] c, Complex z)
    {
        Complex p = c[0], dp = Complex.Zero;
        for (int i = 1; i < c.Length; i++)
        {
            dp = dp * z + p;
            p = p * z + c[i];
        }
        return (p, dp);
    }
}
