using Harness.Plugins.Models;
using TorchSharp;
using static TorchSharp.torch;
using static Harness.Tests.Models.ModelTestSupport;

namespace Harness.Tests.Models;

/// <summary>init_seed alone fixes the initial weights (two optimizers start from the same point), data_seed alone
/// fixes the data; float32 and float64 runs start from the same weights to float32 rounding.</summary>
[TestClass]
public sealed class InitialisationTests
{
    private static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    public static IEnumerable<object[]> CaseNames => CurvatureTests.Cases.Keys.Select(k => new object[] { k });

    [TestMethod]
    [DynamicData(nameof(CaseNames))]
    public void SameInitSeedGivesIdenticalWeightsWhateverTheDataSeed(string name)
    {
        var (plugin, hp, _) = CurvatureTests.Cases[name];
        using var a = Create(plugin, hp, initSeed: 7, dataSeed: 1);
        using var b = Create(plugin, hp, initSeed: 7, dataSeed: 2);
        using var c = Create(plugin, hp, initSeed: 8, dataSeed: 1);
        Assert.AreEqual(a.Parameters.Count, b.Parameters.Count);
        for (int i = 0; i < a.Parameters.Count; i++)
        {
            Assert.AreEqual(a.Parameters[i].Name, b.Parameters[i].Name);
            Assert.IsTrue(Same(a.Parameters[i].Tensor, b.Parameters[i].Tensor), $"{name}: {a.Parameters[i].Name} depends on data_seed");
            Assert.IsTrue(a.Parameters[i].Tensor.requires_grad && a.Parameters[i].Tensor.is_leaf, $"{name}: {a.Parameters[i].Name} is not a trainable leaf");
            Assert.AreEqual(ScalarType.Float64, a.Parameters[i].Tensor.dtype);
        }
        bool differs = a.Parameters.Zip(c.Parameters).Any(p => !Same(p.First.Tensor, p.Second.Tensor));
        if (plugin is TwoParameterToyPlugin)
            Assert.IsFalse(differs, "the toy starts at its configured point whatever the seed");
        else
            Assert.IsTrue(differs, $"{name}: init_seed has no effect");
    }

    [TestMethod]
    [DynamicData(nameof(CaseNames))]
    public void DataSeedChoosesTheDataAndInitSeedDoesNot(string name)
    {
        var (plugin, hp, _) = CurvatureTests.Cases[name];
        if (plugin is TwoParameterToyPlugin) return;   // no data
        using var a = Create(plugin, hp, initSeed: 1, dataSeed: 3);
        using var b = Create(plugin, hp, initSeed: 2, dataSeed: 3);
        using var c = Create(plugin, hp, initSeed: 1, dataSeed: 4);
        var lossA = a.Loss(a.Train).ToDouble();
        if (a.Train.Inputs is not null)
        {
            Assert.IsTrue(Same(a.Train.Inputs, b.Train.Inputs!));
            Assert.IsTrue(Same(a.Train.Targets!, b.Train.Targets!));
            Assert.IsFalse(Same(a.Train.Inputs, c.Train.Inputs!) && Same(a.Train.Targets!, c.Train.Targets!), $"{name}: data_seed has no effect");
        }
        else
        {
            // Data-free objectives whose problem instance (rotation, teacher) is the data: same weights, another instance.
            Assert.AreNotEqual(lossA, c.Loss(c.Train).ToDouble(), $"{name}: data_seed has no effect");
        }
    }

    [TestMethod]
    [DynamicData(nameof(CaseNames))]
    public void Float32AndFloat64StartFromTheSameWeights(string name)
    {
        var (plugin, hp, _) = CurvatureTests.Cases[name];
        using var d = Create(plugin, hp, initSeed: 5, dtype: ScalarType.Float64);
        using var f = Create(plugin, hp, initSeed: 5, dtype: ScalarType.Float32);
        for (int i = 0; i < d.Parameters.Count; i++)
        {
            Assert.AreEqual(ScalarType.Float32, f.Parameters[i].Tensor.dtype);
            Assert.IsTrue(Same(d.Parameters[i].Tensor.to(ScalarType.Float32), f.Parameters[i].Tensor), $"{name}: {d.Parameters[i].Name}");
        }
        if (f.Train.Inputs is { } x && x.is_floating_point()) Assert.AreEqual(ScalarType.Float32, x.dtype);
        Assert.AreEqual(ScalarType.Float32, f.Loss(f.Train).dtype);
    }
}
