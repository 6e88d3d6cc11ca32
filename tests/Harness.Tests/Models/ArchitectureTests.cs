using Harness.Abstractions;
using Harness.Host.Plugins;
using Harness.Plugins.Models;
using TorchSharp;
using static TorchSharp.torch;
using static Harness.Tests.Models.ModelTestSupport;

namespace Harness.Tests.Models;

/// <summary>Architectures: parameter counts against hand-computed closed forms, the declared layers, discovery of
/// every model through the plugin folder, and the defaults building in float32.</summary>
[TestClass]
public sealed class ArchitectureTests
{
    private static long Count(IModel m) => m.Parameters.Sum(p => p.Tensor.numel());
    private static readonly Dictionary<string, object> NoData = new() { ["train_size"] = 10L, ["test_size"] = 0L };

    private static Dictionary<string, object> With(Dictionary<string, object> a, Dictionary<string, object>? b = null) =>
        a.Concat(b ?? new()).ToDictionary(kv => kv.Key, kv => kv.Value);

    [TestMethod]
    public void ParameterCountsMatchTheArchitectures()
    {
        // Cohen et al.'s fully connected net: 784·200+200 + 4·(200·200+200) + 200·10+10.
        using (var m = Create(new FashionMlpPlugin(), With(NoData, new() { ["depth"] = 5L, ["width"] = 200L })))
            Assert.AreEqual(784L * 200 + 200 + 4 * (200 * 200 + 200) + 200 * 10 + 10, Count(m));
        // Cohen et al.'s CNN on 28×28×1: 28 →conv5 24 →pool 11 →conv3 9 →pool 4 →conv3(same) 4 →pool 1, flatten 128.
        using (var m = Create(new CnnPlugin(), With(NoData, new() { ["conv1"] = 64L, ["conv2"] = 96L, ["conv3"] = 128L, ["fc1"] = 512L, ["fc2"] = 256L })))
            Assert.AreEqual((64L * 25 + 64) + (96 * 64 * 9 + 96) + (128 * 96 * 9 + 128) + (128 * 512 + 512) + (512 * 256 + 256) + (256 * 10 + 10), Count(m));
        using (var m = Create(new CnnPlugin(), NoData))
            Assert.AreEqual((16L * 25 + 16) + (24 * 16 * 9 + 24) + (32 * 24 * 9 + 32) + (32 * 128 + 128) + (128 * 64 + 64) + (64 * 10 + 10), Count(m));
        // ResNet default: stem 8·1·9; group 1: 2 convs 8·8·9 + scale; group 2: 16·8·9 + 16·16·9 + shortcut 16·8 + scale;
        // group 3: 32·16·9 + 32·32·9 + shortcut 32·16 + scale; fc 32·10+10.
        using (var m = Create(new ResNetPlugin(), NoData))
            Assert.AreEqual(72L + (2 * 576 + 1) + (1152 + 2304 + 128 + 1) + (4608 + 9216 + 512 + 1) + 330, Count(m));
        // GroupNorm adds gain and bias before every conv pair and at the end: 2·(8+8) + 2·(8+16) + 2·(16+32) + 2·32.
        using (var m = Create(new ResNetPlugin(), With(NoData, new() { ["norm"] = "group", ["residual_scalar"] = false })))
            Assert.AreEqual(72L + 2 * 576 + (1152 + 2304 + 128) + (4608 + 9216 + 512) + 330 + 2 * (8 + 8 + 8 + 16 + 16 + 32 + 32), Count(m));
        // Transformer default: embeddings 10·32 + 8·32; per block 2 LN (2·64) + 4·32² + (32·64+64) + (64·32+32); final LN; read-out.
        using (var m = Create(new TinyTransformerPlugin(), NoData))
            Assert.AreEqual(10L * 32 + 8 * 32 + 2 * (128 + 4 * 1024 + 2112 + 2080) + 64 + 330, Count(m));
        using (var m = Create(new TeacherStudentPlugin(), NoData))
            Assert.AreEqual(16L * 32 + 32 + 32 + 1, Count(m));
        using (var m = Create(new TwoLayerLinearPlugin()))
            Assert.AreEqual(64L * 64 + 64, Count(m));
    }

