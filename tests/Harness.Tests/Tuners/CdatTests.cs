using static Harness.Tests.Tuners.QuadraticObjective;

namespace Harness.Tests.Tuners;

using Math = System.Math;

/// <summary>CDAT and the quadratically greedy rule on f = ½θᵀAθ with GD's direction u = −g (float64, explicit A).</summary>
[TestClass]
public sealed class CdatTests
{
    private static readonly double[] Spectrum = [5, 3, 1.5, 0.7, 0.2, 0.05];
    private static readonly double[,] A = TunerTestKit.Matrix(Spectrum, seed: 11);

    private static Dictionary<string, object> Hp(double sigma, double beta = 0) => new() { ["sigma"] = sigma, ["beta"] = beta };

    [TestMethod]
    [DataRow(1.0)]
    [DataRow(1.9375)]
    [DataRow(2.0)]
    [DataRow(2.5)]
    public void EtaIsSigmaTimesDescentOverCurvatureAndTheStepIsCommitted(double sigma)
    {
        var ps = TunerTestKit.Parameters(6, seed: 3);
        var obj = new QuadraticObjective(ps, A);
        using var opt = TunerTestKit.Gd(ps, TunerTestKit.Tuner("cdat", Hp(sigma)));
        for (int t = 0; t < 5; t++)
        {
            var x = obj.Theta();
            var g = Mul(A, x);
            var u = g.Select(v => -v).ToArray();
            double expected = -Dot(g, u) / Dot(u, Mul(A, u)) * sigma;
            int hvps = obj.HessianProducts;
            opt.Step(obj);
            Assert.AreEqual(1, obj.HessianProducts - hvps, "CDAT uses exactly one Hessian-vector product per step");
            double eta = opt.Tuner.Internals["eta"];
            Assert.AreEqual(expected, eta, 1e-12 * expected);
            Assert.AreEqual(eta, opt.LearningRate, "LearningRate reports η_t");
            Assert.AreEqual(2 / eta, opt.StabilityThreshold, 1e-12 * (2 / eta), "the threshold is the base's at η_t");
            var next = obj.Theta();
            for (int i = 0; i < 6; i++) Assert.AreEqual(x[i] + eta * u[i], next[i], 1e-12 * Math.Abs(x[i]) + 1e-15);
        }
    }

    [TestMethod]
    public void SigmaTwoLeavesTheLossUnchanged()
    {
        var (before, after, n, d) = OneStep(2);
        Assert.AreEqual(before, after, 1e-10 * before);
        Assert.IsGreaterThan(0.0, n * n / d, "the step is not trivial");
    }

    [TestMethod]
    public void SigmaOneDecreasesTheLossByNSquaredOverTwoD()
    {
        var (before, after, n, d) = OneStep(1);
        double decrease = n * n / (2 * d);
        Assert.IsGreaterThan(1e-3 * before, decrease);
        Assert.AreEqual(decrease, before - after, 1e-10 * before);
    }

    [TestMethod]
    [DataRow(2.0625)]
    [DataRow(2.5)]
    public void SigmaAboveTwoIncreasesTheLoss(double sigma)
    {
        var (before, after, n, d) = OneStep(sigma);
        Assert.IsGreaterThan(before, after);
        Assert.AreEqual(n * n / d * (sigma * sigma / 2 - sigma), after - before, 1e-10 * before);
    }

    /// <summary>Five steps of CDAT(σ, 0); returns the loss before/after the last one and its n, d.</summary>
    private static (double before, double after, double n, double d) OneStep(double sigma)
    {
        var ps = TunerTestKit.Parameters(6, seed: 5);
        var obj = new QuadraticObjective(ps, A);
        using var opt = TunerTestKit.Gd(ps, TunerTestKit.Tuner("cdat", Hp(sigma)));
        double before = 0;
        for (int t = 0; t < 5; t++)
        {
            before = Loss(A, obj.Theta());
            opt.Step(obj);
        }
        return (before, Loss(A, obj.Theta()), opt.Tuner.Internals["n"], opt.Tuner.Internals["d"]);
    }

