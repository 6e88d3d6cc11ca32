using Harness.Abstractions;
using Harness.Plugins.Models;
using TorchSharp;
using static TorchSharp.torch;
using static Harness.Tests.Models.ModelTestSupport;

namespace Harness.Tests.Models;

/// <summary>For every model, in float64: the host's Hessian-vector product (double backward) equals the central finite
/// difference of the gradient, so every curvature probe works on it.</summary>
[TestClass]
public sealed class CurvatureTests
{
    /// <summary>Small configurations of every model (one per interesting code path), with the examples used.</summary>
    internal static readonly Dictionary<string, (IModelPlugin plugin, Dictionary<string, object> hp, long batch)> Cases = new()
    {
        ["quadratic_rotated"] = (new QuadraticPlugin(), new() { ["dim"] = 12L, ["rotated"] = true, ["lambda_min"] = -0.5 }, 1),
        ["two_parameter_toy"] = (new TwoParameterToyPlugin(), new(), 1),
        ["two_layer_linear"] = (new TwoLayerLinearPlugin(), new() { ["dim"] = 8L, ["init_exponent"] = 0.0 }, 1),
        ["teacher_student"] = (new TeacherStudentPlugin(), new() { ["input_dim"] = 5L, ["width"] = 6L, ["depth"] = 2L, ["train_size"] = 20L, ["test_size"] = 0L, ["noise"] = 0.1 }, 20),
        ["fashion_mlp_mse"] = (new FashionMlpPlugin(), new() { ["depth"] = 2L, ["width"] = 12L, ["train_size"] = 20L, ["test_size"] = 0L }, 20),
        ["fashion_mlp_ce"] = (new FashionMlpPlugin(), new() { ["depth"] = 1L, ["width"] = 12L, ["train_size"] = 20L, ["test_size"] = 0L, ["loss"] = "cross_entropy" }, 20),
        ["cnn_mse"] = (new CnnPlugin(), new() { ["conv1"] = 4L, ["conv2"] = 5L, ["conv3"] = 6L, ["fc1"] = 12L, ["fc2"] = 8L, ["train_size"] = 10L, ["test_size"] = 0L }, 10),
        ["cnn_ce"] = (new CnnPlugin(), new() { ["conv1"] = 3L, ["conv2"] = 4L, ["conv3"] = 5L, ["fc1"] = 10L, ["fc2"] = 7L, ["train_size"] = 10L, ["test_size"] = 0L, ["loss"] = "cross_entropy" }, 10),
        ["resnet_scalar"] = (new ResNetPlugin(), new() { ["base_width"] = 4L, ["train_size"] = 10L, ["test_size"] = 0L }, 4),
        ["resnet_group"] = (new ResNetPlugin(), new() { ["base_width"] = 4L, ["norm"] = "group", ["norm_groups"] = 2L, ["residual_scalar"] = false, ["train_size"] = 10L, ["test_size"] = 0L, ["loss"] = "cross_entropy" }, 4),
        ["resnet_layer"] = (new ResNetPlugin(), new() { ["base_width"] = 4L, ["norm"] = "layer", ["stem_stride"] = 1L, ["train_size"] = 10L, ["test_size"] = 0L }, 4),
        ["transformer"] = (new TinyTransformerPlugin(), new() { ["vocab"] = 5L, ["seq_len"] = 4L, ["d_model"] = 8L, ["heads"] = 2L, ["mlp_width"] = 16L, ["train_size"] = 12L, ["test_size"] = 0L }, 12),
        ["transformer_causal_mse_nonorm"] = (new TinyTransformerPlugin(), new() { ["task"] = "prefix_sum", ["vocab"] = 5L, ["seq_len"] = 4L, ["d_model"] = 8L, ["heads"] = 2L, ["mlp_width"] = 16L, ["causal"] = true, ["norm"] = "none", ["loss"] = "mse", ["train_size"] = 12L, ["test_size"] = 0L }, 12),
    };

    /// <summary>Central-difference step: the truncation error (∝ h²) and the rounding error (∝ ε/h) are both ≈ 1e-9
    /// relative at h = 1e-6 in float64 (measured 1e-10 … 4e-9 over these cases); a wrong product is off by O(1).</summary>
    private const double Step = 1e-6;

    /// <summary>Every case of <see cref="Cases"/>, one test row each.</summary>
    public static IEnumerable<object[]> CaseNames => Cases.Keys.Select(k => new object[] { k });
    private const double Tolerance = 1e-6;

    [TestMethod]
    [DynamicData(nameof(CaseNames))]
    public void HessianVectorProductMatchesFiniteDifferencesOfTheGradient(string name)
    {
        var (plugin, hp, n) = Cases[name];
        using var scope = NewDisposeScope();
        using var model = Create(plugin, hp, initSeed: 3, dataSeed: 4);
        var batch = Head(model, n);
        MoveToGenericPoint(model, 5);
        var before = Snapshot(model);
        long p = model.Parameters.Sum(q => q.Tensor.numel());
        foreach (ulong seed in new ulong[] { 11, 12 })
        {
            var v = UnitDirection(p, seed);
            var (hv, fd) = HvpAndFiniteDifference(model, batch, v, Step);
            Assert.IsGreaterThan(1e-6, hv.norm().ToDouble(), $"{name}: H·v vanishes, the check would be empty");
            double err = RelativeError(hv, fd);
            Assert.IsLessThan(Tolerance, err, $"{name}: ‖Hv − FD‖/‖FD‖ = {err:e3}");
        }
        for (int i = 0; i < before.Length; i++)
            Assert.IsTrue(model.Parameters[i].Tensor.eq(before[i]).all().item<bool>(), $"{name}: parameter {model.Parameters[i].Name} not restored");
    }

    /// <summary>uᵀ(Hv) = vᵀ(Hu): the operator probes run Lanczos on is symmetric (to rounding).</summary>
    [TestMethod]
    [DynamicData(nameof(CaseNames))]
    public void HessianOperatorIsSymmetric(string name)
    {
        var (plugin, hp, n) = Cases[name];
        using var scope = NewDisposeScope();
        using var model = Create(plugin, hp, initSeed: 3, dataSeed: 4);
        MoveToGenericPoint(model, 5);
        var objective = new Harness.Host.Training.TorchObjective(model, Head(model, n));
        long p = objective.ParameterCount;
        var u = UnitDirection(p, 21);
        var v = UnitDirection(p, 22);
        using var op = objective.Hessian();
        var hu = op.Multiply(u);
        var hv = op.Multiply(v);
        double a = u.dot(hv).ToDouble(), b = v.dot(hu).ToDouble();
        double scale = hu.norm().ToDouble() + hv.norm().ToDouble();
        Assert.IsLessThan(1e-12 * scale, System.Math.Abs(a - b), $"{name}: uᵀHv = {a}, vᵀHu = {b}");
    }
}