    /// <summary>Layers for per-layer probes: exactly the weight tensors of Linear/Conv/Embedding/attention projections;
    /// never biases, norm gains/biases or residual scalars.</summary>
    [TestMethod]
    public void ModelsDeclareTheirLayers()
    {
        string[] Layers(IModel m) => m.Parameters.Where(p => p.IsLayerWeight).Select(p => p.Name).ToArray();

        using (var m = Create(new CnnPlugin(), NoData))
            CollectionAssert.AreEqual(new[] { "conv1.weight", "conv2.weight", "conv3.weight", "fc1.weight", "fc2.weight", "fc3.weight" }, Layers(m));
        using (var m = Create(new ResNetPlugin(), With(NoData, new() { ["norm"] = "layer" })))
        {
            CollectionAssert.AreEqual(new[] { "stem.weight", "group1.block1.conv1.weight", "group1.block1.conv2.weight",
                "group2.block1.conv1.weight", "group2.block1.conv2.weight", "group2.block1.shortcut.weight",
                "group3.block1.conv1.weight", "group3.block1.conv2.weight", "group3.block1.shortcut.weight", "fc.weight" }, Layers(m));
            Assert.IsTrue(m.Parameters.Where(p => !p.IsLayerWeight).All(p => p.Name.EndsWith(".gain") || p.Name.EndsWith(".bias") || p.Name.EndsWith(".scale")));
            Assert.AreEqual(3, m.Parameters.Count(p => p.Name.EndsWith(".scale")));
        }
        using (var m = Create(new TinyTransformerPlugin(), With(NoData, new() { ["layers"] = 1L })))
            CollectionAssert.AreEqual(new[] { "embed.tokens", "embed.positions", "block1.attn.q.weight", "block1.attn.k.weight",
                "block1.attn.v.weight", "block1.attn.o.weight", "block1.mlp.fc1.weight", "block1.mlp.fc2.weight", "out.weight" }, Layers(m));
        using (var m = Create(new FashionMlpPlugin(), NoData))
            CollectionAssert.AreEqual(new[] { "layer0.weight", "layer1.weight", "layer2.weight" }, Layers(m));
        using (var m = Create(new TeacherStudentPlugin(), NoData))
            CollectionAssert.AreEqual(new[] { "layer0.weight", "layer1.weight" }, Layers(m));
        using (var m = Create(new TwoLayerLinearPlugin()))
            CollectionAssert.AreEqual(new[] { "W1", "W2" }, Layers(m));
        using (var m = Create(new QuadraticPlugin()))
            CollectionAssert.AreEqual(new[] { "theta" }, Layers(m));
        using (var m = Create(new TwoParameterToyPlugin()))
            CollectionAssert.AreEqual(new[] { "theta" }, Layers(m));
    }

    private static readonly string[] AllModels =
        ["cnn", "fashion_mlp", "quadratic", "resnet", "teacher_student", "transformer", "two_layer_linear", "two_parameter_toy"];

    /// <summary>Every model is found in the built plugin folder (the path matrix files use) and builds at its defaults in
    /// float32 with a finite loss; classifiers report an accuracy, regressions none.</summary>
    [TestMethod]
    public void EveryModelLoadsFromThePluginFolderAndBuildsAtItsDefaults()
    {
        var catalog = PluginCatalog.Load(Paths.PluginArtifacts);
        CollectionAssert.IsSubsetOf(AllModels, catalog.Models.Keys.ToArray(), string.Join("; ", catalog.Errors.Select(e => $"{e.File}: {e.Reason}")));
        foreach (var name in AllModels)
        {
            var plugin = catalog.Models[name].Plugin;
            using var scope = NewDisposeScope();
            using var model = Create(plugin, dtype: ScalarType.Float32);
            var loss = model.Loss(model.Train);
            Assert.AreEqual(ScalarType.Float32, loss.dtype, name);
            Assert.IsTrue(double.IsFinite(loss.ToDouble()) && loss.ToDouble() >= 0, $"{name}: loss {loss.ToDouble()}");
            Assert.IsTrue(model.Parameters.Any(p => p.IsLayerWeight), $"{name} declares no layer");
            Assert.AreEqual(model.Parameters.Count, model.Parameters.Select(p => p.Name).Distinct().Count(), $"{name}: duplicate names");
            var acc = model.Accuracy(model.Train);
            bool classifier = name is "cnn" or "fashion_mlp" or "resnet" or "transformer";
            Assert.AreEqual(classifier, acc.HasValue, name);
            if (acc is { } a) Assert.IsTrue(a is >= 0 and <= 1, $"{name}: accuracy {a}");
        }
    }

    /// <summary>experiments/models.yaml names every model and validates against the plugins' schemas.</summary>
    [TestMethod]
    public void ModelsMatrixValidates()
    {
        var catalog = PluginCatalog.Load(Paths.PluginArtifacts);
        var spec = Harness.Host.Matrix.MatrixParser.ParseFile(Path.Combine(Paths.RepoRoot, "experiments", "models.yaml"), catalog);
        CollectionAssert.AreEquivalent(AllModels, spec.Models.Select(m => m.Name).ToArray());
    }
}
