using Harness.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Models;

/// <summary>Cohen et al.'s CNN (appendix G.1): three times (Conv → ReLU → max-pool 3×3 stride 2), then
/// FC → ReLU → FC → ReLU → FC. Conv 1: 5×5 "valid"; conv 2: 3×3 "valid"; conv 3: 3×3 "same"; pooling windows without
/// padding. Weights N(0, 1/fan_in), zero biases. Paper sizes 64/96/128 filters and 512/256 units; the CPU default is
/// 16/24/32 and 128/64.</summary>
public sealed class CnnPlugin : IModelPlugin
{
    public string Name => "cnn";
    public string Description => "Cohen et al.'s three-conv CNN (64 5×5, 96 3×3, 128 3×3, max-pool; FC 512, 256) with configurable widths.";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } =
    [
        HyperparameterSpec.Integer("conv1", 16, "filters of the 5×5 conv (Cohen et al.: 64)", min: 1, max: 1024),
        HyperparameterSpec.Integer("conv2", 24, "filters of the first 3×3 conv (Cohen et al.: 96)", min: 1, max: 1024),
        HyperparameterSpec.Integer("conv3", 32, "filters of the second 3×3 conv (Cohen et al.: 128)", min: 1, max: 1024),
        HyperparameterSpec.Integer("fc1", 128, "units of the first fully connected layer (Cohen et al.: 512)", min: 1, max: 8192),
        HyperparameterSpec.Integer("fc2", 64, "units of the second fully connected layer (Cohen et al.: 256)", min: 1, max: 8192),
        ImageData.TrainSizeSpec(),
        ImageData.TestSizeSpec(),
        ImageData.LossSpec(),
        ImageData.DatasetSpec(),
    ];

    public IModel Create(ModelContext context) => new Cnn(context);
}

public sealed class Cnn : ImageClassifier
{
    private static readonly (int kernel, int pad)[] ConvShape = [(5, 0), (3, 0), (3, 1)];
    private readonly (Tensor w, Tensor b)[] _convs = new (Tensor, Tensor)[3];
    private readonly (Tensor w, Tensor b)[] _fcs = new (Tensor, Tensor)[3];

    public Cnn(ModelContext ctx) : base(ctx, flatten: false)
    {
        var hp = ctx.Hyperparameters;
        var data = Data;
        var f = new ParameterFactory(ctx);
        long channels = data.Channels;
        int side = data.Height;
        long[] filters = [hp.Integer("conv1"), hp.Integer("conv2"), hp.Integer("conv3")];
        for (int i = 0; i < 3; i++)
        {
            var (k, pad) = ConvShape[i];
            _convs[i] = (f.FanIn($"conv{i + 1}.weight", [filters[i], channels, k, k]), f.Constant($"conv{i + 1}.bias", [filters[i]], 0));
            channels = filters[i];
            side = side + 2 * pad - k + 1;      // convolution, stride 1
            side = (side - 3) / 2 + 1;          // max-pool 3×3, stride 2, no padding
            if (side < 1) throw new ArgumentException($"input {data.Height}×{data.Width} is too small for the CNN's three conv/pool stages");
        }
        long[] units = [channels * side * side, hp.Integer("fc1"), hp.Integer("fc2"), Classes];
        for (int i = 0; i < 3; i++)
            _fcs[i] = (f.FanIn($"fc{i + 1}.weight", [units[i + 1], units[i]]), f.Constant($"fc{i + 1}.bias", [units[i + 1]], 0));
        Parameters = f.Parameters;
    }


    protected override Tensor Forward(Tensor x)
    {
        for (int i = 0; i < 3; i++)
        {
            long p = ConvShape[i].pad;
            x = nn.functional.conv2d(x, _convs[i].w, _convs[i].b, padding: [p, p]).relu();
            x = nn.functional.max_pool2d(x, [3, 3], [2, 2]);
        }
        x = x.flatten(1);
        for (int i = 0; i < 3; i++)
        {
            x = nn.functional.linear(x, _fcs[i].w, _fcs[i].b);
            if (i < 2) x = x.relu();
        }
        return x;
    }

}
