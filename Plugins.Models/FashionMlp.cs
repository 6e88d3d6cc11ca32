using Harness.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Models;

/// <summary>Fully connected tanh network on an image subset (Cohen et al.'s network: weights N(0, 1/fan_in), zero biases;
/// the paper uses depth 5 × width 200; the default here is depth 2 × width 200 so a full-batch step on 1000 examples
/// takes milliseconds on a CPU). Named after its default dataset; <c>dataset</c> selects CIFAR-10/100 too.</summary>
public sealed class FashionMlpPlugin : IModelPlugin
{
    public string Name => "fashion_mlp";
    public string Description => "Fully connected tanh network (Cohen et al.: depth 5, width 200) on a class-balanced image subset.";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } =
    [
        HyperparameterSpec.Integer("depth", 2, "number of hidden layers (Cohen et al.: 5)", min: 1, max: 16),
        HyperparameterSpec.Integer("width", 200, "units per hidden layer (Cohen et al.: 200)", min: 1, max: 4096),
        ImageData.TrainSizeSpec(),
        ImageData.TestSizeSpec(),
        ImageData.LossSpec(),
        ImageData.DatasetSpec(),
    ];

    public IModel Create(ModelContext context) => new FashionMlp(context);
}

public sealed class FashionMlp : ImageClassifier
{
    private readonly List<(Tensor w, Tensor b)> _layers = new();

    public FashionMlp(ModelContext ctx) : base(ctx, flatten: true)
    {
        var hp = ctx.Hyperparameters;
        int depth = (int)hp.Integer("depth"), width = (int)hp.Integer("width");
        var data = Data;
        var f = new ParameterFactory(ctx);
        long fanIn = data.Features;
        for (int l = 0; l <= depth; l++)
        {
            long fanOut = l == depth ? Classes : width;
            var w = f.FanIn($"layer{l}.weight", [fanOut, fanIn]);
            var b = f.Constant($"layer{l}.bias", [fanOut], 0);
            _layers.Add((w, b));
            fanIn = fanOut;
        }
        Parameters = f.Parameters;
    }


    protected override Tensor Forward(Tensor x)
    {
        for (int l = 0; l < _layers.Count; l++)
        {
            x = nn.functional.linear(x, _layers[l].w, _layers[l].b);
            if (l < _layers.Count - 1) x = x.tanh();
        }
        return x;
    }

}
