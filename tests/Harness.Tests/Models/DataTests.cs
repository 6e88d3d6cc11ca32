using System.IO.Compression;
using Harness.Plugins.Models;
using TorchSharp;
using static TorchSharp.torch;
using static Harness.Tests.Models.ModelTestSupport;

namespace Harness.Tests.Models;

/// <summary>Datasets: balanced reproducible subsets, clear errors for missing or truncated files, the CIFAR binary
/// format (on small files written here in the real format), the synthetic sequence tasks.</summary>
[TestClass]
public sealed class DataTests
{
    private static readonly Dictionary<string, object> SmallMlp = new() { ["depth"] = 1L, ["width"] = 4L, ["train_size"] = 200L, ["test_size"] = 50L };

    private readonly List<string> _temp = new();

    private string Temp(string prefix)
    {
        var d = Paths.NewTempDirectory(prefix);
        _temp.Add(d);
        return d;
    }

    [TestCleanup]
    public void RemoveTemporaryFolders()
    {
        foreach (var d in _temp) if (Directory.Exists(d)) Directory.Delete(d, recursive: true);
    }

    private static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    private static long[] ClassCounts(Tensor labels, int classes) =>
        labels.bincount(null, classes).data<long>().ToArray();

    [TestMethod]
    public void FashionMnistSubsetsAreBalancedReproducibleAndSeeded()
    {
        var labels = FashionMnist.ReadLabels(FashionMnist.DefaultDirectory, train: true);
        Assert.AreEqual(60000, labels.Length);
        var a = FashionMnist.BalancedSubset(labels, 1000, 3);
        var b = FashionMnist.BalancedSubset(labels, 1000, 3);
        var c = FashionMnist.BalancedSubset(labels, 1000, 4);
        CollectionAssert.AreEqual(a, b, "same data_seed, same subset in the same order");
        CollectionAssert.AreNotEquivalent(a, c, "another data_seed, another subset");
        Assert.AreEqual(1000, a.Distinct().Count(), "no example twice");
        var perClass = a.GroupBy(i => labels[i]).ToDictionary(g => g.Key, g => g.Count());
        Assert.AreEqual(10, perClass.Count);
        Assert.IsTrue(perClass.Values.All(n => n == 100));
        var odd = FashionMnist.BalancedSubset(labels, 1003, 3).GroupBy(i => labels[i]).OrderBy(g => g.Key).Select(g => g.Count()).ToArray();
        CollectionAssert.AreEqual(new[] { 101, 101, 101, 100, 100, 100, 100, 100, 100, 100 }, odd);
    }

    [TestMethod]
    public void ModelDataDependsOnDataSeedOnly()
    {
        using var a = Create(new FashionMlpPlugin(), SmallMlp, initSeed: 1, dataSeed: 5);
        using var b = Create(new FashionMlpPlugin(), SmallMlp, initSeed: 2, dataSeed: 5);
        using var c = Create(new FashionMlpPlugin(), SmallMlp, initSeed: 1, dataSeed: 6);
        Assert.IsTrue(Same(a.Train.Inputs!, b.Train.Inputs!));
        Assert.IsTrue(Same(a.Train.Targets!, b.Train.Targets!));
        Assert.IsTrue(Same(a.Test!.Inputs!, b.Test!.Inputs!));
        Assert.IsFalse(Same(a.Train.Inputs!, c.Train.Inputs!));
        CollectionAssert.AreEqual(Enumerable.Repeat(20L, 10).ToArray(), ClassCounts(a.Train.Targets!, 10));
        CollectionAssert.AreEqual(Enumerable.Repeat(5L, 10).ToArray(), ClassCounts(a.Test!.Targets!, 10));
    }

