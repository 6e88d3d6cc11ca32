using Harness.Abstractions.Numerics;
using Harness.Host.Training;
using Harness.Plugins.Models;
using TorchSharp;
using static TorchSharp.torch;
using static Harness.Tests.Models.ModelTestSupport;

namespace Harness.Tests.Models;

/// <summary>The exact toys against their closed forms, in float64.</summary>
[TestClass]
public sealed class ToyClosedFormTests
{
    /// <summary>Exact Hessian diagonal entry k: (H e_k)_k, one double backward per coordinate (what R_med needs).</summary>
    private static double[] HessianDiagonal(TorchObjective objective)
    {
        long p = objective.ParameterCount;
        var diag = new double[p];
        using var op = objective.Hessian();
        for (long k = 0; k < p; k++)
        {
            using var scope = NewDisposeScope();
            var e = zeros(p, dtype: ScalarType.Float64);
            e[k] = 1.0;
            diag[k] = op.Multiply(e)[k].ToDouble();
        }
        return diag;
    }

    private static double[,] ExplicitHessian(TorchObjective objective)
    {
        long p = objective.ParameterCount;
        var h = new double[p, p];
        using var op = objective.Hessian();
        for (long j = 0; j < p; j++)
        {
            using var scope = NewDisposeScope();
            var e = zeros(p, dtype: ScalarType.Float64);
            e[j] = 1.0;
            var col = op.Multiply(e).data<double>().ToArray();
            for (long i = 0; i < p; i++) h[i, j] = col[i];
        }
        return h;
    }

    [TestMethod]
    public void TwoParameterToyMatchesItsClosedFormsAtThePapersStart()
    {
        using var model = (TwoParameterToy)Create(new TwoParameterToyPlugin());
        var objective = new TorchObjective(model, model.Train);
        var eval = objective.Evaluate();
        // θ(0) = (2.8, 3.5), x = 2, y = 1.5: r = θ1θ2x − y = 18.1, E = ½r² = 163.805,
        // ∇E = r·x·(θ2, θ1) = (126.7, 101.36), ∇²E = [[θ2²x², x(2θ1θ2x − y)], [·, θ1²x²]] = [[49, 75.4], [75.4, 31.36]].
        Assert.AreEqual(163.805, eval.Loss, 1e-12);
        var g = eval.Gradient[0].data<double>().ToArray();
        Assert.AreEqual(126.7, g[0], 1e-12);
        Assert.AreEqual(101.36, g[1], 1e-12);
        var h = ExplicitHessian(objective);
        Assert.AreEqual(49.0, h[0, 0], 1e-12);
        Assert.AreEqual(75.4, h[0, 1], 1e-12);
        Assert.AreEqual(75.4, h[1, 0], 1e-12);
        Assert.AreEqual(31.36, h[1, 1], 1e-12);
    }

    [TestMethod]
    [DataRow(0.3, -1.7)]
    [DataRow(1.2247448713915890, 0.6123724356957945)] // on the minimum hyperbola θ1θ2 = 0.75
    [DataRow(-2.0, 0.1)]
    public void TwoParameterToyGradientAndHessianEqualTheClosedForms(double t1, double t2)
    {
        var plugin = new TwoParameterToyPlugin();
        using var model = (TwoParameterToy)Create(plugin, new() { ["theta1"] = t1, ["theta2"] = t2, ["x"] = 2.0, ["y"] = 1.5 });
        var objective = new TorchObjective(model, model.Train);
        var g = objective.Evaluate().Gradient[0].data<double>().ToArray();
        var (g1, g2) = model.ExactGradient(t1, t2);
        Assert.AreEqual(g1, g[0], 1e-12);
        Assert.AreEqual(g2, g[1], 1e-12);
        var h = ExplicitHessian(objective);
        var (h11, h12, h22) = model.ExactHessian(t1, t2);
        Assert.AreEqual(h11, h[0, 0], 1e-12);
        Assert.AreEqual(h12, h[0, 1], 1e-12);
        Assert.AreEqual(h12, h[1, 0], 1e-12);
        Assert.AreEqual(h22, h[1, 1], 1e-12);
    }

    [TestMethod]
    public void TwoParameterToyClosedFormsAreTheDerivativesOfE()
    {
        // The closed forms themselves, against E = ½(y − θ1θ2x)² written out (independent of torch).
        using var model = (TwoParameterToy)Create(new TwoParameterToyPlugin());
        double E(double a, double b) => 0.5 * System.Math.Pow(1.5 - a * b * 2.0, 2);
        double t1 = 0.7, t2 = -1.1, d = 1e-5;
        var (g1, g2) = model.ExactGradient(t1, t2);
        Assert.AreEqual((E(t1 + d, t2) - E(t1 - d, t2)) / (2 * d), g1, 1e-8);
        Assert.AreEqual((E(t1, t2 + d) - E(t1, t2 - d)) / (2 * d), g2, 1e-8);
        var (h11, h12, _) = model.ExactHessian(t1, t2);
        Assert.AreEqual((E(t1 + d, t2) - 2 * E(t1, t2) + E(t1 - d, t2)) / (d * d), h11, 1e-4);
        Assert.AreEqual((E(t1 + d, t2 + d) - E(t1 + d, t2 - d) - E(t1 - d, t2 + d) + E(t1 - d, t2 - d)) / (4 * d * d), h12, 1e-4);
    }