    [TestMethod]
    [DataRow(1.0)]
    [DataRow(1.9375)]
    [DataRow(2.0)]
    [DataRow(2.0625)]
    [DataRow(2.5)]
    public void WithGdAndNoAveragingEtaTimesLambda1IsAtLeastSigmaAtEveryStep(double sigma)
    {
        var ps = TunerTestKit.Parameters(6, seed: 7);
        var obj = new QuadraticObjective(ps, A);
        using var opt = TunerTestKit.Gd(ps, TunerTestKit.Tuner("cdat", Hp(sigma)));
        double lambda1 = Spectrum.Max();
        for (int t = 0; t < 30; t++)
        {
            opt.Step(obj);
            double etaLambda = opt.Tuner.Internals["eta"] * lambda1;
            Assert.IsGreaterThanOrEqualTo(sigma * (1 - 1e-12), etaLambda, $"step {t}");
        }
    }

    [TestMethod]
    public void AveragesNumeratorAndDenominatorSeparately()
    {
        const double beta = 0.6, sigma = 2;
        var ps = TunerTestKit.Parameters(6, seed: 9);
        var obj = new QuadraticObjective(ps, A);
        using var opt = TunerTestKit.Gd(ps, TunerTestKit.Tuner("cdat", Hp(sigma, beta)));
        double nEma = 0, dEma = 0;
        var x = obj.Theta();
        for (int t = 0; t < 6; t++)
        {
            var g = Mul(A, x);
            double n = Math.Max(Dot(g, g), 0), d = Math.Abs(Dot(g, Mul(A, g)));
            nEma = beta * nEma + (1 - beta) * n;
            dEma = beta * dEma + (1 - beta) * d;
            double eta = sigma * nEma / dEma;
            opt.Step(obj);
            var internals = opt.Tuner.Internals;
            Assert.AreEqual(n, internals["n"], 1e-12 * n);
            Assert.AreEqual(d, internals["d"], 1e-12 * d);
            Assert.AreEqual(nEma, internals["n_ema"], 1e-12 * nEma);
            Assert.AreEqual(dEma, internals["d_ema"], 1e-12 * dEma);
            Assert.AreEqual(eta, internals["eta"], 1e-11 * eta);
            x = x.Zip(g, (xi, gi) => xi - eta * gi).ToArray();
            var actual = obj.Theta();
            for (int i = 0; i < x.Length; i++) Assert.AreEqual(x[i], actual[i], 1e-10 * (Math.Abs(x[i]) + 1e-3));
        }
    }

    [TestMethod]
    public void ZeroCurvatureGivesZeroEtaAndAnEvent()
    {
        // θ = 0: g = 0, u = 0, so n = d = 0.
        var ps = TunerTestKit.Parameters(6, seed: 1, scale: 0);
        var obj = new QuadraticObjective(ps, A);
        using var opt = TunerTestKit.Gd(ps, TunerTestKit.Tuner("cdat", Hp(2)));
        opt.Step(obj);
        Assert.AreEqual(0.0, opt.Tuner.Internals["eta"]);
        Assert.AreEqual(1.0, opt.Tuner.Internals["zero_curvature"]);
        var ps2 = TunerTestKit.Parameters(6, seed: 1);
        var obj2 = new QuadraticObjective(ps2, A);
        using var opt2 = TunerTestKit.Gd(ps2, TunerTestKit.Tuner("cdat", Hp(2)));
        opt2.Step(obj2);
        Assert.AreEqual(0.0, opt2.Tuner.Internals["zero_curvature"]);
    }

    [TestMethod]
    public void GreedyIsCdatWithSigmaOneAndNoAveraging()
    {
        var ps = TunerTestKit.Parameters(6, seed: 13);
        var obj = new QuadraticObjective(ps, A);
        using var greedy = TunerTestKit.Gd(ps, TunerTestKit.Tuner("greedy"));
        for (int t = 0; t < 10; t++)
        {
            var x = obj.Theta();
            var g = Mul(A, x);
            double before = Loss(A, x);
            // σ = 1, β = 0: η = gᵀg/(gᵀAg) at the current θ, and the step minimises f along u, decreasing it by
            // (gᵀg)²/(2 gᵀAg).
            double n = Dot(g, g), d = Dot(g, Mul(A, g));
            greedy.Step(obj);
            Assert.AreEqual(n / d, greedy.Tuner.Internals["eta"], 1e-12 * (n / d), $"step {t}");
            Assert.AreEqual(n, greedy.Tuner.Internals["n_ema"], 1e-12 * n, "no averaging");
            Assert.AreEqual(n * n / (2 * d), before - Loss(A, obj.Theta()), 1e-10 * before);
        }
    }
}
