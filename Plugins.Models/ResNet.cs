using Harness.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Models;

/// <summary>A wide ResNet without BatchNorm (Cohen et al.'s un-normalised WRN; Zagoruyko and Komodakis' layout):
/// a 3×3 stem conv (stride stem_stride), three groups of pre-activation residual blocks of widths w·k·(1, 2, 4) with strides (1, 2, 2),
/// then [norm] → ReLU → global average pool → linear. Block: y = s(x) + α·conv(ReLU([norm](conv_stride(ReLU([norm](x))))))
/// with s the identity or a 1×1 strided conv when the shape changes, α a learnable scalar (Cohen et al.: initialised
/// to 1) when residual_scalar is on, [norm] GroupNorm/LayerNorm or nothing. Convs have no bias; weights N(0, 1/fan_in).
/// Cohen et al.'s WRN: base_width 16, widen 10, blocks_per_group 4, stem_stride 1 (WRN-28-10). CPU default: 8, 1, 1 and
/// stem_stride 2 (the first group then runs at 14×14 on Fashion-MNIST, which cuts the cost of a step by about 4).</summary>
public sealed class ResNetPlugin : IModelPlugin
{
    public const string NormNone = "none", NormGroup = "group", NormLayer = "layer";

    public string Name => "resnet";
    public string Description => "Wide ResNet without BatchNorm (learnable residual scalar; optional GroupNorm/LayerNorm).";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } =
    [
        HyperparameterSpec.Integer("base_width", 8, "channels of the stem and first group before widening (WRN: 16)", min: 1, max: 256),
        HyperparameterSpec.Integer("widen", 1, "width multiplier k of the groups (Cohen et al.'s WRN: 10)", min: 1, max: 32),
        HyperparameterSpec.Integer("blocks_per_group", 1, "residual blocks in each of the three groups (Cohen et al.'s WRN: 4)", min: 1, max: 32),
        HyperparameterSpec.Integer("stem_stride", 2, "stride of the stem conv (WRN: 1; 2 = CPU default, 4× cheaper)", min: 1, max: 4),
        HyperparameterSpec.Boolean("residual_scalar", true, "multiply each residual branch by a learnable scalar (Cohen et al.'s un-normalised WRN)"),
        HyperparameterSpec.Real("residual_scalar_init", 1.0, "initial value of the residual scalars (Cohen et al.: 1; 0 gives SkipInit)"),
        HyperparameterSpec.Choice("norm", NormNone, "normalisation before each ReLU: none, group (GroupNorm) or layer (LayerNorm over C,H,W)", NormNone, NormGroup, NormLayer),
        HyperparameterSpec.Integer("norm_groups", 4, "groups of GroupNorm (must divide every width)", min: 1, max: 256),
        ImageData.TrainSizeSpec(),
        ImageData.TestSizeSpec(),
        ImageData.LossSpec(),
        ImageData.DatasetSpec(),
    ];

    public IModel Create(ModelContext context) => new ResNet(context);
}

public sealed class ResNet : ImageClassifier
{
    // Explicit, process-lifetime Scalar (Tensor + Tensor is add(t, 1) with an implicitly converted 1).
    private static readonly Scalar One = 1.ToScalar();
    private sealed record Norm(Tensor Gain, Tensor Bias);
    private sealed record Block(Norm? Norm1, Tensor Conv1, int Stride, Norm? Norm2, Tensor Conv2, Tensor? Shortcut, Tensor? Alpha);

    private readonly Tensor _stem;
    private readonly List<Block> _blocks = new();
    private readonly Norm? _finalNorm;
    private readonly Tensor _fcW, _fcB;
    private readonly int _groups, _stemStride;

    public ResNet(ModelContext ctx) : base(ctx, flatten: false)
    {
        var hp = ctx.Hyperparameters;
        string norm = hp.Choice("norm");
        _groups = norm == ResNetPlugin.NormGroup ? (int)hp.Integer("norm_groups") : 1;
        int baseWidth = (int)hp.Integer("base_width"), widen = (int)hp.Integer("widen"), blocks = (int)hp.Integer("blocks_per_group");
        bool scalar = hp.Boolean("residual_scalar");
        _stemStride = (int)hp.Integer("stem_stride");
        double scalarInit = hp.Real("residual_scalar_init");
        long[] widths = [baseWidth * widen, 2L * baseWidth * widen, 4L * baseWidth * widen];
        if (norm == ResNetPlugin.NormGroup && (baseWidth % _groups != 0 || widths.Any(w => w % _groups != 0)))
            throw new ArgumentException($"norm_groups {_groups} must divide every width ({baseWidth}, {string.Join(", ", widths)})");

        var data = Data;
        var f = new ParameterFactory(ctx);
        Norm? MakeNorm(string name, long c) => norm == ResNetPlugin.NormNone ? null
            : new Norm(f.Constant($"{name}.gain", [c], 1), f.Constant($"{name}.bias", [c], 0));

        _stem = f.FanIn("stem.weight", [baseWidth, data.Channels, 3, 3]);
        long channels = baseWidth;
        for (int g = 0; g < 3; g++)
            for (int b = 0; b < blocks; b++)
            {
                string n = $"group{g + 1}.block{b + 1}";
                int stride = b == 0 && g > 0 ? 2 : 1;
                long outC = widths[g];
                var n1 = MakeNorm($"{n}.norm1", channels);
                var c1 = f.FanIn($"{n}.conv1.weight", [outC, channels, 3, 3]);
                var n2 = MakeNorm($"{n}.norm2", outC);
                var c2 = f.FanIn($"{n}.conv2.weight", [outC, outC, 3, 3]);
                var sc = stride != 1 || outC != channels ? f.FanIn($"{n}.shortcut.weight", [outC, channels, 1, 1]) : null;
                var alpha = scalar ? f.Constant($"{n}.scale", [], scalarInit) : null;
                _blocks.Add(new Block(n1, c1, stride, n2, c2, sc, alpha));
                channels = outC;
            }
        _finalNorm = MakeNorm("final.norm", channels);
        _fcW = f.FanIn("fc.weight", [Classes, channels]);
        _fcB = f.Constant("fc.bias", [Classes], 0);
        Parameters = f.Parameters;
    }


    private Tensor Act(Tensor x, Norm? norm) => (norm is null ? x : Norms.Group(x, _groups, norm.Gain, norm.Bias)).relu();

    private static Tensor Conv(Tensor x, Tensor w, long stride)
    {
        long pad = w.shape[2] / 2;
        return nn.functional.conv2d(x, w, strides: [stride, stride], padding: [pad, pad]);
    }

    protected override Tensor Forward(Tensor x)
    {
        x = Conv(x, _stem, _stemStride);
        foreach (var b in _blocks)
        {
            var h = Act(x, b.Norm1);
            var branch = Conv(Act(Conv(h, b.Conv1, b.Stride), b.Norm2), b.Conv2, 1);
            if (b.Alpha is not null) branch = branch * b.Alpha;
            x = (b.Shortcut is null ? x : Conv(h, b.Shortcut, b.Stride)).add(branch, One);
        }
        x = Act(x, _finalNorm).mean([2, 3]);
        return nn.functional.linear(x, _fcW, _fcB);
    }

}
