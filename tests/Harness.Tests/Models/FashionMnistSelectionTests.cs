using System.Security.Cryptography;
using Harness.Plugins.Models;
using TorchSharp;
using static TorchSharp.torch;
using static Harness.Tests.Models.ModelTestSupport;

namespace Harness.Tests.Models;

/// <summary>The Fashion-MNIST reader picks the examples a run uses out of the files: the subsets and their standardised
/// values are exactly those of the earlier reader (which kept the whole split as float64), recorded here as SHA-256
/// digests of the tensors' bytes, and no copy of the dataset stays in managed memory.</summary>
[TestClass]
public sealed class FashionMnistSelectionTests
{
    private static string Digest<T>(T[] a) where T : unmanaged =>
        Convert.ToHexStringLower(SHA256.HashData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(a.AsSpan())));

    private static string Inputs(Tensor x) =>
        x.dtype == ScalarType.Float32 ? Digest(x.data<float>().ToArray()) : Digest(x.data<double>().ToArray());

    private static readonly Dictionary<string, object> Demo = new() { ["depth"] = 1L, ["width"] = 4L, ["train_size"] = 2000L, ["test_size"] = 1000L };

    [TestMethod]
    [DataRow(ScalarType.Float32, "1fa7c8ba12ac2a2a4dd38458a41099d971af5d7f5f4670c8d925a8444bd4ced3", "e848e0e3fe97b854bed7b4936b9d823814ad06cc99661639f912ba25dcfc7c0e")]
    [DataRow(ScalarType.Float64, "6fce3eaf34a45ff611183752078c6c09c2e90f6b132c643f1984462dacb8d3b6", "b77e9e0af84d0e9d3836b5691ec80e460abd89d7922416851bf23e102e442e04")]
    public void SubsetsAreTheEarlierReadersBitForBit(ScalarType dtype, string train, string test)
    {
        using var m = Create(new FashionMlpPlugin(), Demo, dataSeed: 0, dtype: dtype);
        Assert.AreEqual(dtype, m.Train.Inputs!.dtype, "inputs come in the run's dtype");
        Assert.AreEqual(train, Inputs(m.Train.Inputs!));
        Assert.AreEqual("4adef73eb8b8f2bc9e76c9e8e9834eb273a249ca194be3628d8c0c86b15dc67b", Digest(m.Train.Targets!.data<long>().ToArray()));
        Assert.AreEqual(test, Inputs(m.Test!.Inputs!));
        Assert.AreEqual("baec436154781cf6b30c3c8200441df85f8d0a93e4c92b75f2cff17ebb7f9bb2", Digest(m.Test!.Targets!.data<long>().ToArray()));
        CollectionAssert.AreEqual(new[] { 3492, 52172, 13001, 22270, 57510, 24011, 52087, 42631 },
            FashionMnist.BalancedSubset(FashionMnist.ReadLabels(FashionMnist.DefaultDirectory, train: true), 2000, 0).Take(8).ToArray());

        using var odd = Create(new FashionMlpPlugin(), new() { ["depth"] = 1L, ["width"] = 4L, ["train_size"] = 1003L, ["test_size"] = 0L }, dataSeed: 7, dtype: ScalarType.Float32);
        Assert.AreEqual("585c0f85279477662d76d27305ac1cd41f54928c8c945e217ab7402755c0199a", Inputs(odd.Train.Inputs!));
        Assert.AreEqual("44355403ed53f0d4d0e796d43fc01d7ffa7c82c177948472c8e584573cc92d09", Digest(odd.Train.Targets!.data<long>().ToArray()));
    }

    [TestMethod]
    public void NoCopyOfTheDatasetStaysInManagedMemory()
    {
        // After a run's data are built, the live managed heap holds less than one float32 copy of the training split
        // (60 000 × 784 × 4 bytes = 188 MB; the earlier reader kept 60 000 + 10 000 images as float64, 439 MB).
        using var m = Create(new FashionMlpPlugin(), new() { ["depth"] = 1L, ["width"] = 4L, ["train_size"] = 200L, ["test_size"] = 100L });
        long live = GC.GetTotalMemory(forceFullCollection: true);
        Assert.IsTrue(live < 60000L * 784 * 4, $"live managed heap {live >> 20} MiB after building a 200-example model");
        GC.KeepAlive(m);
    }
}
