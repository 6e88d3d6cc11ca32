using Harness.Abstractions;
using Harness.Plugins.Probes;
using TorchSharp;
using static Harness.Tests.Probes.ProbeTestSupport;
using static TorchSharp.torch;

namespace Harness.Tests.Probes;

using Math = System.Math;

[TestClass]
public sealed class SpectrumProbeTests
{
    private static readonly double[,] PaperH = { { 1, 0.9 }, { 0.9, 1 } };
    private static readonly double[] PaperP = [1, 0.1];
    /// <summary>λ1 of P^-1/2 H P^-1/2 = [[1, .9/√.1], [.9/√.1, 10]]: (11 + sqrt(121 − 4·1.9))/2.</summary>
    private static readonly double PaperGamma = (11 + Math.Sqrt(121 - 4 * 1.9)) / 2;

    private static Dictionary<string, object> Exact(int iterations, int topK = 1, bool smallest = false) => new()
    {
        ["max_iterations"] = (long)iterations, ["tolerance"] = 1e-10, ["top_k"] = (long)topK, ["smallest"] = smallest,
    };

    [TestMethod]
    public void PaperExampleGammaBoundaryAndPairingAreBothRecorded()
    {
        Assert.AreEqual(10.8245, Math.Round(PaperGamma, 4));
        using var model = new ExplicitQuadratic(PaperH, [0.3, -0.2]);
        using var opt = new FixedPreconditionerOptimizer(model.Parameters.Select(p => p.Tensor).ToList(), 0.1, [PaperP]);
        var shared = new Dictionary<string, object>();

        var pre = Measure(new PreconditionedSharpnessProbePlugin(), Exact(2, 2, true), Context(model, opt, shared: shared));
        AreClose(PaperGamma, pre["precond_sharpness"], 1e-12, "precond_sharpness");
        AreClose((11 - Math.Sqrt(121 - 4 * 1.9)) / 2, pre["precond_sharpness_min"], 1e-12, "precond λ_min");
        AreClose(PaperGamma * 0.1 / 2, pre["precond_edge_ratio"], 1e-12, "edge ratio uses γ against 2/η");

        var coh = Measure(new CoherenceProbePlugin(), new Dictionary<string, object> { ["top_k"] = 2L, ["reuse"] = false, ["tolerance"] = 1e-10 },
            Context(model, opt));
        AreClose(PaperGamma, coh["coherence"], 1e-12, "coherence γ");
        AreClose(2 / PaperGamma, coh["coherence_lr_boundary"], 1e-12, "true boundary 2/γ");
        Assert.AreEqual(0.18477, Math.Round(coh["coherence_lr_boundary"], 5));
        AreClose(1.9, coh["coherence_paper_pairing"], 1e-12, "paper pairing max|λ_i/p_i|");
        AreClose(19, coh["coherence_paper_bound"], 1e-12, "λ1(H)/p_min");
        AreClose(2 * 0.1 / 1.9, coh["coherence_paper_lr_boundary"], 1e-12, "paper's bound η < 2 p_min/λ_max");
        AreClose(PaperGamma / (2 / 0.1), coh["coherence_edge_ratio"], 1e-12, "edge ratio with γ, not the pairing");
        AreClose(1.9, coh["coherence_hessian_max"], 1e-12, "λ1(H)");
        AreClose(0.1, coh["coherence_hessian_min"], 1e-12, "λ_min(H)");
    }

    [TestMethod]
    public void PaperExampleBoundaryIsTheRealStabilityEdgeOfPreconditionedGd()
    {
        // Preconditioned GD on the quadratic: δ ← (I − η P^-1 H) δ. Just below 2/γ the iteration contracts, just above
        // it grows; the paper's pairing bound 2/1.9 would be far off.
        static double Growth(double eta)
        {
            double[] d = [1, 1];
            for (int k = 0; k < 4000; k++)
            {
                double a = d[0] - eta * (PaperH[0, 0] * d[0] + PaperH[0, 1] * d[1]) / PaperP[0];
                double b = d[1] - eta * (PaperH[1, 0] * d[0] + PaperH[1, 1] * d[1]) / PaperP[1];
                d = [a, b];
            }
            return Math.Sqrt(d[0] * d[0] + d[1] * d[1]);
        }
        Assert.IsTrue(Growth(2 / PaperGamma * 0.999) < 1);
        Assert.IsTrue(Growth(2 / PaperGamma * 1.001) > 1e3);
    }

