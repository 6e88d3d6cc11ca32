using System.Numerics;
using Harness.Abstractions;

namespace Harness.Tests.Optimizers;

using Math = System.Math;

/// <summary>
/// Thresholds without closed forms (<see cref="LinearRecurrence"/>): the numerical threshold of a declared update matrix
/// (smallest x = η·λ at which the spectral radius exceeds 1) agrees with the five closed forms to 1e-9 for every
/// momentum kind, β and η; a 3×3 recurrence gives the threshold of its binding block; the eigenvalues are exact on a
/// matrix with known spectrum; and <see cref="StabilityThreshold.Of"/> follows the declared rule (null without one).
/// </summary>
[TestClass]
public sealed class NumericalThresholdTests
{
    public static IEnumerable<object[]> Kinds() =>
        from kind in new[] { MomentumKind.None, MomentumKind.Standard, MomentumKind.Ema, MomentumKind.StandardNesterov, MomentumKind.EmaNesterov }
        from beta in new[] { 0.0, 0.3, 0.9, 0.99, 0.999 }
        select new object[] { kind, beta };

    [TestMethod]
    [DynamicData(nameof(Kinds))]
    public void ClosedFormsAgreeWithTheNumericalThresholdOfTheirRecurrence(MomentumKind kind, double beta)
    {
        double x = LinearRecurrence.CriticalStep(e => LinearRecurrence.Momentum(kind, beta, e));
        foreach (double lr in new[] { 1e-4, 0.01, 0.5, 3.0 })
        {
            double closed = StabilityThreshold.For(kind, lr, beta), numerical = x / lr;
            Assert.AreEqual(closed, numerical, 1e-9 * closed, $"{kind} β = {beta} η = {lr}: closed form {closed:R}, numerical {numerical:R}");
        }
    }

    [TestMethod]
    public void AThreeByThreeRecurrenceHasTheThresholdOfItsBindingBlock()
    {
        // GD on a direction scaled by s (x* = 2/s) beside a heavy ball (x* = 2 + 2β), mixed by a fixed similarity S so the
        // 3×3 matrix is dense: the threshold is the smaller of the two.
        double[,] s = { { 1, 0.5, -0.3 }, { 0.2, 1, 0.4 }, { -0.1, 0.3, 1 } };
        var sInv = Invert3(s);
        foreach (var (scale, beta) in new[] { (3.0, 0.9), (0.1, 0.9), (1.0, 0.5) })
        {
            double[,] M(double x)
            {
                double[,] block = { { 1 - scale * x, 0, 0 }, { 0, 1 - x, -beta }, { 0, x, beta } };
                return Multiply(Multiply(s, block), sInv);
            }
            double expected = Math.Min(2 / scale, 2 + 2 * beta);
            double x = LinearRecurrence.CriticalStep(M);
            Assert.AreEqual(expected, x, 1e-9 * expected, $"scale {scale}, β {beta}");
        }
    }

    [TestMethod]
    public void EigenvaluesOfAMatrixWithAKnownSpectrum()
    {
        // Companion matrix of (μ − 0.5)(μ + 0.9)(μ − 1.2)(μ² + 0.64) = roots 0.5, −0.9, 1.2, ±0.8i.
        double[] roots = [0.5, -0.9, 1.2];
        var poly = new Complex[] { 1 };
        foreach (var r in roots.Select(r => new Complex(r, 0)).Concat([new Complex(0, 0.8), new Complex(0, -0.8)]))
        {
            var next = new Complex[poly.Length + 1];
            for (int i = 0; i < poly.Length; i++) { next[i] += poly[i]; next[i + 1] -= r * poly[i]; }
            poly = next;
        }
        int n = poly.Length - 1;
        var m = new double[n, n];
        for (int j = 0; j < n; j++) m[0, j] = -poly[j + 1].Real;
        for (int i = 1; i < n; i++) m[i, i - 1] = 1;
        var eig = LinearRecurrence.Eigenvalues(m).OrderBy(z => z.Real).ThenBy(z => z.Imaginary).ToArray();
        Complex[] want = [new(-0.9, 0), new(0, -0.8), new(0, 0.8), new(0.5, 0), new(1.2, 0)];
        for (int i = 0; i < n; i++)
            Assert.IsLessThan(1e-12, (eig[i] - want[i]).Magnitude, $"eigenvalue {i}: {eig[i]} vs {want[i]}");
        Assert.AreEqual(1.2, LinearRecurrence.SpectralRadius(m), 1e-12);
    }

    [TestMethod]
    public void StabilityThresholdOfFollowsTheDeclaredRule()
    {
        using var scope = TorchSharp.torch.NewDisposeScope();
        var p = new[] { TorchSharp.torch.zeros(3, dtype: TorchSharp.torch.ScalarType.Float64).requires_grad_(true) };
        using var lion = OptimizerTestKit.Create("lion", p);
        Assert.AreEqual(ThresholdRule.None, lion.ThresholdRule);
        Assert.IsNull(StabilityThreshold.Of(lion), "a sign-based update has no threshold");
        using var qhm = OptimizerTestKit.Create("qhm", p, new Dictionary<string, object> { ["lr"] = 0.1, ["momentum"] = 0.9, ["nu"] = 0.7 });
        Assert.AreEqual(ThresholdRule.LinearRecurrence, qhm.ThresholdRule);
        // By hand: min((2+2β)/(1+β−2νβ), (1+1/β)/(1−ν)) = min(3.8/0.64, 7.037) = 5.9375, over η = 0.1.
        Assert.AreEqual(59.375, StabilityThreshold.Of(qhm)!.Value, 1e-9 * 59.375);
        Assert.AreEqual(59.375, qhm.StabilityThreshold, 1e-9 * 59.375, "the optimizer's own number is the numerical one");
        qhm.LearningRate = 0.2;
        Assert.AreEqual(29.6875, StabilityThreshold.Of(qhm)!.Value, 1e-9 * 29.6875, "x*/η follows η");
        using var hb = OptimizerTestKit.Create("heavy_ball", p, new Dictionary<string, object> { ["lr"] = 0.1 });
        Assert.AreEqual(ThresholdRule.ClosedForm, hb.ThresholdRule, "a contract-1.0 optimizer keeps its closed form");
        Assert.AreEqual(38.0, StabilityThreshold.Of(hb)!.Value, 1e-12);
    }

    private static double[,] Multiply(double[,] a, double[,] b)
    {
        int n = a.GetLength(0);
        var c = new double[n, n];
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                for (int k = 0; k < n; k++) c[i, j] += a[i, k] * b[k, j];
        return c;
    }

    private static double[,] Invert3(double[,] m)
    {
        double a = m[0, 0], b = m[0, 1], c = m[0, 2], d = m[1, 0], e = m[1, 1], f = m[1, 2], g = m[2, 0], h = m[2, 1], i = m[2, 2];
        double det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g);
        return new[,]
        {
            { (e * i - f * h) / det, (c * h - b * i) / det, (b * f - c * e) / det },
            { (f * g - d * i) / det, (a * i - c * g) / det, (c * d - a * f) / det },
            { (d * h - e * g) / det, (b * g - a * h) / det, (a * e - b * d) / det },
        };
    }
}