    [TestMethod]
    public void MissingFashionMnistFileIsNamed()
    {
        var dir = Temp("fmnist-missing");
        var e = Assert.ThrowsExactly<FileNotFoundException>(() => Create(new FashionMlpPlugin(), SmallMlp, dataDir: dir));
        StringAssert.Contains(e.Message, "train-images-idx3-ubyte");
        StringAssert.Contains(e.Message, dir);
    }

    [TestMethod]
    public void TruncatedFashionMnistFileIsNamed()
    {
        var dir = Temp("fmnist-truncated");
        foreach (var f in new[] { "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz" })
            File.Copy(Path.Combine(FashionMnist.DefaultDirectory, f), Path.Combine(dir, f));
        // An uncompressed images file whose header promises 60000 images but holds 3, next to valid labels.
        var truncated = Path.Combine(dir, "train-images-idx3-ubyte");
        var bytes = new byte[16 + 3 * 784];
        new byte[] { 0, 0, 8, 3, 0, 0, 0xEA, 0x60, 0, 0, 0, 28, 0, 0, 0, 28 }.CopyTo(bytes, 0);
        File.WriteAllBytes(truncated, bytes);
        var e = Assert.ThrowsExactly<InvalidDataException>(() => FashionMnist.Tensors(dir, true, [0, 1], ScalarType.Float32, CPU));
        StringAssert.Contains(e.Message, truncated);
        StringAssert.Contains(e.Message, "truncated");

        // A gzip file cut in half (a partial copy): the error names it too.
        var labels = Path.Combine(dir, "t10k-labels-idx1-ubyte.gz");
        var whole = File.ReadAllBytes(labels);
        File.WriteAllBytes(labels, whole[..(whole.Length / 2)]);
        var e2 = Assert.ThrowsExactly<InvalidDataException>(() => FashionMnist.ReadLabels(dir, train: false));
        StringAssert.Contains(e2.Message, labels);
    }

    [TestMethod]
    public void GzipImagesAreReadFromTheirDecompressedCopyAfterTheFirstRead()
    {
        var dir = Temp("fmnist-cache-data");
        var cache = Temp("fmnist-cache");
        foreach (var f in new[] { "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz" })
            File.Copy(Path.Combine(FashionMnist.DefaultDirectory, f), Path.Combine(dir, f));
        int[] indices = [59_999, 0, 17, 17, 31_337, 1, 59_998, 0];
        string? before = Environment.GetEnvironmentVariable(FashionMnist.CacheVariable);
        try
        {
            Environment.SetEnvironmentVariable(FashionMnist.CacheVariable, "off");
            var streamed = FashionMnist.ReadImages(dir, true, indices);
            Assert.IsEmpty(Directory.GetFileSystemEntries(cache));

            Environment.SetEnvironmentVariable(FashionMnist.CacheVariable, cache);
            var first = FashionMnist.ReadImages(dir, true, indices);      // streams the gzip file and writes the copy
            var copies = Directory.GetFiles(cache, "train-images-idx3-ubyte", SearchOption.AllDirectories);
            Assert.HasCount(1, copies);
            Assert.AreEqual(16 + 60_000L * 784, new FileInfo(copies[0]).Length);
            Assert.IsEmpty(Directory.GetFiles(cache, "*.tmp", SearchOption.AllDirectories));
            var second = FashionMnist.ReadImages(dir, true, indices);     // reads the copy's rows
            CollectionAssert.AreEqual(streamed, first);
            CollectionAssert.AreEqual(streamed, second);
            CollectionAssert.AreEqual(streamed[(7 * 784)..(8 * 784)], streamed[(1 * 784)..(2 * 784)], "a repeated index repeats its row");

            // A damaged copy is discarded and rebuilt from the original.
            using (var f = new FileStream(copies[0], FileMode.Open)) f.SetLength(1000);
            CollectionAssert.AreEqual(streamed, FashionMnist.ReadImages(dir, true, indices));
            Assert.AreEqual(16 + 60_000L * 784, new FileInfo(copies[0]).Length);

            // A replaced original gets its own copy (the key holds its length and modification time).
            File.SetLastWriteTimeUtc(Path.Combine(dir, "train-images-idx3-ubyte.gz"), DateTime.UtcNow.AddMinutes(-5));
            CollectionAssert.AreEqual(streamed, FashionMnist.ReadImages(dir, true, indices));
            Assert.HasCount(2, Directory.GetFiles(cache, "train-images-idx3-ubyte", SearchOption.AllDirectories));
        }
        finally { Environment.SetEnvironmentVariable(FashionMnist.CacheVariable, before); }
    }

