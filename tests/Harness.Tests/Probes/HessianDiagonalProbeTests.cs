using Harness.Abstractions;
using Harness.Plugins.Probes;
using TorchSharp;
using static Harness.Tests.Probes.ProbeTestSupport;
using static TorchSharp.torch;

namespace Harness.Tests.Probes;

using Math = System.Math;

[TestClass]
public sealed class HessianDiagonalProbeTests
{
    private static FixedPreconditionerOptimizer Gd(IModel m, double lr = 0.1) => new(m.Parameters.Select(p => p.Tensor).ToList(), lr, null);

    [TestMethod]
    public void RMedMatchesClosedFormsOfTheTwoLayerLinearNet()
    {
        const int d = 6;
        using var model = new TwoLayerLinear(d, n: 40, seed: 3);
        using var opt = Gd(model);
        var r = Measure(new RMedProbePlugin(), new Dictionary<string, object> { ["coordinates"] = 1000L }, Context(model, opt));

        // ∂²L/∂(W1)_ij² = v_i² (v = W2), ∂²L/∂(W2)_i² = ‖w_i‖² (w_i = row i of W1): docs/science.md §5.
        var v = model.W2.detach().reshape(-1).data<double>().ToArray();
        var w1 = model.W1.detach();
        var expectedW1 = new double[d * d];
        for (int i = 0; i < d; i++) for (int j = 0; j < d; j++) expectedW1[i * d + j] = v[i] * v[i];
        var expectedW2 = Enumerable.Range(0, d).Select(i => w1[i].square().sum().item<double>()).ToArray();

        for (int k = 0; k < d * d; k++) AreClose(expectedW1[k], r[$"rmed_w1_weight_hii_{k:D2}"], 1e-12, $"H_ii of W1 coordinate {k}");
        for (int k = 0; k < d; k++) AreClose(expectedW2[k], r[$"rmed_w2_weight_hii_{k:D2}"], 1e-12, $"H_ii of W2 coordinate {k}");

        double Ratio(double[] h) => h.Select(Math.Abs).Max() / Median(h.Select(Math.Abs));
        AreClose(Ratio(expectedW1), r["rmed_w1_weight"], 1e-12, "R_med(W1)");
        AreClose(Ratio(expectedW2), r["rmed_w2_weight"], 1e-12, "R_med(W2)");
        AreClose(expectedW2.Max() / (Median(expectedW2) + 1e-8), r["rmed_w2_weight_guarded"], 1e-12, "guarded R_med(W2)");
    }

    private static double Median(IEnumerable<double> xs)
    {
        var s = xs.OrderBy(x => x).ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }

    [TestMethod]
    public void RMedSampledDiagonalEqualsExplicitHessianOfSmallMlp()
    {
        using var model = new TinyMlp(seed: 11);
        var H = ExplicitHessian(model);
        using var opt = Gd(model);
        // 5 of 12 coordinates of layer0.weight, all 8 of layer1.weight; the biases are not layers.
        var hp = new Dictionary<string, object> { ["coordinates"] = 5L, ["seed"] = 4L };
        var r = Measure(new RMedProbePlugin(), hp, Context(model, opt), out var declared);
        Assert.IsFalse(declared.Any(m => m.Name.Contains("bias")), "biases are not layers");

        var probe = new RMedProbe(5, 1e-8, 4, true);
        var sample0 = probe.Sample(12, layerIndex: 0);
        Assert.AreEqual(5, sample0.Length);
        Assert.AreEqual(5, sample0.Distinct().Count());
        long offset1 = 12 + 4;
        var sample1 = probe.Sample(8, layerIndex: 2);
        CollectionAssert.AreEqual(Enumerable.Range(0, 5).Select(i => (long)i).ToArray(), probe.Sample(5, 0), "count ≥ size takes every coordinate");
        for (int j = 0; j < 5; j++)
            AreClose(H[sample0[j], sample0[j]], r[$"rmed_layer0_weight_hii_{j:D2}"], 1e-12, $"layer0 H_ii #{j}");
        for (int j = 0; j < 5; j++)
            AreClose(H[offset1 + sample1[j], offset1 + sample1[j]], r[$"rmed_layer1_weight_hii_{j:D2}"], 1e-12, $"layer1 H_ii #{j}");

        // Alignment: Spearman of the same H_ii with |g_i| (independently ranked here).
        var g = Flat(new Harness.Host.Training.TorchObjective(model, model.Train).Evaluate().Gradient);
        var h0 = sample0.Select(i => H[i, i]).ToArray();
        var g0 = sample0.Select(i => Math.Abs(g[i])).ToArray();
        AreClose(SpearmanNoTies(h0, g0), r["rmed_layer0_weight_align_grad"], 1e-12, "ρ(H_ii, |g_i|)");
        Assert.IsFalse(r.ContainsKey("rmed_layer0_weight_align_step"), "no update before step 1");
    }

