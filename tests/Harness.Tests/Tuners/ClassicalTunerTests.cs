using static Harness.Tests.Tuners.QuadraticObjective;

namespace Harness.Tests.Tuners;

using Math = System.Math;

/// <summary>Armijo backtracking, Polyak, hypergradient and the exact-sharpness rule on f = ½θᵀAθ with GD's direction.</summary>
[TestClass]
public sealed class ClassicalTunerTests
{
    // λ1 = 50: the first guess η = 1 overshoots badly, so the search must backtrack.
    private static readonly double[] Spectrum = [50, 8, 2, 0.5, 0.1];
    private static readonly double[,] A = TunerTestKit.Matrix(Spectrum, seed: 21);

    [TestMethod]
    public void ArmijoTerminatesSatisfiesItsConditionAndTakesTheFirstValidTrial()
    {
        const double c = 1e-4, cPlus = 4, cMinus = 0.8, delta = 0;
        var ps = TunerTestKit.Parameters(5, seed: 2);
        var obj = new QuadraticObjective(ps, A);
        using var opt = TunerTestKit.Gd(ps, TunerTestKit.Tuner("armijo", new Dictionary<string, object>
            { ["c"] = c, ["c_plus"] = cPlus, ["c_minus"] = cMinus, ["delta"] = delta, ["max_backtracks"] = 200L }));
        double? previous = null;
        int totalBacktracks = 0;
        for (int t = 0; t < 25; t++)
        {
            var x = obj.Theta();
            var g = Mul(A, x);
            var u = g.Select(v => -v).ToArray();
            double f = Loss(A, x), gtu = Dot(g, u);
            int losses = obj.LossEvaluations;
            opt.Step(obj);
            var s = opt.Tuner.Internals;
            double eta = s["eta"];
            int k = (int)s["backtracks"];
            totalBacktracks += k;
            Assert.AreEqual(1.0, s["satisfied"]);
            Assert.AreEqual(k + 1, obj.LossEvaluations - losses, "one loss evaluation per trial");
            double start = previous is { } p ? Math.Min(cPlus * p, 1) : 1;
            Assert.AreEqual(start * Math.Pow(cMinus, k), eta, 1e-12 * eta);
            bool Holds(double e) => Loss(A, x.Zip(u, (xi, ui) => xi + e * ui).ToArray()) <= (1 + delta) * f + c * e * gtu;
            Assert.IsTrue(Holds(eta), $"step {t}: Armijo condition at the accepted η");
            if (k > 0) Assert.IsFalse(Holds(eta / cMinus), $"step {t}: the previous trial must have failed");
            Assert.IsLessThan(f, Loss(A, obj.Theta()));
            previous = eta;
        }
        Assert.IsGreaterThan(0, totalBacktracks, "the test must exercise backtracking");
    }

    [TestMethod]
    public void ArmijoStopsAtTheCapAndLogsIt()
    {
        var a = TunerTestKit.Matrix([1e6, 1], seed: 3);
        var ps = new List<TorchSharp.torch.Tensor>
        {
            TorchSharp.torch.tensor(new[] { 1.0 }, dtype: TorchSharp.torch.ScalarType.Float64).DetachFromDisposeScope(),
            TorchSharp.torch.tensor(new[] { 1.0 }, dtype: TorchSharp.torch.ScalarType.Float64).DetachFromDisposeScope(),
        };
        var obj = new QuadraticObjective(ps, a);
        using var opt = TunerTestKit.Gd(ps, TunerTestKit.Tuner("armijo", new Dictionary<string, object> { ["max_backtracks"] = 3L, ["c_minus"] = 0.5 }));
        opt.Step(obj);
        Assert.AreEqual(3.0, opt.Tuner.Internals["backtracks"]);
        Assert.AreEqual(0.0, opt.Tuner.Internals["satisfied"]);
        Assert.AreEqual(0.125, opt.Tuner.Internals["eta"]);
        Assert.AreEqual(4, obj.LossEvaluations);
    }

