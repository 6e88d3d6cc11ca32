using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Abstractions;

/// <summary>Loss and gradient at one point, on one batch. Tensors are detached and owned by the
/// dispose scope that was current when they were computed.</summary>
public sealed record Evaluation(double Loss, IReadOnlyList<Tensor> Gradient);

/// <summary>
/// The objective f(θ) on one fixed batch at the model's current parameters. One implementation lives in
/// the host and is shared by optimizers and probes, so Hessian-vector products exist exactly once.
/// An objective is created per step (training batch) or per probe (probe set); it is not thread-safe.
/// </summary>
public interface IObjective
{
    /// <summary>The trainable parameters, in a fixed order (the order of every per-tensor list here).</summary>
    IReadOnlyList<Tensor> Parameters { get; }

    /// <summary>Total number of scalar parameters p.</summary>
    long ParameterCount { get; }

    /// <summary>Loss and gradient at the current parameters. Computed once and cached until
    /// <see cref="Invalidate"/> (call it after changing the parameters within the same objective).</summary>
    Evaluation Evaluate();

    /// <summary>Loss at θ + scale·direction (direction per parameter tensor); θ is restored exactly.</summary>
    double LossAt(IReadOnlyList<Tensor> direction, double scale);

    /// <summary>Loss and gradient at θ + scale·direction; θ is restored exactly.</summary>
    Evaluation EvaluateAt(IReadOnlyList<Tensor> direction, double scale);

    /// <summary>The Hessian at the current parameters as a linear operator on flat vectors (length p).
    /// Builds the gradient graph once; every product reuses it. Dispose to free the graph.</summary>
    IHessianOperator Hessian();

    /// <summary>Per-sample gradients, flattened: an N×p matrix for the first N examples of the batch
    /// (N = min(maxSamples, batch size)). Cost: N backward passes.</summary>
    Tensor PerSampleGradients(int maxSamples);

    /// <summary>Forgets cached evaluations (the parameters changed).</summary>
    void Invalidate();

    /// <summary>Number of gradient evaluations (forward+backward) this objective has done.</summary>
    int GradientEvaluations { get; }
}

/// <summary>A symmetric linear operator on flat vectors of length <see cref="Dimension"/>.</summary>
public interface ISymmetricOperator
{
    long Dimension { get; }
    Tensor Multiply(Tensor v);
}

/// <summary>Hessian-vector products v ↦ H v by double backward on one retained gradient graph.</summary>
public interface IHessianOperator : ISymmetricOperator, IDisposable
{
    /// <summary>Hessian-vector products computed so far on this operator.</summary>
    int Products { get; }
}
