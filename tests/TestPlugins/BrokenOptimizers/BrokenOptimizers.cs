using Harness.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

[assembly: ContractVersion(Contract.Version)]

namespace Harness.Tests.BrokenOptimizers;

/// <summary>Shared shape of the broken optimizers: plain GD-like plumbing, correct threshold and schema.</summary>
public abstract class BrokenBase(IReadOnlyList<Tensor> parameters, double lr) : IOptimizer
{
    protected readonly IReadOnlyList<Tensor> Params = parameters;
    public double LearningRate { get; set; } = lr;
    public virtual IReadOnlyList<Tensor>? Preconditioner => null;
    public virtual MomentumKind Momentum => MomentumKind.None;
    public virtual double MomentumCoefficient => 0;
    public double StabilityThreshold => Harness.Abstractions.StabilityThreshold.For(Momentum, LearningRate, MomentumCoefficient);

    public StepResult Step(IObjective objective)
    {
        var eval = objective.Evaluate();
        using (no_grad())
            for (int i = 0; i < Params.Count; i++) Update(i, eval.Gradient[i]);
        objective.Invalidate();
        return new StepResult(eval.Loss);
    }

    protected abstract void Update(int i, Tensor grad);
    public virtual OptimizerState ExportState() => new() { Scalars = { ["lr"] = LearningRate } };
    public virtual void ImportState(OptimizerState state) => LearningRate = state.Scalars.GetValueOrDefault("lr", LearningRate);
    public virtual void Dispose() { }
}

/// <summary>Ascends: θ ← θ + η g. The gate must reject it at "quadratic".</summary>
public sealed class AscentPlugin : IOptimizerPlugin
{
    public string Name => "broken_ascent";
    public string Description => "Deliberately broken: gradient ascent.";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } = [HyperparameterSpec.Real("lr", 0.01, "learning rate", min: 0, minExclusive: true)];
    public IOptimizer Create(IReadOnlyList<Tensor> parameters, HyperparameterValues hp) => new Ascent(parameters, hp.Real("lr"));

    private sealed class Ascent(IReadOnlyList<Tensor> p, double lr) : BrokenBase(p, lr)
    {
        protected override void Update(int i, Tensor grad) => Params[i].add_(grad, alpha: LearningRate);
    }
}

/// <summary>Heavy ball whose exported state omits the momentum buffer: it decreases and is deterministic, but a resumed
/// run restarts its momentum at zero. The gate must reject it at "state_round_trip".</summary>
public sealed class ForgetfulPlugin : IOptimizerPlugin
{
    public string Name => "broken_state";
    public string Description => "Deliberately broken: heavy ball that does not export its momentum.";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } = [HyperparameterSpec.Real("lr", 0.01, "learning rate", min: 0, minExclusive: true)];
    public IOptimizer Create(IReadOnlyList<Tensor> parameters, HyperparameterValues hp) => new Forgetful(parameters, hp.Real("lr"));

    private sealed class Forgetful(IReadOnlyList<Tensor> p, double lr) : BrokenBase(p, lr)
    {
        private readonly Tensor?[] _m = new Tensor?[p.Count];
        public override MomentumKind Momentum => MomentumKind.Standard;
        public override double MomentumCoefficient => 0.9;
        protected override void Update(int i, Tensor grad)
        {
            var m = _m[i] ??= zeros_like(Params[i]).DetachFromDisposeScope();
            m.mul_(0.9).add_(grad);
            Params[i].add_(m, alpha: -LearningRate);
        }
        public override void Dispose() { foreach (var m in _m) m?.Dispose(); }
    }
}

/// <summary>GD plus a tiny noise from an unseeded .NET RNG: it decreases, but two runs with the same seed differ.
/// The gate must reject it at "determinism".</summary>
public sealed class NoisyPlugin : IOptimizerPlugin
{
    public string Name => "broken_random";
    public string Description => "Deliberately broken: GD with noise from an unseeded random generator.";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } = [HyperparameterSpec.Real("lr", 0.01, "learning rate", min: 0, minExclusive: true)];
    public IOptimizer Create(IReadOnlyList<Tensor> parameters, HyperparameterValues hp) => new Noisy(parameters, hp.Real("lr"));

    private sealed class Noisy(IReadOnlyList<Tensor> p, double lr) : BrokenBase(p, lr)
    {
        private readonly Random _rng = new();
        protected override void Update(int i, Tensor grad)
        {
            Params[i].add_(grad, alpha: -LearningRate);
            using var noise = rand(Params[i].shape, dtype: Params[i].dtype, generator: new torch.Generator((ulong)_rng.NextInt64()));
            Params[i].add_(noise, alpha: 1e-9);
        }
    }
}

/// <summary>GD (θ ← θ − η g, truly stable up to λ = 2/η) that declares the threshold 3/η: schema, threshold sanity,
/// decrease, determinism and state all pass; the gate must reject it at "threshold_boundary", naming the measured
/// boundary (≈ 0.667× the declared threshold).</summary>
public sealed class FalseThresholdPlugin : IOptimizerPlugin
{
    public string Name => "broken_threshold";
    public string Description => "Deliberately broken: gradient descent that declares the threshold 3/η instead of 2/η.";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } = [HyperparameterSpec.Real("lr", 0.01, "learning rate", min: 0, minExclusive: true)];
    public IOptimizer Create(IReadOnlyList<Tensor> parameters, HyperparameterValues hp) => new Gd(parameters, hp.Real("lr"));

    private sealed class Gd(IReadOnlyList<Tensor> p, double lr) : IOptimizer
    {
        public double LearningRate { get; set; } = lr;
        public IReadOnlyList<Tensor>? Preconditioner => null;
        public MomentumKind Momentum => MomentumKind.None;
        public double MomentumCoefficient => 0;
        public double StabilityThreshold => 3 / LearningRate;

        public StepResult Step(IObjective objective)
        {
            var eval = objective.Evaluate();
            using (no_grad())
                for (int i = 0; i < p.Count; i++) p[i].add_(eval.Gradient[i], alpha: -LearningRate);
            objective.Invalidate();
            return new StepResult(eval.Loss);
        }

        public OptimizerState ExportState() => new() { Scalars = { ["lr"] = LearningRate } };
        public void ImportState(OptimizerState state) => LearningRate = state.Scalars.GetValueOrDefault("lr", LearningRate);
        public void Dispose() { }
    }
}

/// <summary>Gradient descent (linear, threshold 2/η) that declares it has no linear threshold: the gate must reject the
/// declaration at "threshold".</summary>
public sealed class FalseNoThresholdPlugin : IOptimizerPlugin
{
    public string Name => "broken_no_threshold";
    public string Description => "Deliberately broken: a linear method (GD) that declares ThresholdRule.None.";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } = [HyperparameterSpec.Real("lr", 0.01, "learning rate", min: 0, minExclusive: true)];
    public IOptimizer Create(IReadOnlyList<Tensor> parameters, HyperparameterValues hp) => new Hidden(parameters, hp.Real("lr"));

    private sealed class Hidden(IReadOnlyList<Tensor> p, double lr) : BrokenBase(p, lr), IOptimizer
    {
        public ThresholdRule ThresholdRule => ThresholdRule.None;
        protected override void Update(int i, Tensor grad) => Params[i].add_(grad, alpha: -LearningRate);
    }
}
