using Harness.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Host.Training;

/// <summary>
/// A base optimizer driven by a learning-rate tuner (docs/science.md §3): each step takes the base's direction u_t at learning
/// rate 1 (<see cref="IDirectionalOptimizer.Direction"/>), asks the tuner for η_t on the same objective (same batch),
/// and commits θ ← θ + η_t u_t. Setting <see cref="LearningRate"/> sets the base (scheduled) η handed to the tuner;
/// reading it gives η of the most recent step (the base's η before the first). Preconditioner, momentum and the
/// threshold come from the base at η_t.
/// </summary>
public sealed class TunedOptimizer : IOptimizer
{
    private readonly IDirectionalOptimizer _base;
    private double _scheduled;

    public TunedOptimizer(IDirectionalOptimizer baseOptimizer, ILearningRateTuner tuner, IReadOnlyDictionary<string, object>? shared = null)
    {
        _base = baseOptimizer;
        Tuner = tuner;
        _scheduled = baseOptimizer.LearningRate;
        Shared = shared ?? new Dictionary<string, object>();
    }

    public ILearningRateTuner Tuner { get; }
    /// <summary>The run's blackboard handed to the tuner (probes publish there).</summary>
    public IReadOnlyDictionary<string, object> Shared { get; set; }
    /// <summary>Completed steps (the next step is Steps, 0-based, as the host numbers steps).</summary>
    public long Steps { get; private set; }
    /// <summary>The base learning rate the schedule asked for at the most recent step.</summary>
    public double ScheduledLearningRate => _scheduled;

    public StepResult Step(IObjective objective)
    {
        var eval = objective.Evaluate();
        double eta;
        using (var scope = NewDisposeScope())
        {
            var u = _base.Direction(objective);
            eta = Tuner.Choose(new TunerContext(objective, eval, u, _scheduled, Steps, Shared));
            if (double.IsNaN(eta) || eta < 0)
                throw new InvalidOperationException($"tuner returned an invalid learning rate {eta}");
            using (var alpha = eta.ToScalar())
            using (no_grad())
                for (int i = 0; i < u.Count; i++)
                    objective.Parameters[i].add_(u[i], alpha: alpha);
        }
        _base.LearningRate = eta;
        Steps++;
        objective.Invalidate();
        return new StepResult(eval.Loss);
    }

    public double LearningRate
    {
        get => _base.LearningRate;
        set => _scheduled = value;
    }

    public IReadOnlyList<Tensor>? Preconditioner => _base.Preconditioner;
    public MomentumKind Momentum => _base.Momentum;
    public double MomentumCoefficient => _base.MomentumCoefficient;
    public double StabilityThreshold => _base.StabilityThreshold;
    public ThresholdRule ThresholdRule => _base.ThresholdRule;
    public double[,]? UpdateMatrix(double etaLambda) => _base.UpdateMatrix(etaLambda);
    public OptimizerState ExportState() => _base.ExportState();
    public void ImportState(OptimizerState state) => _base.ImportState(state);

    public void Dispose()
    {
        Tuner.Dispose();
        _base.Dispose();
    }
}
