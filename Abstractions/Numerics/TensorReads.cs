using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Abstractions.Numerics;

/// <summary>
/// Reads a one-element tensor into a .NET value. TorchSharp's <c>Tensor.ToDouble()</c> and <c>ToBoolean()</c> read
/// through a temporary Scalar that nothing keeps alive during the native read, so a garbage collection at that moment
/// can finalize it (a random <c>toDouble at c10/core/Scalar.h</c> error after hours of training). These keep the
/// Scalar alive until the value is read and then dispose it. Use them instead of TorchSharp's on every repeated path.
/// </summary>
public static class TensorReads
{
    public static double ReadDouble(this Tensor t)
    {
        using var s = t.ToScalar();
        return s.ToDouble();
    }

    public static bool ReadBoolean(this Tensor t)
    {
        using var s = t.ToScalar();
        return s.ToBoolean();
    }
}