    [TestMethod]
    public void PreconditionedSpectrumEqualsExplicitMatrixOnIndefiniteHessian()
    {
        const int n = 12;
        var gen = new Generator(7);
        var m = randn(n, n, dtype: ScalarType.Float64, generator: gen);
        var h = ((m + m.T) / 2).data<double>().ToArray();
        var H = new double[n, n];
        for (int i = 0; i < n; i++) for (int j = 0; j < n; j++) H[i, j] = h[i * n + j];
        var p = (rand(n, dtype: ScalarType.Float64, generator: gen) * 3 + 0.05).data<double>().ToArray();
        var explicitEig = Eigenvalues(Scale(H, p.Select(x => 1 / Math.Sqrt(x)).ToArray()));
        Assert.IsTrue(explicitEig[0] < 0, "the test matrix must be indefinite");

        using var model = new ExplicitQuadratic(H, Enumerable.Range(0, n).Select(i => 0.1 * i).ToArray());
        using var opt = new FixedPreconditionerOptimizer(model.Parameters.Select(q => q.Tensor).ToList(), 0.01, [p]);
        var r = Measure(new PreconditionedSharpnessProbePlugin(), Exact(n, 3, true), Context(model, opt));
        AreClose(explicitEig[^1], r["precond_sharpness"], 1e-10, "λ1");
        AreClose(explicitEig[^2], r["precond_sharpness_top2"], 1e-10, "λ2");
        AreClose(explicitEig[^3], r["precond_sharpness_top3"], 1e-10, "λ3");
        AreClose(explicitEig[0], r["precond_sharpness_min"], 1e-10, "λ_min");
        Assert.AreEqual(1.0, r["precond_sharpness_converged"]);
        Assert.IsTrue(r["precond_sharpness_residual"] < 1e-8);

        var hEig = Eigenvalues(H);
        var s = Measure(new SharpnessProbePlugin(), Exact(n, 2, true), Context(model, opt));
        AreClose(hEig[^1], s["sharpness"], 1e-10, "λ1(H)");
        AreClose(hEig[^2], s["sharpness_top2"], 1e-10, "λ2(H)");
        AreClose(hEig[0], s["sharpness_min"], 1e-10, "λ_min(H)");
        Assert.IsFalse(s.ContainsKey("edge_ratio"), "a preconditioned optimizer's edge ratio is the preconditioned one");
    }

    [TestMethod]
    public void LargestAlgebraicNotLargestMagnitude()
    {
        double[,] h = { { -5, 0, 0 }, { 0, 1, 0 }, { 0, 0, 2 } };
        using var model = new ExplicitQuadratic(h, [1, 1, 1]);
        using var opt = new FixedPreconditionerOptimizer(model.Parameters.Select(q => q.Tensor).ToList(), 0.5, null);
        var s = Measure(new SharpnessProbePlugin(), Exact(3, 1, true), Context(model, opt));
        AreClose(2, s["sharpness"], 1e-12, "λ1");
        AreClose(-5, s["sharpness_min"], 1e-12, "λ_min");
        AreClose(2 / (2 / 0.5), s["edge_ratio"], 1e-12, "λ1/(2/η)");
    }

    [TestMethod]
    public void UpwardCrossingsAreEventsOncePerCrossing()
    {
        using var model = new ExplicitQuadratic(new double[,] { { 4, 0 }, { 0, 1 } }, [1, 1]);
        using var opt = new FixedPreconditionerOptimizer(model.Parameters.Select(q => q.Tensor).ToList(), 0.1, null);
        var plugin = new SharpnessProbePlugin();
        var hp = new HyperparameterValues(plugin.Hyperparameters, Exact(2));
        using var probe = plugin.Create(hp);
        var crossings = new List<double>();
        foreach (double lr in new[] { 0.1, 0.3, 0.6, 0.7, 0.2, 0.55 })   // ratio = 4·lr/2: 0.2, 0.6, 1.2, 1.4, 0.4, 1.1
        {
            opt.LearningRate = lr;
            crossings.Add(probe.Measure(Context(model, opt))["edge_crossing"]);
        }
        CollectionAssert.AreEqual(new double[] { 0, 0, 1, 0, 0, 1 }, crossings);
    }