    /// <summary>docs/science.md §5: ∂²L/∂(W1)_ij² = v_i² (v = W2) and ∂²L/∂(W2)_i² = ‖w_i‖² (w_i = row i of W1), for
    /// L = ½‖W2W1 − a‖², at the paper's small initialisation and at a generic point of order one.</summary>
    [TestMethod]
    [DataRow(2.0, 0.0)]
    [DataRow(0.0, 0.0)]
    [DataRow(2.0, 0.7)]
    public void TwoLayerLinearHessianDiagonalEqualsTheClosedForms(double initExponent, double offset)
    {
        const int d = 6;
        using var model = (TwoLayerLinear)Create(new TwoLayerLinearPlugin(), new() { ["dim"] = (long)d, ["init_exponent"] = initExponent }, initSeed: 9, dataSeed: 2);
        if (offset != 0) MoveToGenericPoint(model, 13, offset);
        var w1 = model.Parameters[0].Tensor.detach();
        var w2 = model.Parameters[1].Tensor.detach();
        Assert.AreEqual("W1", model.Parameters[0].Name);
        Assert.AreEqual("W2", model.Parameters[1].Name);
        var diag = HessianDiagonal(new TorchObjective(model, model.Train));
        Assert.AreEqual(d * d + d, diag.Length);
        var v = w2.data<double>().ToArray();
        var rows = w1.square().sum(1).data<double>().ToArray();
        double scale = System.Math.Max(v.Max(x => x * x), rows.Max());
        for (int i = 0; i < d; i++)
        {
            for (int j = 0; j < d; j++)
                Assert.AreEqual(v[i] * v[i], diag[i * d + j], 1e-13 * scale, $"∂²L/∂(W1)_{i}{j}²");
            Assert.AreEqual(rows[i], diag[d * d + i], 1e-13 * scale, $"∂²L/∂(W2)_{i}²");
        }
    }

    /// <summary>The closed-form loss is the population loss: on a whitened sample (XXᵀ/m = I exactly) with labels
    /// Y = aX, the empirical MSE (1/2m)‖W2W1X − Y‖² and its gradient equal the model's.</summary>
    [TestMethod]
    public void TwoLayerLinearLossIsTheWhitenedSquareLoss()
    {
        const int d = 5, m = 17;
        using var model = (TwoLayerLinear)Create(new TwoLayerLinearPlugin(), new() { ["dim"] = (long)d, ["init_exponent"] = 0.0 }, initSeed: 1, dataSeed: 3);
        var (q, _) = linalg.qr(randn(m, d, dtype: ScalarType.Float64, generator: new TorchSharp.torch.Generator(5)));
        var x = q.T * System.Math.Sqrt(m);                                     // d×m, XXᵀ/m = I
        Assert.IsTrue((x.matmul(x.T) / m).allclose(eye(d, dtype: ScalarType.Float64), atol: 1e-13));
        var y = model.Teacher.matmul(x);                                       // 1×m
        var w1 = model.Parameters[0].Tensor;
        var w2 = model.Parameters[1].Tensor;
        var empirical = (w2.matmul(w1).matmul(x) - y).square().sum() / (2.0 * m);
        var population = model.Loss(model.Train);
        Assert.AreEqual(empirical.ToDouble(), population.ToDouble(), 1e-12 * empirical.ToDouble());
        var ge = autograd.grad([empirical], [w1, w2]);
        var gp = autograd.grad([population], [w1, w2]);
        for (int i = 0; i < 2; i++) Assert.IsTrue(ge[i].allclose(gp[i], rtol: 1e-11, atol: 1e-13), $"gradient of {model.Parameters[i].Name}");
    }

    [TestMethod]
    public void TwoLayerLinearFollowsThePapersSetup()
    {
        const int d = 64;
        using var model = (TwoLayerLinear)Create(new TwoLayerLinearPlugin(), new() { ["dim"] = (long)d }, initSeed: 0, dataSeed: 0);
        Assert.AreEqual(System.Math.Pow(d, -2), model.Sigma0, 1e-18);
        var a = model.Teacher.data<double>().ToArray();
        Assert.AreEqual(d, a.Length);
        Assert.IsTrue(a.All(x => x >= 0.5 && x <= 1.5), "teacher coordinates positive, Θ(1)");
        Assert.IsGreaterThan(0.2, a.Max() - a.Min(), "teacher coordinates are spread, not constant");
        // W1 entries N(0, σ0²): the sample std of 4096 draws is within 5% (≈ 4.5 standard errors) of σ0.
        double std = model.Parameters[0].Tensor.detach().std().ToDouble();
        Assert.AreEqual(model.Sigma0, std, 0.05 * model.Sigma0);
        Assert.IsNull(model.Train.Inputs, "population loss: no sampled data");
    }

