namespace Harness.Abstractions;

/// <summary>Keys of <see cref="ProbeContext.Shared"/> used by the built-in probes, with the type stored under each.
/// A probe that publishes a value owns it (it stays valid until that probe is disposed); readers must not modify
/// or dispose it, and should check its step: a value measured at an earlier step is stale.</summary>
public static class ProbeBlackboard
{
    /// <summary>Unit top eigenvector of H (flat Tensor of length p), published by the sharpness probe.</summary>
    public const string TopEigenvector = "top_eigenvector";
    /// <summary>Step (long) at which <see cref="TopEigenvector"/> was computed.</summary>
    public const string TopEigenvectorStep = "top_eigenvector_step";
    /// <summary><see cref="SpectrumEstimate"/> of H, published by the sharpness probe.</summary>
    public const string HessianSpectrum = "hessian_spectrum";
    /// <summary><see cref="SpectrumEstimate"/> of P^-1/2 H P^-1/2, published by the preconditioned-sharpness probe.</summary>
    public const string PreconditionedSpectrum = "preconditioned_spectrum";
}

/// <summary>Extreme eigenvalues of a symmetric operator measured at one step (Lanczos).</summary>
/// <param name="Step">training step of the measurement</param>
/// <param name="Top">largest algebraic eigenvalues, descending</param>
/// <param name="Bottom">smallest algebraic eigenvalue, when it was measured</param>
/// <param name="TopResidual">‖Av − λ1 v‖ of the top pair</param>
/// <param name="Converged">whether every wanted pair met the tolerance</param>
public sealed record SpectrumEstimate(long Step, IReadOnlyList<double> Top, double? Bottom, double TopResidual, bool Converged);
