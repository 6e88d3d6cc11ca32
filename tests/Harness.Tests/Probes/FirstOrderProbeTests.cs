using Harness.Abstractions;
using Harness.Plugins.Probes;
using TorchSharp;
using static Harness.Tests.Probes.ProbeTestSupport;
using static TorchSharp.torch;

namespace Harness.Tests.Probes;

using Math = System.Math;

[TestClass]
public sealed class FirstOrderProbeTests
{
    [TestMethod]
    public void ImplicitBiasVectorEqualsSpecFormulaOnPaperToy()
    {
        const double t1 = 2.8, t2 = 3.5, x = ToyModel.X, y = ToyModel.Y;
        const double h = 0.01, b1 = 0.9, b2 = 0.999, eps = 1e-3;
        const long n = 5;
        using var model = new ToyModel(t1, t2);
        using var opt = new FixedPreconditionerOptimizer(model.Parameters.Select(p => p.Tensor).ToList(), h, null, MomentumKind.Ema, b1);
        var shared = new Dictionary<string, object>();
        var plugin = new ImplicitBiasProbePlugin();
        var hp = new HyperparameterValues(plugin.Hyperparameters, new Dictionary<string, object> { ["beta2"] = b2, ["eps"] = eps });
        using var probe = plugin.Create(hp);     // owns the published b and w until disposed
        var ctx = Context(model, opt, step: n, shared: shared);
        var m = probe.Measure(ctx);
        Assert.AreEqual(1, ((Harness.Host.Training.TorchObjective)ctx.Objective).HessianProducts, "w = H u is one HVP");
        CollectionAssert.IsSubsetOf(m.Keys.ToArray(), plugin.MetricsFor(hp).Select(x => x.Name).ToArray());

        // Direct float64 evaluation of docs/science.md §4 with the toy's analytic gradient and Hessian.
        double r = y - t1 * t2 * x;
        double[] g = [-r * t2 * x, -r * t1 * x];
        double[,] H = { { t2 * x * t2 * x, t1 * t2 * x * x - r * x }, { t1 * t2 * x * x - r * x, t1 * x * t1 * x } };
        var explicitH = ExplicitHessian(model);
        for (int i = 0; i < 2; i++) for (int j = 0; j < 2; j++) AreClose(H[i, j], explicitH[i, j], 1e-14, $"analytic H[{i},{j}]");
        double C(double b) => b / (1 - b) - (n + 1) * Math.Pow(b, n + 1) / (1 - Math.Pow(b, n + 1));
        double[] root = g.Select(gi => Math.Sqrt(gi * gi + eps)).ToArray();
        double[] u = [g[0] / root[0], g[1] / root[1]];
        double[] w = [H[0, 0] * u[0] + H[0, 1] * u[1], H[1, 0] * u[0] + H[1, 1] * u[1]];
        double[] b = new double[2];
        for (int j = 0; j < 2; j++)
            b[j] = h / 2 * ((2 * C(b1) + 1) - (2 * C(b2) + 1) * g[j] * g[j] / (g[j] * g[j] + eps)) * w[j];

        var bt = ((Tensor)shared[ImplicitBiasProbePlugin.BiasKey]).data<double>().ToArray();
        var wt = ((Tensor)shared[ImplicitBiasProbePlugin.HuKey]).data<double>().ToArray();
        for (int j = 0; j < 2; j++)
        {
            AreClose(w[j], wt[j], 1e-13, $"w_{j} = (H u)_{j}");
            AreClose(b[j], bt[j], 1e-13, $"b_{j}");
        }
        AreClose(root.Sum(), m["implicit_bias_n_eps"], 1e-14, "N_ε");
        AreClose(root.Sum() - 2 * Math.Sqrt(eps), m["implicit_bias_n_eps_excess"], 1e-14, "N_ε excess");
        AreClose(-(w[0] * b[0] / root[0] + w[1] * b[1] / root[1]), m["implicit_bias_d_bias"], 1e-13, "D_bias");
        AreClose(Math.Max(Math.Abs(b[0] / g[0]), Math.Abs(b[1] / g[1])), m["implicit_bias_kappa"], 1e-13, "κ");
        AreClose(Math.Sqrt(b[0] * b[0] + b[1] * b[1]), m["implicit_bias_norm"], 1e-13, "‖b‖");
        AreClose(2 * C(b1) + 1, m["implicit_bias_coef1"], 1e-15, "2c_β1(n)+1");
        double A = (1 + b1) / (1 - b1), B = (1 + b2) / (1 - b2);
        double penalLimit = g.Count(gj => A - B + B * eps / (gj * gj + eps) > 0) / 2.0;
        double penal = g.Count(gj => (2 * C(b1) + 1) - (2 * C(b2) + 1) * gj * gj / (gj * gj + eps) > 0) / 2.0;
        Assert.AreEqual(penalLimit, m["implicit_bias_penalised_fraction_limit"]);
        Assert.AreEqual(penal, m["implicit_bias_penalised_fraction"]);
        double frac = g.Count(gj => Math.Abs(gj) / Math.Sqrt(eps) > 10) / 2.0;
        Assert.AreEqual(frac, m["implicit_bias_frac_sign"]);
    }

