using Harness.Abstractions;
using Harness.Host.Training;
using Harness.Plugins.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Tests.Math;

[TestClass]
public sealed class QuadraticObjectiveTests
{
    [TestMethod]
    public void GradientOfQuadraticIsATheta()
    {
        var plugin = new QuadraticPlugin();
        var hp = new HyperparameterValues(plugin.Hyperparameters, new Dictionary<string, object> { ["dim"] = 5L, ["rotated"] = true });
        using var model = (Quadratic)plugin.Create(new ModelContext(hp, 1, 2, ScalarType.Float64, CPU, null));
        var objective = new TorchObjective(model, model.Train);
        var eval = objective.Evaluate();
        var expected = model.A.mv(model.Parameters[0].Tensor.detach());
        Assert.IsTrue(eval.Gradient[0].allclose(expected, rtol: 1e-12, atol: 1e-14));
    }
}
