using Harness.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Optimizers;

/// <summary>
/// Base of the adaptive (diagonally preconditioned) optimizers: each update computes its preconditioner P_t from
/// second-moment statistics, and <see cref="IOptimizer.Preconditioner"/> reports the P of the most recent update.
/// With <c>freeze_at_step = k &gt; 0</c> the statistics stop updating after update k and every later update uses
/// P_k (kept in the state buffer <see cref="FrozenBuffer"/>, so it survives export/import): "frozen Adam" of
/// Cohen et al., which is exactly PrecondEMAHB(η, β1, P_k).
/// </summary>
public abstract class AdaptiveOptimizer(IReadOnlyList<Tensor> parameters, double lr, double weightDecay, bool decoupled, long freezeAtStep)
    : OptimizerBase(parameters, lr, weightDecay, decoupled)
{
    /// <summary>State buffer holding the frozen P once update <c>freeze_at_step</c> has happened.</summary>
    public const string FrozenBuffer = "frozen_preconditioner";

    protected long FreezeAtStep { get; } = freezeAtStep;

    /// <summary>True when update t uses the frozen P.</summary>
    protected bool IsFrozenAt(long t) => FreezeAtStep > 0 && t > FreezeAtStep;

    /// <summary>Buffer names of the subclass, without <see cref="FrozenBuffer"/>.</summary>
    protected abstract IReadOnlyCollection<string> StatisticsBuffers { get; }

    protected sealed override IReadOnlyCollection<string> BufferNames => [.. StatisticsBuffers, FrozenBuffer];

    /// <summary>Folds the gradient into the second-moment statistics of parameter <paramref name="index"/> (update t).</summary>
    protected abstract void UpdateStatistics(int index, Tensor grad, long t);

    /// <summary>P of parameter <paramref name="index"/> for update t from the current statistics (a new tensor).</summary>
    protected abstract Tensor PreconditionerAt(int index, long t);

    /// <summary>P_t for update t: updates the statistics and computes P, or returns the frozen P.</summary>
    protected Tensor StepPreconditioner(int index, Tensor grad, long t)
    {
        if (IsFrozenAt(t)) return Buffer(FrozenBuffer, index);
        UpdateStatistics(index, grad, t);
        var p = PreconditionerAt(index, t);
        if (FreezeAtStep > 0 && t == FreezeAtStep) Buffer(FrozenBuffer, index).copy_(p);
        return p;
    }

    /// <summary>The P of the most recent update (before any update: P from the initial statistics at t = 1).</summary>
    public override IReadOnlyList<Tensor>? Preconditioner
    {
        get
        {
            if (FreezeAtStep > 0 && StepCount >= FreezeAtStep)
                return Params.Select((_, i) => Buffer(FrozenBuffer, i).clone()).ToList();
            long t = Math.Max(StepCount, 1);
            using (no_grad())
                return Params.Select((_, i) => PreconditionerAt(i, t)).ToList();
        }
    }

    public override void ImportState(OptimizerState state)
    {
        long step = (long)state.Scalars.GetValueOrDefault("step");
        if (FreezeAtStep > 0 && step >= FreezeAtStep &&
            (!state.Buffers.TryGetValue(FrozenBuffer, out var frozen) || frozen.Any(a => a is null)))
            throw new ArgumentException($"the state is at step {step} ≥ freeze_at_step {FreezeAtStep} but holds no '{FrozenBuffer}'");
        base.ImportState(state);
    }

    /// <summary>sqrt(x) + ε, or sqrt(x + ε) when <paramref name="inside"/> (in place on x).</summary>
    protected Tensor Root(Tensor x, double eps, bool inside, double exponent = 0.5)
    {
        if (inside) x.add_(Fixed(eps), One);
        if (exponent == 0.5) x.sqrt_(); else x.pow_(Fixed(exponent));
        if (!inside) x.add_(Fixed(eps), One);
        return x;
    }
}
