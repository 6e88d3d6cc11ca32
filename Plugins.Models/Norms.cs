using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Models;

/// <summary>Normalisation layers written with elementary ops (mean, variance, rsqrt), so double backward is exact and
/// does not depend on a fused kernel's second derivative. Their gains and biases are never layer weights.</summary>
public static class Norms
{
    public const double Epsilon = 1e-5;
    // Explicit, process-lifetime Scalar: a double converted implicitly for a native call can be finalized during it.
    private static readonly Scalar EpsilonScalar = Epsilon.ToScalar(), One = 1.ToScalar(), Two = 2.ToScalar();

    /// <summary>GroupNorm over an N×C×H×W tensor: statistics per example and group of C/groups channels, then a
    /// per-channel affine map (gain, bias of length C). groups = 1 is LayerNorm over (C, H, W).</summary>
    public static Tensor Group(Tensor x, int groups, Tensor gain, Tensor bias)
    {
        long n = x.shape[0], c = x.shape[1];
        var g = x.reshape(n, groups, -1);
        var mean = g.mean([2], keepdim: true);
        var centered = g - mean;
        var variance = centered.pow(Two).mean([2], keepdim: true);
        var normed = (centered * variance.add(EpsilonScalar, One).rsqrt()).reshape(x.shape);
        return (normed * gain.view(1, c, 1, 1)).add(bias.view(1, c, 1, 1), One);
    }

    /// <summary>LayerNorm over the last dimension with gain and bias of that length.</summary>
    public static Tensor Layer(Tensor x, Tensor gain, Tensor bias)
    {
        var mean = x.mean([-1], keepdim: true);
        var centered = x - mean;
        var variance = centered.pow(Two).mean([-1], keepdim: true);
        return (centered * variance.add(EpsilonScalar, One).rsqrt() * gain).add(bias, One);
    }
}