    // ---- CIFAR: small files in the real binary format ----

    /// <summary>Writes CIFAR-10 (or -100) binary batches with <paramref name="perClassPerFile"/> records per class in
    /// each file; every record's pixels are distinct and derived from (file, record).</summary>
    private string WriteCifar(bool hundred, int perClassPerFile, int classesUsed = 0)
    {
        var dir = Temp(hundred ? "cifar100" : "cifar10");
        int classes = classesUsed > 0 ? classesUsed : Cifar.Classes(hundred);
        var files = Cifar.Files(hundred, true).Concat(Cifar.Files(hundred, false)).ToArray();
        for (int f = 0; f < files.Length; f++)
        {
            using var s = File.Create(Path.Combine(dir, files[f]));
            int r = 0;
            for (int k = 0; k < perClassPerFile; k++)
                for (int c = 0; c < classes; c++, r++)
                {
                    if (hundred) s.WriteByte((byte)(c / 5));
                    s.WriteByte((byte)c);
                    s.Write(RecordPixels(f, r));
                }
        }
        return dir;
    }

    private static byte[] RecordPixels(int file, int record)
    {
        var px = new byte[Cifar.Pixels];
        for (int j = 0; j < px.Length; j++) px[j] = (byte)((file * 131 + record * 17 + j * 7 + (j / 1024) * 50) % 256);
        (px[0], px[1]) = ((byte)file, (byte)record);   // unique per record
        return px;
    }

    [TestMethod]
    public void Cifar10BinaryBatchesAreReadRecordByRecord()
    {
        var dir = WriteCifar(hundred: false, perClassPerFile: 2);
        var (pixels, labels, count) = Cifar.Read(dir, hundred: false, train: true);
        Assert.AreEqual(5 * 20, count);
        for (int f = 0; f < 5; f++)
            for (int r = 0; r < 20; r++)
            {
                int n = f * 20 + r;
                Assert.AreEqual((byte)(r % 10), labels[n]);
                CollectionAssert.AreEqual(RecordPixels(f, r), pixels[(n * Cifar.Pixels)..((n + 1) * Cifar.Pixels)]);
            }
        var test = Cifar.Read(dir, hundred: false, train: false);
        Assert.AreEqual(20, test.count);
        CollectionAssert.AreEqual(RecordPixels(5, 3), test.pixels[(3 * Cifar.Pixels)..(4 * Cifar.Pixels)]);
    }

