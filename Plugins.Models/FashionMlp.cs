using Harness.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Models;

/// <summary>Fully connected tanh network on a Fashion-MNIST subset (paper 000's network: weights N(0, 1/fan_in),
/// zero biases; its default depth 5 × width 200, scaled down here by default to run on a CPU in seconds).</summary>
public sealed class FashionMlpPlugin : IModelPlugin
{
    public string Name => "fashion_mlp";
    public string Description => "Fully connected tanh network on a class-balanced Fashion-MNIST subset.";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } =
    [
        HyperparameterSpec.Integer("depth", 2, "number of hidden layers", min: 1, max: 16),
        HyperparameterSpec.Integer("width", 200, "units per hidden layer", min: 1, max: 4096),
        HyperparameterSpec.Integer("train_size", 1000, "training examples (balanced over the 10 classes, chosen by data_seed)", min: 10, max: 60000),
        HyperparameterSpec.Integer("test_size", 1000, "test examples (balanced, from the test split)", min: 0, max: 10000),
        HyperparameterSpec.Choice("loss", Losses.Mse, "mse on one-hot targets (½‖·‖², mean over examples) or cross_entropy", Losses.Mse, Losses.CrossEntropy),
    ];

    public IModel Create(ModelContext context) => new FashionMlp(context);
}

public sealed class FashionMlp : IModel
{
    private readonly List<(Tensor w, Tensor b)> _layers = new();
    private readonly string _loss;

    public FashionMlp(ModelContext ctx)
    {
        var hp = ctx.Hyperparameters;
        _loss = hp.Choice("loss");
        int depth = (int)hp.Integer("depth"), width = (int)hp.Integer("width");
        var gen = new TorchSharp.torch.Generator((ulong)ctx.InitSeed);
        int fanIn = 784;
        var parameters = new List<ModelParameter>();
        for (int l = 0; l <= depth; l++)
        {
            int fanOut = l == depth ? FashionMnist.Classes : width;
            var w = (randn(fanOut, fanIn, dtype: ScalarType.Float64, generator: gen) / Math.Sqrt(fanIn))
                .to(ctx.DType, ctx.Device).requires_grad_(true).DetachFromDisposeScope();
            var b = zeros(fanOut, dtype: ctx.DType, device: ctx.Device).requires_grad_(true).DetachFromDisposeScope();
            _layers.Add((w, b));
            parameters.Add(new ModelParameter($"layer{l}.weight", w, IsLayerWeight: true));
            parameters.Add(new ModelParameter($"layer{l}.bias", b, IsLayerWeight: false));
            fanIn = fanOut;
        }
        Parameters = parameters;

        string dir = FashionMnist.ResolveDirectory(ctx.DataDirectory);
        var (pixels, labels, _) = FashionMnist.Read(dir, train: true);
        var trainIdx = FashionMnist.BalancedSubset(labels, (int)hp.Integer("train_size"), ctx.DataSeed);
        var (x, y) = FashionMnist.Tensors(pixels, labels, trainIdx, ctx.DType, ctx.Device);
        Train = new Dataset(x.DetachFromDisposeScope(), y.DetachFromDisposeScope(), trainIdx.Length);
        int testSize = (int)hp.Integer("test_size");
        if (testSize > 0)
        {
            var (tp, tl, _) = FashionMnist.Read(dir, train: false);
            var testIdx = FashionMnist.BalancedSubset(tl, testSize, ctx.DataSeed);
            var (tx, ty) = FashionMnist.Tensors(tp, tl, testIdx, ctx.DType, ctx.Device);
            Test = new Dataset(tx.DetachFromDisposeScope(), ty.DetachFromDisposeScope(), testIdx.Length);
        }
    }

    public IReadOnlyList<ModelParameter> Parameters { get; }
    public Dataset Train { get; }
    public Dataset? Test { get; }

    private Tensor Forward(Tensor x)
    {
        for (int l = 0; l < _layers.Count; l++)
        {
            x = nn.functional.linear(x, _layers[l].w, _layers[l].b);
            if (l < _layers.Count - 1) x = x.tanh();
        }
        return x;
    }

    public Tensor Loss(Dataset batch) => Losses.Classification(_loss, Forward(batch.Inputs!), batch.Targets!, FashionMnist.Classes);

    public double? Accuracy(Dataset batch)
    {
        using var _ = no_grad();
        return Losses.Accuracy(Forward(batch.Inputs!), batch.Targets!);
    }

    public void Dispose()
    {
        foreach (var (w, b) in _layers) { w.Dispose(); b.Dispose(); }
        Train.Inputs?.Dispose(); Train.Targets?.Dispose();
        Test?.Inputs?.Dispose(); Test?.Targets?.Dispose();
    }
}
