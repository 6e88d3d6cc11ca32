using Harness.Abstractions.Numerics;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Models;

/// <summary>Classification losses with mean reduction over examples.</summary>
public static class Losses
{
    // Explicit, process-lifetime Scalars: a double converted implicitly for a native call can be finalized during it.
    private static readonly Scalar Half = 0.5.ToScalar(), Two = 2.ToScalar();

    public const string Mse = "mse";
    public const string CrossEntropy = "cross_entropy";

    /// <summary>mse: (1/N) Σ_i ½‖f(x_i) − onehot(y_i)‖² (the squared loss of the edge-of-stability papers);
    /// cross_entropy: (1/N) Σ_i −log softmax(f(x_i))_{y_i}.</summary>
    public static Tensor Classification(string kind, Tensor logits, Tensor labels, int classes) => kind switch
    {
        Mse => (logits - nn.functional.one_hot(labels, classes).to(logits.dtype)).pow(Two).sum(1).mean().mul(Half),
        CrossEntropy => nn.functional.cross_entropy(logits, labels),
        _ => throw new ArgumentException($"unknown loss '{kind}'"),
    };

    public static double Accuracy(Tensor logits, Tensor labels)
    {
        using var _ = NewDisposeScope();
        return logits.argmax(1).eq(labels).to(ScalarType.Float64).mean().ReadDouble();
    }
}