    [TestMethod]
    public void CifarModelsGetBalancedChwImagesFromTheRecords()
    {
        var dir = WriteCifar(hundred: false, perClassPerFile: 2);
        var hp = new Dictionary<string, object> { ["dataset"] = "cifar10", ["train_size"] = 60L, ["test_size"] = 10L };
        using var model = Create(new CnnPlugin(), hp, dataSeed: 7, dataDir: dir);
        CollectionAssert.AreEqual(new long[] { 60, 3, 32, 32 }, model.Train.Inputs!.shape);
        CollectionAssert.AreEqual(Enumerable.Repeat(6L, 10).ToArray(), ClassCounts(model.Train.Targets!, 10));
        CollectionAssert.AreEqual(Enumerable.Repeat(1L, 10).ToArray(), ClassCounts(model.Test!.Targets!, 10));
        // Every example is one of the records, with its label, in C×H×W order (channel c = bytes c·1024 …).
        var (pixels, labels, count) = Cifar.Read(dir, false, true);
        var byContent = Enumerable.Range(0, count).ToDictionary(n => Convert.ToBase64String(pixels, n * Cifar.Pixels, Cifar.Pixels), n => labels[n]);
        var x = (model.Train.Inputs! * 255).round().to(ScalarType.Byte).reshape(60, -1);
        var y = model.Train.Targets!.data<long>().ToArray();
        var seen = new HashSet<string>();
        for (int k = 0; k < 60; k++)
        {
            var key = Convert.ToBase64String(x[k].data<byte>().ToArray());
            Assert.IsTrue(byContent.TryGetValue(key, out var label), $"example {k} is not a record");
            Assert.AreEqual((long)label, y[k]);
            Assert.IsTrue(seen.Add(key), "an example appears twice");
        }
        // Cohen et al.'s CNN on 32×32×3: flatten 128·2·2 = 512, so 567 530 parameters.
        using var paper = Create(new CnnPlugin(), new() { ["dataset"] = "cifar10", ["train_size"] = 10L, ["test_size"] = 0L,
            ["conv1"] = 64L, ["conv2"] = 96L, ["conv3"] = 128L, ["fc1"] = 512L, ["fc2"] = 256L }, dataDir: dir);
        Assert.AreEqual(567_530L, paper.Parameters.Sum(p => p.Tensor.numel()));
    }

    [TestMethod]
    public void Cifar100UsesFineLabelsAndTheParentFolderIsAccepted()
    {
        var files = WriteCifar(hundred: true, perClassPerFile: 1);
        var parent = Temp("cifar100-parent");
        Directory.Move(files, Path.Combine(parent, Cifar.Cifar100Subfolder));
        var (_, labels, count) = Cifar.Read(Cifar.ResolveDirectory(parent, hundred: true), hundred: true, train: true);
        Assert.AreEqual(100, count);
        CollectionAssert.AreEqual(Enumerable.Range(0, 100).Select(i => (byte)i).ToArray(), labels);
        using var model = Create(new FashionMlpPlugin(), new() { ["dataset"] = "cifar100", ["train_size"] = 100L, ["test_size"] = 0L, ["depth"] = 1L, ["width"] = 3L }, dataDir: parent);
        CollectionAssert.AreEqual(new long[] { 100, 3072 }, model.Train.Inputs!.shape);
        Assert.AreEqual(100, model.Train.Targets!.unique().Item1.numel());
        Assert.AreEqual(100L, model.Parameters[^1].Tensor.numel(), "read-out bias has one entry per fine class");
    }

    [TestMethod]
    public void MissingCifarFolderNamesTheFolderAndTheFiles()
    {
        var dir = Temp("cifar-empty");
        var hp = new Dictionary<string, object> { ["dataset"] = "cifar10", ["train_size"] = 10L, ["test_size"] = 0L };
        var e = Assert.ThrowsExactly<DirectoryNotFoundException>(() => Create(new CnnPlugin(), hp, dataDir: dir));
        StringAssert.Contains(e.Message, dir);
        StringAssert.Contains(e.Message, "data_batch_1.bin");
        StringAssert.Contains(e.Message, "test_batch.bin");
        StringAssert.Contains(e.Message, "never downloaded");
        var e100 = Assert.ThrowsExactly<DirectoryNotFoundException>(() => Cifar.ResolveDirectory(dir, hundred: true));
        StringAssert.Contains(e100.Message, "train.bin");
    }