    [TestMethod]
    public void QuadraticHasTheGivenSpectrumAndItsDiagonalAsHessianDiagonal()
    {
        using var model = (Quadratic)Create(new QuadraticPlugin(), new() { ["dim"] = 7L, ["rotated"] = true, ["spectrum"] = "geometric", ["lambda_min"] = 0.01, ["lambda_max"] = 5.0 }, dataSeed: 4);
        var eig = linalg.eigvalsh(model.A).data<double>().ToArray().OrderByDescending(x => x).ToArray();
        for (int i = 0; i < 7; i++) Assert.AreEqual(model.Spectrum[i], eig[i], 1e-12 * 5.0);
        Assert.AreEqual(5.0, model.Spectrum[0], 1e-15);
        Assert.AreEqual(0.01, model.Spectrum[6], 1e-15);
        Assert.IsGreaterThan(1e-3, (model.A - diag(model.A.diagonal())).abs().max().ToDouble(), "rotated A is not diagonal");
        var hd = HessianDiagonal(new TorchObjective(model, model.Train));
        var ad = model.A.diagonal().data<double>().ToArray();
        for (int i = 0; i < 7; i++) Assert.AreEqual(ad[i], hd[i], 1e-14);
    }

    [TestMethod]
    public void QuadraticTakesAGivenSymmetricHessianAndStartingPoint()
    {
        // The coherence example of docs/science.md §6: H = [[1, 0.9], [0.9, 1]] (eigenvalues 1.9, 0.1).
        using var model = (Quadratic)Create(new QuadraticPlugin(), new() { ["hessian"] = "1 0.9; 0.9 1", ["theta0"] = "2.8, -3.5" });
        var a = model.A.data<double>().ToArray();
        CollectionAssert.AreEqual(new[] { 1.0, 0.9, 0.9, 1.0 }, a);
        CollectionAssert.AreEqual(new[] { 2.8, -3.5 }, model.Parameters[0].Tensor.detach().data<double>().ToArray());
        Assert.AreEqual(1.9, model.Spectrum[0], 1e-15);
        Assert.AreEqual(0.1, model.Spectrum[1], 1e-15);
        var eval = new TorchObjective(model, model.Train).Evaluate();
        // ½θᵀAθ = ½(2.8² + 3.5² + 2·0.9·2.8·(−3.5)) = ½(7.84 + 12.25 − 17.64) = 1.225.
        Assert.AreEqual(1.225, eval.Loss, 1e-12);
        // ∇ = Aθ = (2.8 − 3.15, 2.52 − 3.5) = (−0.35, −0.98).
        var g = eval.Gradient[0].data<double>().ToArray();
        Assert.AreEqual(-0.35, g[0], 1e-12);
        Assert.AreEqual(-0.98, g[1], 1e-12);
    }

    [TestMethod]
    public void QuadraticStartingPointAloneKeepsTheSpectrum()
    {
        using var model = (Quadratic)Create(new QuadraticPlugin(), new() { ["dim"] = 3L, ["lambda_max"] = 3.0, ["lambda_min"] = 1.0, ["theta0"] = "1 2 3" });
        CollectionAssert.AreEqual(new[] { 1.0, 2.0, 3.0 }, model.Parameters[0].Tensor.detach().data<double>().ToArray());
        CollectionAssert.AreEqual(new[] { 3.0, 2.0, 1.0 }, model.Spectrum.ToArray());
    }

    [TestMethod]
    [DataRow("1 0.9; 0.8 1", "", "hessian is not symmetric: entry (0, 1) = 0.9 but (1, 0) = 0.8")]
    [DataRow("1 2; 3", "", "hessian row 1 has 1 entries, expected 2 (a square matrix)")]
    [DataRow("1 x; 2 1", "", "hessian row 0, entry 1: 'x' is not a number")]
    [DataRow("1 0; 0 1", "1 2 3", "theta0 has 3 entries but the quadratic has 2 parameters")]
    [DataRow("", "1 2", "theta0 has 2 entries but the quadratic has 10 parameters")]
    public void QuadraticRejectsAMalformedHessianOrStartingPoint(string hessian, string theta0, string message)
    {
        var e = Assert.ThrowsExactly<ArgumentException>(() =>
            Create(new QuadraticPlugin(), new() { ["hessian"] = hessian, ["theta0"] = theta0 }).Dispose());
        Assert.AreEqual(message, e.Message);
    }
}
