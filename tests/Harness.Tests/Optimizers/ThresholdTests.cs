using Harness.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Tests.Optimizers;

using Math = System.Math;

/// <summary>
/// The stability thresholds of docs/science.md §2, checked by running the optimizers: on f(θ) = ½aθ² (and, for the
/// preconditioned variants, on a rotated quadratic whose preconditioned sharpness λ1(P^-1/2 A P^-1/2) is a) each
/// momentum type converges at a = 0.98× its stated threshold and diverges at 1.02×, and bisection on a finds the
/// boundary within 0.1%. The thresholds are written out here, independently of the code under test.
/// </summary>
[TestClass]
public sealed class ThresholdTests
{
    private const double Lr = 0.01;

    private static double Expected(string kind, double b) => kind switch
    {
        "gd" => 2 / Lr,
        "heavy_ball" => (2 + 2 * b) / Lr,
        "ema_heavy_ball" => (2 + 2 * b) / (Lr * (1 - b)),
        "nesterov" => (2 + 2 * b) / (Lr * (1 + 2 * b)),
        "ema_nesterov" => (2 + 2 * b) / (Lr * (1 - b) * (1 + 2 * b)),
        _ => throw new ArgumentException(kind),
    };

    /// <summary>f(θ) = ½ θᵀ(s·A0)θ with the gradient s·A0·θ in closed form.</summary>
    private sealed class ScaledQuadratic(Tensor a0, Tensor theta) : IObjective
    {
        public double Scale { get; set; } = 1;
        private Evaluation? _cached;
        public IReadOnlyList<Tensor> Parameters { get; } = [theta];
        public long ParameterCount => theta.numel();
        public int GradientEvaluations => 0;
        public Evaluation Evaluate()
        {
            if (_cached is not null) return _cached;
            using var _ = no_grad();
            var g = a0.mv(theta).mul_(Scale);
            return _cached = new Evaluation(0.5 * theta.dot(g).ToDouble(), [g]);
        }
        public void Invalidate() => _cached = null;
        public double LossAt(IReadOnlyList<Tensor> d, double s) => throw new NotSupportedException();
        public Evaluation EvaluateAt(IReadOnlyList<Tensor> d, double s) => throw new NotSupportedException();
        public IHessianOperator Hessian() => throw new NotSupportedException();
        public Tensor PerSampleGradients(int n) => throw new NotSupportedException();
    }

    /// <summary>Whether the optimizer diverges at curvature scale <paramref name="a"/>: the largest |θ_i| over the last
    /// 100 of <paramref name="steps"/> steps exceeds that over the 100 steps before the midpoint (transients of the
    /// faster-decaying mode are gone by then; the critical mode grows or shrinks geometrically).</summary>
    private static bool Diverges(string optimizer, double beta, Tensor a0, double[]? p, double a, int steps, out double growth)
    {
        using var scope = NewDisposeScope();
        int n = (int)a0.shape[0];
        var theta = ones(n, dtype: ScalarType.Float64).requires_grad_(true);
        var hp = new Dictionary<string, object> { ["lr"] = Lr };
        if (optimizer.Replace("precond_", "") != "gd") hp["momentum"] = beta;
        using var opt = OptimizerTestKit.Create(optimizer, [theta], hp);
        if (p is not null)
            opt.ImportState(new OptimizerState { Scalars = { ["step"] = 0, ["lr"] = Lr }, Buffers = { ["preconditioner"] = [p] } });
        var objective = new ScaledQuadratic(a0, theta) { Scale = a };
        double early = 0, late = 0;
        for (int t = 1; t <= steps; t++)
        {
            using var stepScope = NewDisposeScope();
            objective.Invalidate();
            opt.Step(objective);
            if (t > steps / 2 - 100 && t <= steps / 2 || t > steps - 100)
            {
                double m = theta.detach().abs().max().ToDouble();
                if (!double.IsFinite(m)) { growth = double.PositiveInfinity; return true; }
                if (t <= steps / 2) early = Math.Max(early, m); else late = Math.Max(late, m);
            }
        }
        growth = late / early;
        return late > early;
    }