    [TestMethod]
    public void FiniteNCoefficientTendsToThePapersLimit()
    {
        AreClose(0, ImplicitBiasProbe.C(0.9, 0), 1e-15, "c(0) = 0");
        AreClose(0.9 / 0.1, ImplicitBiasProbe.C(0.9, 2000), 1e-12, "c(∞) = β/(1−β)");
        Assert.AreEqual(0.0, ImplicitBiasProbe.C(0, 7));
    }

    [TestMethod]
    public void SamSharpnessMatchesQuadraticClosedForm()
    {
        double[,] a = { { 2, 0.5 }, { 0.5, 1 } };
        double[] th = [0.4, -0.3];
        using var model = new ExplicitQuadratic(a, th);
        using var opt = new FixedPreconditionerOptimizer(model.Parameters.Select(p => p.Tensor).ToList(), 0.1, null);
        double[] Grad(double[] v) => [a[0, 0] * v[0] + a[0, 1] * v[1], a[1, 0] * v[0] + a[1, 1] * v[1]];
        double F(double[] v) => 0.5 * (v[0] * Grad(v)[0] + v[1] * Grad(v)[1]);
        double[] Step(double[] gr, double rho) { double nn = Math.Sqrt(gr[0] * gr[0] + gr[1] * gr[1]); return [rho * gr[0] / nn, rho * gr[1] / nn]; }
        const double rho = 0.05;
        var d1 = Step(Grad(th), rho);
        var d2 = Step(Grad([th[0] + d1[0], th[1] + d1[1]]), rho);

        var one = Measure(new SamProbePlugin(), null, Context(model, opt));
        AreClose(F([th[0] + d1[0], th[1] + d1[1]]) - F(th), one["sam_sharpness"], 1e-12, "one-step SAM");
        var g = Grad(th);
        AreClose(rho * Math.Sqrt(g[0] * g[0] + g[1] * g[1]), one["sam_first_order"], 1e-14, "ρ‖g‖");
        var two = Measure(new SamProbePlugin(), new Dictionary<string, object> { ["steps"] = 2L }, Context(model, opt));
        AreClose(F([th[0] + d2[0], th[1] + d2[1]]) - F(th), two["sam_sharpness"], 1e-12, "two-step SAM");
        CollectionAssert.AreEqual(th, Flat(model.Parameters.Select(p => p.Tensor).ToList()), "θ restored");
    }

