using Harness.Abstractions;
using Harness.Host.Training;
using Harness.Plugins.Tuners;
using Harness.Tests.Optimizers;

namespace Harness.Tests.Tuners;

/// <summary>The direction contract: wrapping a base optimizer with a tuner that returns the base's own η reproduces the
/// base's trajectory (float64, the noisy problem of the optimizer reference tests).</summary>
[TestClass]
public sealed class WrappingTests
{
    private const int Steps = 25;

    /// <summary>A schedule that changes η every step, so η_t really flows from the host to the commit.</summary>
    private static double Lr(double lr, int t) => lr * (1 + 0.5 * System.Math.Sin(t));

    /// <summary>Largest relative error over the run between the base optimizer's own steps and Direction + commit.</summary>
    private static double Compare(string optimizer, Dictionary<string, object> hp, bool schedule = true)
    {
        var problem = new RefProblem(seed: 17);
        var p1 = problem.Parameters();
        var p2 = problem.Parameters();
        var o1 = new ArrayObjective(p1, problem);
        var o2 = new ArrayObjective(p2, problem);
        using var plain = OptimizerTestKit.Create(optimizer, p1, hp);
        using var tuned = new TunedOptimizer((IDirectionalOptimizer)OptimizerTestKit.Create(optimizer, p2, hp), new ConstantTuner());
        double lr = plain.LearningRate, worst = 0;
        for (int t = 1; t <= Steps; t++)
        {
            o1.T = o2.T = t;
            if (schedule) plain.LearningRate = tuned.LearningRate = Lr(lr, t);
            var l1 = plain.Step(o1);
            var l2 = tuned.Step(o2);
            Assert.AreEqual(l1.Loss, l2.Loss, 1e-12 * System.Math.Abs(l1.Loss), $"{optimizer} step {t}");
            Assert.AreEqual(plain.LearningRate, tuned.LearningRate, $"{optimizer} step {t}: η_t");
            double? th = StabilityThreshold.Of(plain);   // null for the sign-based optimizers, through the wrapper too
            Assert.AreEqual(th.HasValue, StabilityThreshold.Of(tuned).HasValue, $"{optimizer} step {t}: threshold rule");
            if (th is { } v) Assert.AreEqual(v, StabilityThreshold.Of(tuned)!.Value, 1e-12 * v, $"{optimizer} step {t}: threshold");
            Assert.AreEqual(plain.ThresholdRule, tuned.ThresholdRule, $"{optimizer}: the tuner forwards the threshold rule");
            var a = ArrayObjective.Read(p1);
            var b = ArrayObjective.Read(p2);
            for (int i = 0; i < a.Length; i++) worst = System.Math.Max(worst, OptimizerTestKit.RelativeError(b[i], a[i]));
        }
        foreach (var p in p1.Concat(p2)) p.Dispose();
        return worst;
    }

    [TestMethod]
    [DataRow("adam")]
    [DataRow("rmsprop")]
    [DataRow("heavy_ball")]
    public void WrappingWithTheBaseLearningRateReproducesTheBaseTrajectory(string optimizer)
    {
        var hp = optimizer == "heavy_ball" ? new Dictionary<string, object> { ["lr"] = 0.02, ["momentum"] = 0.9 } : new Dictionary<string, object> { ["lr"] = 0.02 };
        Assert.IsLessThanOrEqualTo(1e-12, Compare(optimizer, hp));
    }

    [TestMethod]
    public void DecoupledWeightDecayIsPartOfTheDirection()
    {
        var hp = new Dictionary<string, object> { ["lr"] = 0.02, ["weight_decay"] = 0.1, ["decoupled_weight_decay"] = true };
        Assert.IsLessThanOrEqualTo(1e-12, Compare("adam", hp));
        Assert.IsLessThanOrEqualTo(1e-12, Compare("heavy_ball", new Dictionary<string, object>(hp) { ["momentum"] = 0.9 }));
    }

    [TestMethod]
    public void EveryCatalogueOptimizerIsDirectionalAndDirectionPlusCommitEqualsStep()
    {
        foreach (var name in OptimizerTestKit.Plugins.Keys.Order(StringComparer.Ordinal))
        {
            var schema = OptimizerTestKit.Plugins[name].Hyperparameters;
            var hp = new Dictionary<string, object> { ["lr"] = 0.01 };
            if (schema.Any(s => s.Name == "weight_decay")) hp["weight_decay"] = 0.05;
            Assert.IsLessThanOrEqualTo(1e-12, Compare(name, hp), name);
        }
    }

    [TestMethod]
    public void DirectionLeavesThetaUnchangedAndIsTheStepAtLearningRateOne()
    {
        var problem = new RefProblem(seed: 5);
        var p = problem.Parameters();
        var obj = new ArrayObjective(p, problem);
        using var gd = (IDirectionalOptimizer)OptimizerTestKit.Create("gd", p, new Dictionary<string, object> { ["lr"] = 0.3 });
        var before = ArrayObjective.Read(p);
        var g = ArrayObjective.Read(obj.Evaluate().Gradient);
        var u = ArrayObjective.Read(gd.Direction(obj));
        CollectionAssert.AreEqual(before.SelectMany(x => x).ToArray(), ArrayObjective.Read(p).SelectMany(x => x).ToArray());
        CollectionAssert.AreEqual(g.SelectMany(x => x).Select(x => -x).ToArray(), u.SelectMany(x => x).ToArray(), "GD's direction is −g exactly");
        Assert.AreEqual(0.3, gd.LearningRate, "Direction does not touch η");
    }
}