    private static void CheckBoundary(string optimizer, double beta, Tensor a0, double[]? p, double threshold)
    {
        // Converges at 0.98×, diverges at 1.02×.
        Assert.IsFalse(Diverges(optimizer, beta, a0, p, 0.98 * threshold, 3000, out var g98), $"{optimizer} β={beta}: diverges at 0.98× the threshold {threshold} (growth {g98})");
        Assert.IsLessThan(1e-3, g98, $"{optimizer} β={beta}: does not clearly converge at 0.98× the threshold (growth {g98} over 1500 steps)");
        Assert.IsTrue(Diverges(optimizer, beta, a0, p, 1.02 * threshold, 3000, out var g102), $"{optimizer} β={beta}: does not diverge at 1.02× the threshold {threshold} (growth {g102})");
        Assert.IsGreaterThan(1e3, g102, $"{optimizer} β={beta}: does not clearly diverge at 1.02× the threshold (growth {g102} over 1500 steps)");

        // Bisection on a for the boundary.
        double lo = 0.9 * threshold, hi = 1.1 * threshold;
        Assert.IsFalse(Diverges(optimizer, beta, a0, p, lo, 2000, out _));
        Assert.IsTrue(Diverges(optimizer, beta, a0, p, hi, 2000, out _));
        while (hi - lo > 1e-4 * threshold)
        {
            double mid = 0.5 * (lo + hi);
            if (Diverges(optimizer, beta, a0, p, mid, 2000, out _)) hi = mid; else lo = mid;
        }
        double boundary = 0.5 * (lo + hi);
        double rel = Math.Abs(boundary - threshold) / threshold;
        Assert.IsLessThan(1e-3, rel, $"{optimizer} β={beta}: bisection finds the boundary at {boundary}, the stated threshold is {threshold} ({rel:P3} off)");
    }

    [TestMethod]
    [DataRow("gd", 0.0)]
    [DataRow("heavy_ball", 0.9)]
    [DataRow("heavy_ball", 0.5)]
    [DataRow("ema_heavy_ball", 0.9)]
    [DataRow("ema_heavy_ball", 0.5)]
    [DataRow("nesterov", 0.9)]
    [DataRow("nesterov", 0.5)]
    [DataRow("ema_nesterov", 0.9)]
    [DataRow("ema_nesterov", 0.5)]
    public void ThresholdOnOneDimensionalQuadratic(string optimizer, double beta)
    {
        double threshold = Expected(optimizer, beta);
        using var scope = NewDisposeScope();
        using (var probe = OptimizerTestKit.Create(optimizer, [zeros(1, dtype: ScalarType.Float64)],
                   optimizer == "gd" ? new Dictionary<string, object> { ["lr"] = Lr } : new Dictionary<string, object> { ["lr"] = Lr, ["momentum"] = beta }))
            Assert.AreEqual(threshold, probe.StabilityThreshold, 1e-12 * threshold, "reported threshold");
        var a0 = ones(1, 1, dtype: ScalarType.Float64);
        CheckBoundary(optimizer, beta, a0, null, threshold);
    }

    [TestMethod]
    [DataRow("precond_gd")]
    [DataRow("precond_heavy_ball")]
    [DataRow("precond_ema_heavy_ball")]
    [DataRow("precond_nesterov")]
    [DataRow("precond_ema_nesterov")]
    public void ThresholdOnRotatedQuadraticAppliesToPreconditionedSharpness(string optimizer)
    {
        const double beta = 0.9;
        double threshold = Expected(optimizer["precond_".Length..], beta);
        using var scope = NewDisposeScope();
        // A0 = Q diag(1, 0.7, 0.3, 0.1) Qᵀ, P = diag(0.5, 1, 2, 4): P is not aligned with A0's eigenvectors.
        var (q, _) = linalg.qr(randn(4, 4, dtype: ScalarType.Float64, generator: new torch.Generator(7)));
        var a0 = q.matmul(diag(tensor(new[] { 1.0, 0.7, 0.3, 0.1 }, dtype: ScalarType.Float64))).matmul(q.T);
        a0 = (a0 + a0.T) / 2;
        double[] p = [0.5, 1, 2, 4];
        var dInv = diag(tensor(p, dtype: ScalarType.Float64).rsqrt());
        double lambda1 = linalg.eigvalsh(dInv.matmul(a0).matmul(dInv)).max().ToDouble();
        double raw = linalg.eigvalsh(a0).max().ToDouble();
        Assert.IsGreaterThan(0.05, Math.Abs(lambda1 / raw - 1), "the test needs a P that changes the top eigenvalue");
        a0 = a0 / lambda1; // now λ1(P^-1/2 (a·A0) P^-1/2) = a
        CheckBoundary(optimizer, beta, a0, p, threshold);
    }
}