    [TestMethod]
    public void CoherenceReusesSpectraMeasuredAtTheSameStep()
    {
        using var model = new ExplicitQuadratic(PaperH, [0.3, -0.2]);
        using var opt = new FixedPreconditionerOptimizer(model.Parameters.Select(p => p.Tensor).ToList(), 0.1, [PaperP]);
        var shared = new Dictionary<string, object>();
        Measure(new SharpnessProbePlugin(), Exact(2, 5, true), Context(model, opt, step: 3, shared: shared));
        Measure(new PreconditionedSharpnessProbePlugin(), Exact(2, 1, true), Context(model, opt, step: 3, shared: shared));
        var ctx = Context(model, opt, step: 3, shared: shared);
        var coh = Measure(new CoherenceProbePlugin(), new Dictionary<string, object> { ["top_k"] = 2L }, ctx);
        Assert.AreEqual(0.0, coh["coherence_iterations"]);
        Assert.AreEqual(0, ((Harness.Host.Training.TorchObjective)ctx.Objective).HessianProducts, "reused spectra cost no HVP");
        AreClose(PaperGamma, coh["coherence"], 1e-12, "γ reused");
        AreClose(1.9, coh["coherence_paper_pairing"], 1e-12, "pairing reused");

        var later = Context(model, opt, step: 4, shared: shared);
        var fresh = Measure(new CoherenceProbePlugin(), new Dictionary<string, object> { ["top_k"] = 2L }, later);
        Assert.IsTrue(fresh["coherence_iterations"] > 0, "a spectrum from another step is stale");
    }

    [TestMethod]
    public void SharpnessPublishesTopEigenvectorWithItsStep()
    {
        using var model = new ExplicitQuadratic(new double[,] { { 1, 0 }, { 0, 3 } }, [1, 1]);
        using var opt = new FixedPreconditionerOptimizer(model.Parameters.Select(q => q.Tensor).ToList(), 0.1, null);
        var shared = new Dictionary<string, object>();
        using var probe = new SharpnessProbePlugin().Create(new HyperparameterValues(new SharpnessProbePlugin().Hyperparameters, Exact(2)));
        probe.Measure(Context(model, opt, step: 9, shared: shared));
        var v = (Tensor)shared[ProbeBlackboard.TopEigenvector];
        AreClose(1, Math.Abs(v[1].item<double>()), 1e-12, "top eigenvector is e2");
        Assert.AreEqual(9L, shared[ProbeBlackboard.TopEigenvectorStep]);
    }
}

[TestClass]
public sealed class LanczosSmallestToleranceTests
{
    private sealed class Diagonal(double[] d) : ISymmetricOperator
    {
        private readonly Tensor _d = tensor(d, dtype: ScalarType.Float64);
        public long Dimension => d.Length;
        public Tensor Multiply(Tensor v) => _d * v;
    }

    [TestMethod]
    public void SmallestPairJudgedAgainstTheOperatorScaleStopsEarlierAndMeetsThatTolerance()
    {
        // Spectrum 10·(i/399)² with λ_min = 0 shifted to 1e-7: λ_min is tiny relative to λ1 = 10.
        var d = Enumerable.Range(0, 400).Select(i => 10.0 * (i / 399.0) * (i / 399.0) + 1e-7).ToArray();
        var op = new Diagonal(d);
        var strict = Harness.Abstractions.Numerics.Lanczos.Run(op, new(390, 1e-3, 1, true), seed: 1, dtype: ScalarType.Float64);
        var scaled = Harness.Abstractions.Numerics.Lanczos.Run(op, new(390, 1e-3, 1, true) { SmallestRelativeToScale = true }, seed: 1, dtype: ScalarType.Float64);
        Assert.IsTrue(scaled.Converged);
        Assert.IsFalse(strict.Converged);
        Assert.IsTrue(scaled.Iterations < strict.Iterations, $"scaled {scaled.Iterations} vs strict {strict.Iterations}");
        Console.WriteLine($"scaled {scaled.Iterations} products, strict {strict.Iterations}");
        Assert.IsTrue(scaled.Bottom!.Residual <= 1e-3 * 10 * 1.0001, $"residual {scaled.Bottom.Residual}");
        // A Ritz value is within its residual of an eigenvalue: λ_min is found to the scale's tolerance.
        Assert.IsTrue(Math.Abs(scaled.Bottom.Value - 1e-7) <= scaled.Bottom.Residual, $"λ_min {scaled.Bottom.Value}");
        AreClose(10 + 1e-7, scaled.Top[0].Value, 1e-3, "λ1");
    }
}
