using Harness.Abstractions;
using Harness.Abstractions.Numerics;
using Harness.Host.Training;
using Harness.Plugins.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Tests.Math;

[TestClass]
public sealed class HessianTests
{
    /// <summary>The explicit Hessian, row by row: row i is the gradient of the i-th gradient component.</summary>
    internal static Tensor ExplicitHessian(IModel model)
    {
        var ps = model.Parameters.Select(p => p.Tensor).ToArray();
        var loss = model.Loss(model.Train);
        var g = torch.autograd.grad([loss], ps, create_graph: true, retain_graph: true);
        var flat = cat(g.Select(t => t.reshape(-1)).ToArray());
        long p = flat.shape[0];
        var rows = new Tensor[p];
        for (long i = 0; i < p; i++)
        {
            var r = torch.autograd.grad([flat[i]], ps, retain_graph: true, allow_unused: true);
            rows[i] = cat(r.Select((t, k) => (t is null || t.IsInvalid ? zeros_like(ps[k]) : t).reshape(-1)).ToArray());
        }
        return stack(rows).detach();
    }

    private static double RelativeError(Tensor a, Tensor b) =>
        (a - b).norm().ToDouble() / System.Math.Max(b.norm().ToDouble(), 1e-300);

    [TestMethod]
    public void HessianVectorProductsEqualExplicitHessianTimesVector()
    {
        using var scope = NewDisposeScope();
        var model = new TinyMlp();
        var h = ExplicitHessian(model);
        Assert.AreEqual(26, h.shape[0]);
        Assert.IsTrue(RelativeError(h, h.T) < 1e-12, "explicit Hessian is symmetric");
        var objective = new TorchObjective(model, model.Train);
        using var op = objective.Hessian();
        var gen = new torch.Generator(3);
        for (int k = 0; k < 5; k++)
        {
            var v = randn(26, dtype: ScalarType.Float64, generator: gen);
            var hv = op.Multiply(v);
            double err = RelativeError(hv, h.mv(v));
            Assert.IsTrue(err < 1e-8, $"HVP relative error {err:E2}");
        }
        Assert.AreEqual(5, op.Products);
        Assert.AreEqual(5, objective.HessianProducts);
    }

    [TestMethod]
    public void ExplicitHessianAgreesWithFiniteDifferencesOfTheGradient()
    {
        // Independent of autograd's second derivatives: central differences of first derivatives.
        using var scope = NewDisposeScope();
        var model = new TinyMlp();
        var h = ExplicitHessian(model);
        var ps = model.Parameters.Select(p => p.Tensor).ToArray();
        var objective = new TorchObjective(model, model.Train);
        const double step = 1e-5;
        for (int i = 0; i < 26; i += 5)
        {
            var e = zeros(26, dtype: ScalarType.Float64);
            e[i] = 1.0;
            var dir = ParameterVectors.Unflatten(e, ps);
            var plus = ParameterVectors.Flatten(objective.EvaluateAt(dir, step).Gradient);
            var minus = ParameterVectors.Flatten(objective.EvaluateAt(dir, -step).Gradient);
            var column = (plus - minus) / (2 * step);
            double err = RelativeError(column, h[.., i]);
            Assert.IsTrue(err < 1e-7, $"column {i}: finite-difference error {err:E2}");
        }
    }

    [TestMethod]
    public void QuadraticHessianIsA()
    {
        using var scope = NewDisposeScope();
        var plugin = new QuadraticPlugin();
        var hp = new HyperparameterValues(plugin.Hyperparameters, new Dictionary<string, object> { ["dim"] = 8L, ["rotated"] = true, ["lambda_max"] = 3.0, ["lambda_min"] = -1.0 });
        using var model = (Quadratic)plugin.Create(new ModelContext(hp, 1, 2, ScalarType.Float64, CPU, null));
        var objective = new TorchObjective(model, model.Train);
        Assert.IsTrue(objective.Evaluate().Gradient[0].allclose(model.A.mv(model.Parameters[0].Tensor.detach()), rtol: 1e-12, atol: 1e-14));
        using var op = objective.Hessian();
        var v = randn(8, dtype: ScalarType.Float64, generator: new torch.Generator(5));
        Assert.IsTrue(RelativeError(op.Multiply(v), model.A.mv(v)) < 1e-12);
    }

    [TestMethod]
    public void LossAtOffsetRestoresParametersExactly()
    {
        using var scope = NewDisposeScope();
        var model = new TinyMlp();
        var before = model.Parameters.Select(p => p.Tensor.detach().clone()).ToArray();
        var objective = new TorchObjective(model, model.Train);
        var dir = model.Parameters.Select(p => randn_like(p.Tensor.detach())).ToArray();
        double shifted = objective.LossAt(dir, 0.37);
        Assert.AreNotEqual(objective.Evaluate().Loss, shifted);
        for (int i = 0; i < before.Length; i++)
            Assert.IsTrue(before[i].eq(model.Parameters[i].Tensor.detach()).all().item<bool>(), $"parameter {i} restored bit for bit");
    }
}