    private static double SpearmanNoTies(double[] a, double[] b)
    {
        int n = a.Length;
        double[] Rank(double[] x) { var r = new double[n]; var o = Enumerable.Range(0, n).OrderBy(i => x[i]).ToArray(); for (int k = 0; k < n; k++) r[o[k]] = k + 1; return r; }
        var ra = Rank(a); var rb = Rank(b);
        double d2 = Enumerable.Range(0, n).Sum(i => (ra[i] - rb[i]) * (ra[i] - rb[i]));
        return 1 - 6 * d2 / (n * (n * (double)n - 1));
    }

    [TestMethod]
    public void SpearmanUsesAverageRanksForTies()
    {
        // x ranks 1, 2.5, 2.5, 4; y ranks 1, 2, 3, 4 → Pearson of ranks.
        double rho = ProbeMath.Spearman([1, 2, 2, 3], [10, 20, 30, 40]);
        AreClose(ProbeMath.Pearson([1, 2.5, 2.5, 4], [1, 2, 3, 4]), rho, 1e-15, "ties");
        AreClose(-1, ProbeMath.Spearman([1, 2, 3], [9, 4, 1]), 1e-15, "perfect inverse");
        Assert.IsTrue(double.IsNaN(ProbeMath.Spearman([1, 1, 1], [1, 2, 3])));
    }

    [TestMethod]
    public void CoordinateSampleIsFixedDistinctAndSeeded()
    {
        var a = ProbeMath.SampleCoordinates(1_000_000, 200, seed: 5, stream: 1);
        CollectionAssert.AreEqual(a, ProbeMath.SampleCoordinates(1_000_000, 200, seed: 5, stream: 1));
        Assert.AreEqual(200, a.Distinct().Count());
        Assert.IsTrue(a.All(i => i >= 0 && i < 1_000_000));
        CollectionAssert.AreNotEqual(a, ProbeMath.SampleCoordinates(1_000_000, 200, seed: 6, stream: 1));
        CollectionAssert.AreNotEqual(a, ProbeMath.SampleCoordinates(1_000_000, 200, seed: 5, stream: 2));
    }

    [TestMethod]
    public void DiagonalDominanceEqualsExplicitHessianRows()
    {
        using var model = new TinyMlp(seed: 2);
        var H = ExplicitHessian(model);
        using var opt = Gd(model);
        var r = Measure(new DiagonalDominanceProbePlugin(), new Dictionary<string, object> { ["max_size"] = 8L }, Context(model, opt), out var declared);
        Assert.IsFalse(declared.Any(m => m.Name.StartsWith("diagdom_layer0")), "layer0.weight (12 entries) exceeds max_size");
        int p = H.GetLength(0), off = 16, size = 8;
        var full = new double[size]; var block = new double[size];
        for (int i = 0; i < size; i++)
        {
            int gi = off + i;
            double diag = Math.Abs(H[gi, gi]);
            full[i] = (Enumerable.Range(0, p).Sum(j => Math.Abs(H[gi, j])) - diag) / diag;
            block[i] = (Enumerable.Range(off, size).Sum(j => Math.Abs(H[gi, j])) - diag) / diag;
        }
        AreClose(full.Average(), r["diagdom_layer1_weight_mean"], 1e-12, "mean row ratio");
        AreClose(Median(full), r["diagdom_layer1_weight_median"], 1e-12, "median row ratio");
        AreClose(block.Average(), r["diagdom_layer1_weight_block_mean"], 1e-12, "mean block ratio");
        AreClose(Median(block), r["diagdom_layer1_weight_block_median"], 1e-12, "median block ratio");
    }

