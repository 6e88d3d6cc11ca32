using Harness.Abstractions;
using Harness.Abstractions.Numerics;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Probes;

/// <summary>The Lanczos settings shared by the eigenvalue probes, and the warm-start vector one probe keeps
/// between measurements.</summary>
internal sealed class LanczosProbe(LanczosOptions options, bool warmStart, long seed) : IDisposable
{
    public static readonly IReadOnlyList<HyperparameterSpec> Schema =
    [
        HyperparameterSpec.Integer("max_iterations", 20, "Lanczos iterations at most (each is one Hessian-vector product)", min: 1, max: 1000),
        HyperparameterSpec.Real("tolerance", 1e-3, "stop when the top pair's residual is below tolerance·|λ1|", min: 0, minExclusive: true),
        HyperparameterSpec.Boolean("warm_start", true, "start from the previous measurement's top vector"),
        HyperparameterSpec.Integer("seed", 0, "seed of the random start vector", min: 0),
    ];

    public static LanczosOptions Options(HyperparameterValues hp, int topK = 1, bool smallest = false) =>
        new((int)hp.Integer("max_iterations"), hp.Real("tolerance"), topK, smallest);

    private Tensor? _previous;

    /// <summary>Runs Lanczos; when <paramref name="publishTo"/> is given, the top Ritz vector is published there
    /// under "top_eigenvector" for probes that need it (e.g. update/eigenvector alignment).</summary>
    public LanczosResult Run(ISymmetricOperator op, IObjective objective, IDictionary<string, object>? publishTo = null)
    {
        var p0 = objective.Parameters[0];
        var result = Lanczos.Run(op, options, warmStart ? _previous : null, seed, p0.dtype, p0.device);
        if (warmStart)
        {
            _previous?.Dispose();
            _previous = result.Top[0].Vector.detach().clone().DetachFromDisposeScope();
        }
        if (publishTo is not null)
            publishTo["top_eigenvector"] = result.Top[0].Vector.detach().clone().DetachFromDisposeScope();
        return result;
    }

    public void Dispose() => _previous?.Dispose();
}
