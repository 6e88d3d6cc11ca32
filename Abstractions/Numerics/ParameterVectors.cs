using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Abstractions.Numerics;

/// <summary>Conversions between per-tensor lists (optimizers) and flat vectors of length p (probes).</summary>
public static class ParameterVectors
{
    public static Tensor Flatten(IReadOnlyList<Tensor> tensors) =>
        tensors.Count == 1 ? tensors[0].reshape(-1) : cat(tensors.Select(t => t.reshape(-1)).ToArray());

    /// <summary>Views of <paramref name="flat"/> shaped like <paramref name="like"/>.</summary>
    public static IReadOnlyList<Tensor> Unflatten(Tensor flat, IReadOnlyList<Tensor> like)
    {
        var result = new Tensor[like.Count];
        long offset = 0;
        for (int i = 0; i < like.Count; i++)
        {
            long n = like[i].numel();
            result[i] = flat.narrow(0, offset, n).view(like[i].shape);
            offset += n;
        }
        if (offset != flat.shape[0])
            throw new ArgumentException($"flat vector has {flat.shape[0]} entries, the tensors {offset}");
        return result;
    }

    public static long Count(IReadOnlyList<Tensor> tensors) => tensors.Sum(t => t.numel());

    /// <summary>‖x‖₂ over all tensors, in float64.</summary>
    public static double Norm(IReadOnlyList<Tensor> tensors)
    {
        double s = 0;
        using var two = 2.0.ToScalar();   // square() is pow(2) with an implicit Scalar inside
        foreach (var t in tensors)
        {
            using var n = t.to(ScalarType.Float64).pow(two).sum();
            s += n.ReadDouble();
        }
        return Math.Sqrt(s);
    }

    public static double Dot(Tensor a, Tensor b)
    {
        using var d = a.to(ScalarType.Float64).dot(b.to(ScalarType.Float64));
        return d.ReadDouble();
    }
}