    [TestMethod]
    public void HutchinsonIsExactOnADiagonalHessianAndConvergesToTheExplicitTrace()
    {
        using (var diag = new ExplicitQuadratic(new double[,] { { 3, 0, 0 }, { 0, -1, 0 }, { 0, 0, 0.5 } }, [1, 2, 3]))
        using (var opt = Gd(diag))
        {
            var r = Measure(new HessianTraceProbePlugin(), new Dictionary<string, object> { ["samples"] = 2L, ["min_samples"] = 2L }, Context(diag, opt));
            AreClose(2.5, r["hutchinson_trace"], 1e-14, "zᵀDz = tr D for every Rademacher z");
            Assert.AreEqual(0.0, r["hutchinson_stderr"]);
        }

        using var model = new TinyMlp(seed: 5);
        var H = ExplicitHessian(model);
        int n = H.GetLength(0);
        double trace = Enumerable.Range(0, n).Sum(i => H[i, i]);
        double off2 = 0;
        for (int i = 0; i < n; i++) for (int j = 0; j < n; j++) if (i != j) off2 += H[i, j] * H[i, j];
        using var gd = Gd(model);
        const int m = 4000;
        var est = Measure(new HessianTraceProbePlugin(), new Dictionary<string, object> { ["samples"] = (long)m, ["tolerance"] = 0.0 }, Context(model, gd));
        Assert.AreEqual((double)m, est["hutchinson_samples"]);
        // Rademacher variance of zᵀHz is 2 Σ_{i≠j} H_ij²: the reported standard error must estimate it, and the
        // estimate must lie within 4 of those standard errors of the explicit trace.
        double sigma = Math.Sqrt(2 * off2 / m);
        Assert.IsTrue(Math.Abs(est["hutchinson_stderr"] - sigma) < 0.1 * sigma, $"stderr {est["hutchinson_stderr"]} vs theory {sigma}");
        Assert.IsTrue(Math.Abs(est["hutchinson_trace"] - trace) < 4 * sigma, $"trace {est["hutchinson_trace"]} vs explicit {trace} (σ {sigma})");
        Assert.IsTrue(sigma < 0.05 * Math.Abs(trace), "the test would not discriminate a wrong estimator");
    }

    [TestMethod]
    public void HutchinsonStopsAtTheTolerance()
    {
        using var model = new TinyMlp(seed: 5);
        using var gd = Gd(model);
        var est = Measure(new HessianTraceProbePlugin(), new Dictionary<string, object> { ["samples"] = 5000L, ["tolerance"] = 0.05, ["min_samples"] = 10L },
            Context(model, gd));
        Assert.IsTrue(est["hutchinson_samples"] < 5000);
        Assert.IsTrue(est["hutchinson_stderr"] <= 0.05 * Math.Abs(est["hutchinson_trace"]));
    }

    [TestMethod]
    public void EmpiricalFisherLambda1EqualsExplicitMatrix()
    {
        using var model = new TinyMlp(seed: 8, n: 6);
        var ps = model.Parameters.Select(q => q.Tensor).ToArray();
        int p = (int)ps.Sum(t => t.numel());
        var F = new double[p, p];
        for (int i = 0; i < 6; i++)
        {
            using var idx = tensor(new long[] { i });
            var one = model.Train.Select(idx);
            var g = autograd.grad([model.Loss(one)], ps).Select(t => t.reshape(-1)).ToArray();
            var v = cat(g).data<double>().ToArray();
            for (int a = 0; a < p; a++) for (int b = 0; b < p; b++) F[a, b] += v[a] * v[b] / 6;
        }
        var pDiag = Enumerable.Range(0, p).Select(i => 0.2 + 0.1 * (i % 5)).ToArray();
        var P = new List<double[]>();
        int off = 0;
        foreach (var t in ps) { P.Add(pDiag.Skip(off).Take((int)t.numel()).ToArray()); off += (int)t.numel(); }
        using var opt = new FixedPreconditionerOptimizer(ps, 0.1, P);
        var r = Measure(new FisherProbePlugin(), new Dictionary<string, object> { ["samples"] = 6L }, Context(model, opt));
        AreClose(Eigenvalues(F)[^1], r["fisher_lambda1"], 1e-11, "λ1(F)");
        AreClose(Enumerable.Range(0, p).Sum(i => F[i, i]), r["fisher_trace"], 1e-12, "tr F");
        AreClose(Eigenvalues(Scale(F, pDiag.Select(x => 1 / Math.Sqrt(x)).ToArray()))[^1], r["fisher_precond_lambda1"], 1e-11, "λ1(P^-1/2 F P^-1/2)");
        Assert.AreEqual(6.0, r["fisher_samples"]);
    }
}