    [TestMethod]
    [DataRow(0.0, 1e3)]
    [DataRow(0.0, 1e-3)]
    [DataRow(0.5, 1e3)]
    public void PolyakMatchesItsFormula(double fStarFraction, double etaMax)
    {
        var ps = TunerTestKit.Parameters(5, seed: 4);
        var obj = new QuadraticObjective(ps, A);
        double fStar = fStarFraction * Loss(A, obj.Theta());
        using var opt = TunerTestKit.Gd(ps, TunerTestKit.Tuner("polyak", new Dictionary<string, object> { ["f_star"] = fStar, ["eta_max"] = etaMax }));
        for (int t = 0; t < 8; t++)
        {
            var x = obj.Theta();
            var g = Mul(A, x);
            double f = Loss(A, x);
            double expected = f > fStar ? Math.Min((f - fStar) / Dot(g, g), etaMax) : 0;
            opt.Step(obj);
            Assert.AreEqual(expected, opt.Tuner.Internals["eta"], 1e-12 * Math.Max(expected, 1e-300));
            var next = obj.Theta();
            for (int i = 0; i < x.Length; i++) Assert.AreEqual(x[i] - expected * g[i], next[i], 1e-12 * (Math.Abs(x[i]) + 1e-6));
        }
    }

    [TestMethod]
    public void HypergradientMatchesAHandComputedSequence()
    {
        const double beta = 0.3, eta0 = 0.01;
        var ps = TunerTestKit.Parameters(5, seed: 6);
        var obj = new QuadraticObjective(ps, A);
        using var opt = TunerTestKit.Gd(ps, TunerTestKit.Tuner("hypergradient", new Dictionary<string, object> { ["beta"] = beta, ["eta0"] = eta0 }));
        var x = obj.Theta();
        double eta = eta0;
        var etas = new List<double>();
        for (int t = 0; t < 6; t++)
        {
            var g = Mul(A, x);
            var u = g.Select(v => -v).ToArray();
            var xNext = x.Zip(u, (xi, ui) => xi + eta * ui).ToArray();
            var gNext = Mul(A, xNext);
            double cos = Dot(gNext, u) / (Math.Sqrt(Dot(gNext, gNext)) * Math.Sqrt(Dot(u, u)));
            opt.Step(obj);
            Assert.AreEqual(eta, opt.Tuner.Internals["eta"], 1e-12 * eta, $"step {t}");
            Assert.AreEqual(cos, opt.Tuner.Internals["cos"], 1e-12, $"step {t}");
            etas.Add(eta);
            eta *= 1 - beta * cos;
            x = xNext;
            var actual = obj.Theta();
            for (int i = 0; i < x.Length; i++) Assert.AreEqual(x[i], actual[i], 1e-12 * (Math.Abs(x[i]) + 1e-6));
        }
        // At η = 0.01 ≪ 2/λ1 the steps are too short: the gradient stays aligned with −u and η grows.
        Assert.IsGreaterThan(etas[0], etas[^1]);
    }

    [TestMethod]
    public void HypergradientStartsFromTheBaseLearningRateWhenEta0IsZero()
    {
        var ps = TunerTestKit.Parameters(5, seed: 6);
        var obj = new QuadraticObjective(ps, A);
        using var opt = TunerTestKit.Gd(ps, TunerTestKit.Tuner("hypergradient"), lr: 0.0123);
        opt.Step(obj);
        Assert.AreEqual(0.0123, opt.Tuner.Internals["eta"]);
    }

    [TestMethod]
    [DataRow(1.0)]
    [DataRow(2.0)]
    public void ExactSharpnessRuleSetsEtaTimesLambda1ToSigma(double sigma)
    {
        var ps = TunerTestKit.Parameters(5, seed: 8);
        var obj = new QuadraticObjective(ps, A);
        using var opt = TunerTestKit.Gd(ps, TunerTestKit.Tuner("exact_sharpness", new Dictionary<string, object>
            { ["sigma"] = sigma, ["max_iterations"] = 300L, ["tol"] = 0.0 }));
        for (int t = 0; t < 3; t++)
        {
            opt.Step(obj);
            Assert.AreEqual(50, opt.Tuner.Internals["lambda1"], 1e-10 * 50);
            Assert.AreEqual(sigma, opt.Tuner.Internals["eta"] * 50, 1e-10);
        }
    }
}