    [TestMethod]
    public void UpdateGeometryFromGivenUpdatesAndTopVector()
    {
        using var model = new ExplicitQuadratic(new double[,] { { 1, 0, 0 }, { 0, 1, 0 }, { 0, 0, 1 } }, [1, 2, 2]);
        using var opt = new FixedPreconditionerOptimizer(model.Parameters.Select(p => p.Tensor).ToList(), 0.1, null);
        var initial = new List<Tensor> { tensor(new double[] { 1, 0, 0 }) };
        var last = new List<Tensor> { tensor(new double[] { 3, 0, 4 }) };
        var before = new List<Tensor> { tensor(new double[] { 0, 0, -1 }) };
        var top = tensor(new double[] { 0, 0.6, 0.8 });
        var shared = new Dictionary<string, object> { [ProbeBlackboard.TopEigenvector] = top, [ProbeBlackboard.TopEigenvectorStep] = 5L };
        var m = Measure(new UpdateGeometryProbePlugin(), null, Context(model, opt, step: 7, shared: shared, initial: initial, previousUpdate: last, before: before));
        AreClose(5, m["update_norm"], 1e-15, "‖u_t‖");
        AreClose(-0.8, m["update_cos_prev"], 1e-15, "cos(u_t, u_t−1)");
        AreClose(3.2 / 5, m["update_cos_top"], 1e-15, "|cos(u_t, v_top)|");
        Assert.AreEqual(2.0, m["update_top_age"]);
        AreClose(Math.Sqrt(8), m["update_dist_init"], 1e-15, "‖θ − θ0‖");
    }

    [TestMethod]
    public void PreconditionerPercentilesAreOrderStatistics()
    {
        using var model = new ExplicitQuadratic(new double[101, 101], new double[101]);
        var p = Enumerable.Range(0, 101).Select(i => (double)(100 - i) + 1).ToArray();   // 1 … 101
        using var opt = new FixedPreconditionerOptimizer(model.Parameters.Select(q => q.Tensor).ToList(), 0.1, [p]);
        var m = Measure(new PreconditionerStatsProbePlugin(), null, Context(model, opt));
        AreClose(1, m["precond_p_min"], 0, "min");
        AreClose(1.1, m["precond_p_q001"], 1e-14, "0.1 % (position 0.1)");
        AreClose(2, m["precond_p_q01"], 1e-14, "1 %");
        AreClose(6, m["precond_p_q05"], 1e-14, "5 %");
        AreClose(51, m["precond_p_q50"], 0, "median");
        AreClose(100, m["precond_p_q99"], 1e-14, "99 %");
        AreClose(101, m["precond_p_max"], 0, "max");

        using var gd = new FixedPreconditionerOptimizer(model.Parameters.Select(q => q.Tensor).ToList(), 0.1, null);
        Assert.AreEqual(0, Measure(new PreconditionerStatsProbePlugin(), null, Context(model, gd)).Count);
    }

    [TestMethod]
    public void ParametersProbeWritesThetaCoordinatesAndNormsForSmallModels()
    {
        using var model = new ExplicitQuadratic(new double[,] { { 1, 0, 0 }, { 0, 1, 0 }, { 0, 0, 1 } }, [3, -4, 0]);
        using var opt = new FixedPreconditionerOptimizer(model.Parameters.Select(p => p.Tensor).ToList(), 0.1, null);
        var m = Measure(new ParametersProbePlugin(), null, Context(model, opt), out var declared);
        CollectionAssert.AreEqual(new[] { "theta_0", "theta_1", "theta_2", "theta_l1", "theta_l2" }, declared.Select(d => d.Name).ToArray());
        Assert.AreEqual(3.0, m["theta_0"]);
        Assert.AreEqual(-4.0, m["theta_1"]);
        Assert.AreEqual(0.0, m["theta_2"]);
        Assert.AreEqual(7.0, m["theta_l1"]);
        AreClose(5.0, m["theta_l2"], 1e-15, "‖θ‖2");

        // Above max_parameters only the norms are columns (one column per coordinate would swamp the trace).
        using var big = new TinyMlp(seed: 1);
        var mb = Measure(new ParametersProbePlugin(), new Dictionary<string, object> { ["max_parameters"] = 2L }, Context(model, opt), out var small);
        CollectionAssert.AreEqual(new[] { "theta_l1", "theta_l2" }, small.Select(d => d.Name).ToArray());
        Assert.AreEqual(7.0, mb["theta_l1"]);
        var values = new HyperparameterValues(new ParametersProbePlugin().Hyperparameters, new Dictionary<string, object> { ["max_parameters"] = 20L });
        Assert.AreEqual(2, new ParametersProbePlugin().MetricsFor(values, big.Parameters).Count, "TinyMlp has 26 parameters");
        Assert.AreEqual(28, new ParametersProbePlugin().MetricsFor(new HyperparameterValues(new ParametersProbePlugin().Hyperparameters), big.Parameters).Count);
    }
}