    [TestMethod]
    public void MissingOrTruncatedCifarBatchIsNamed()
    {
        var dir = WriteCifar(hundred: false, perClassPerFile: 1);
        File.Delete(Path.Combine(dir, "data_batch_3.bin"));
        var e = Assert.ThrowsExactly<FileNotFoundException>(() => Cifar.Read(dir, false, true));
        StringAssert.Contains(e.Message, "data_batch_3.bin");
        StringAssert.Contains(e.Message, dir);

        var dir2 = WriteCifar(hundred: false, perClassPerFile: 1);
        var batch2 = Path.Combine(dir2, "data_batch_2.bin");
        var bytes = File.ReadAllBytes(batch2);
        File.WriteAllBytes(batch2, bytes[..(bytes.Length - 100)]);
        var t = Assert.ThrowsExactly<InvalidDataException>(() => Cifar.Read(dir2, false, true));
        StringAssert.Contains(t.Message, batch2);
        StringAssert.Contains(t.Message, "truncated");

        var dir3 = WriteCifar(hundred: false, perClassPerFile: 1);
        var test = Path.Combine(dir3, "test_batch.bin");
        var tb = File.ReadAllBytes(test);
        tb[Cifar.RecordSize(false) * 4] = 10;   // label 10 in CIFAR-10
        File.WriteAllBytes(test, tb);
        var l = Assert.ThrowsExactly<InvalidDataException>(() => Cifar.Read(dir3, false, false));
        StringAssert.Contains(l.Message, test);
    }

    // ---- synthetic sequence tasks ----

    [TestMethod]
    public void SequenceTasksHaveTheDocumentedTargets()
    {
        CollectionAssert.AreEqual(new long[] { 5, 1, 4, 0 }, SequenceTasks.Target(SequenceTasks.Reverse, [0, 4, 1, 5], 6));
        CollectionAssert.AreEqual(new long[] { 0, 1, 4, 5 }, SequenceTasks.Target(SequenceTasks.Sort, [0, 4, 1, 5], 6));
        CollectionAssert.AreEqual(new long[] { 3, 1, 0, 4 }, SequenceTasks.Target(SequenceTasks.PrefixSum, [3, 4, 5, 4], 6));
        foreach (var task in SequenceTasks.All)
        {
            var (x, y) = SequenceTasks.Generate(task, 50, 7, 9, seed: 3);
            var (x2, y2) = SequenceTasks.Generate(task, 50, 7, 9, seed: 3);
            var (x3, _) = SequenceTasks.Generate(task, 50, 7, 9, seed: 4);
            CollectionAssert.AreEqual(x, x2);
            CollectionAssert.AreEqual(y, y2);
            CollectionAssert.AreNotEqual(x, x3);
            Assert.IsTrue(x.All(t => t >= 0 && t < 9));
            Assert.AreEqual(9, x.Distinct().Count(), "all token values occur");
            for (int n = 0; n < 50; n++)
                CollectionAssert.AreEqual(SequenceTasks.Target(task, x[(n * 7)..(n * 7 + 7)], 9), y[(n * 7)..(n * 7 + 7)]);
        }
    }

    [TestMethod]
    public void TransformerDataComesFromTheGeneratorAndDataSeed()
    {
        var hp = new Dictionary<string, object> { ["task"] = "sort", ["train_size"] = 30L, ["test_size"] = 10L };
        using var a = Create(new TinyTransformerPlugin(), hp, initSeed: 0, dataSeed: 2);
        using var b = Create(new TinyTransformerPlugin(), hp, initSeed: 1, dataSeed: 2);
        CollectionAssert.AreEqual(new long[] { 30, 8 }, a.Train.Inputs!.shape);
        Assert.IsTrue(Same(a.Train.Inputs!, b.Train.Inputs!));
        Assert.IsFalse(Same(a.Train.Inputs!.narrow(0, 0, 10), a.Test!.Inputs!), "test is another stream");
        var x = a.Train.Inputs!.data<long>().ToArray();
        var y = a.Train.Targets!.data<long>().ToArray();
        for (int n = 0; n < 30; n++)
            CollectionAssert.AreEqual(x[(n * 8)..(n * 8 + 8)].Order().ToArray(), y[(n * 8)..(n * 8 + 8)]);
    }
}
