using Harness.Abstractions;
using static TorchSharp.torch;

namespace Harness.Plugins.Optimizers;

// The momentum types of docs/science.md §2 with a static diagonal preconditioner P: the update steps with −η P^-1(·) and the
// threshold applies to λ1(P^-1/2 H P^-1/2). P is imported with the optimizer state (buffer "preconditioner"):
// in a matrix, `preconditioner_from: { optimizer: <entry>, step: <k> }` takes the P that another run's optimizer
// reported at step k (its saved state-<k>.json), or `{ file: <state file> }`. Until a P is imported, P = 1.

/// <summary>PrecondGD(η, P): θ ← θ − η P^-1 g. Threshold 2/η on λ1(P^-1/2 H P^-1/2).</summary>
public sealed class PrecondGradientDescentPlugin : IOptimizerPlugin
{
    public string Name => "precond_gd";
    public string Description => "GD with a static diagonal P (imported from another run's state): θ ← θ − η P^-1 g. Threshold 2/η on λ1(P^-1/2 H P^-1/2).";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } = [Specs.Lr(1e-3), Specs.WeightDecay(), Specs.Decoupled()];

    public IOptimizer Create(IReadOnlyList<Tensor> parameters, HyperparameterValues hp) =>
        new PrecondGradientDescent(parameters, hp.Real("lr"), 0, hp.Real("weight_decay"), hp.Boolean("decoupled_weight_decay"));
}

public sealed class PrecondGradientDescent(IReadOnlyList<Tensor> parameters, double lr, double beta, double weightDecay = 0, bool decoupled = false)
    : MomentumMethod(parameters, lr, MomentumKind.None, beta, weightDecay, decoupled, preconditioned: true);

/// <summary>PrecondStandardHB(η, β, P): m ← βm + g; θ ← θ − η P^-1 m. Threshold (2+2β)/η on λ1(P^-1/2 H P^-1/2).</summary>
public sealed class PrecondHeavyBallPlugin : IOptimizerPlugin
{
    public string Name => "precond_heavy_ball";
    public string Description => "StandardHB with a static diagonal P (imported from another run's state): m ← βm + g; θ ← θ − η P^-1 m. Threshold (2+2β)/η on λ1(P^-1/2 H P^-1/2).";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } = [Specs.Lr(1e-3), Specs.Momentum(), Specs.WeightDecay(), Specs.Decoupled()];

    public IOptimizer Create(IReadOnlyList<Tensor> parameters, HyperparameterValues hp) =>
        new PrecondHeavyBall(parameters, hp.Real("lr"), hp.Real("momentum"), hp.Real("weight_decay"), hp.Boolean("decoupled_weight_decay"));
}

public sealed class PrecondHeavyBall(IReadOnlyList<Tensor> parameters, double lr, double beta, double weightDecay = 0, bool decoupled = false)
    : MomentumMethod(parameters, lr, MomentumKind.Standard, beta, weightDecay, decoupled, preconditioned: true);

/// <summary>PrecondEMAHB(η, β, P): m ← βm + (1−β)g; θ ← θ − η P^-1 m (= frozen Adam). Threshold (2+2β)/(η(1−β)) on λ1(P^-1/2 H P^-1/2).</summary>
public sealed class PrecondEmaHeavyBallPlugin : IOptimizerPlugin
{
    public string Name => "precond_ema_heavy_ball";
    public string Description => "EMAHB with a static diagonal P (imported from another run's state): m ← βm + (1−β)g; θ ← θ − η P^-1 m (= frozen Adam). Threshold (2+2β)/(η(1−β)) on λ1(P^-1/2 H P^-1/2).";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } = [Specs.Lr(1e-3), Specs.Momentum(), Specs.WeightDecay(), Specs.Decoupled()];

    public IOptimizer Create(IReadOnlyList<Tensor> parameters, HyperparameterValues hp) =>
        new PrecondEmaHeavyBall(parameters, hp.Real("lr"), hp.Real("momentum"), hp.Real("weight_decay"), hp.Boolean("decoupled_weight_decay"));
}

public sealed class PrecondEmaHeavyBall(IReadOnlyList<Tensor> parameters, double lr, double beta, double weightDecay = 0, bool decoupled = false)
    : MomentumMethod(parameters, lr, MomentumKind.Ema, beta, weightDecay, decoupled, preconditioned: true);

/// <summary>PrecondStandardNesterov(η, β, P): m ← βm + g; θ ← θ − η P^-1 (βm + g). Threshold (2+2β)/(η(1+2β)) on λ1(P^-1/2 H P^-1/2).</summary>
public sealed class PrecondNesterovPlugin : IOptimizerPlugin
{
    public string Name => "precond_nesterov";
    public string Description => "StandardNesterov with a static diagonal P (imported from another run's state): m ← βm + g; θ ← θ − η P^-1 (βm + g). Threshold (2+2β)/(η(1+2β)) on λ1(P^-1/2 H P^-1/2).";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } = [Specs.Lr(1e-3), Specs.Momentum(), Specs.WeightDecay(), Specs.Decoupled()];

    public IOptimizer Create(IReadOnlyList<Tensor> parameters, HyperparameterValues hp) =>
        new PrecondNesterov(parameters, hp.Real("lr"), hp.Real("momentum"), hp.Real("weight_decay"), hp.Boolean("decoupled_weight_decay"));
}

public sealed class PrecondNesterov(IReadOnlyList<Tensor> parameters, double lr, double beta, double weightDecay = 0, bool decoupled = false)
    : MomentumMethod(parameters, lr, MomentumKind.StandardNesterov, beta, weightDecay, decoupled, preconditioned: true);

/// <summary>PrecondEMANesterov(η, β, P): m ← βm + (1−β)g; θ ← θ − η P^-1 (βm + (1−β)g). Threshold (2+2β)/(η(1−β)(1+2β)) on λ1(P^-1/2 H P^-1/2).</summary>
public sealed class PrecondEmaNesterovPlugin : IOptimizerPlugin
{
    public string Name => "precond_ema_nesterov";
    public string Description => "EMANesterov with a static diagonal P (imported from another run's state): m ← βm + (1−β)g; θ ← θ − η P^-1 (βm + (1−β)g). Threshold (2+2β)/(η(1−β)(1+2β)) on λ1(P^-1/2 H P^-1/2).";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } = [Specs.Lr(1e-3), Specs.Momentum(), Specs.WeightDecay(), Specs.Decoupled()];

    public IOptimizer Create(IReadOnlyList<Tensor> parameters, HyperparameterValues hp) =>
        new PrecondEmaNesterov(parameters, hp.Real("lr"), hp.Real("momentum"), hp.Real("weight_decay"), hp.Boolean("decoupled_weight_decay"));
}

public sealed class PrecondEmaNesterov(IReadOnlyList<Tensor> parameters, double lr, double beta, double weightDecay = 0, bool decoupled = false)
    : MomentumMethod(parameters, lr, MomentumKind.EmaNesterov, beta, weightDecay, decoupled, preconditioned: true);
