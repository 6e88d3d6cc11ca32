using Harness.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Optimizers;

/// <summary>
/// Shared plumbing of the built-in optimizers: parameters, step count, named state buffers per parameter
/// tensor (detached from every dispose scope, exported/imported as float64), and disposal.
/// Subclasses implement <see cref="Update"/> for one parameter tensor.
/// </summary>
public abstract class OptimizerBase : IOptimizer
{
    protected readonly IReadOnlyList<Tensor> Params;
    private readonly Dictionary<string, Tensor?[]> _buffers = new(StringComparer.Ordinal);

    protected OptimizerBase(IReadOnlyList<Tensor> parameters, double learningRate)
    {
        Params = parameters;
        LearningRate = learningRate;
    }

    /// <summary>Completed steps t (the update in progress is step t+1).</summary>
    public long StepCount { get; private set; }
    public double LearningRate { get; set; }
    public abstract MomentumKind Momentum { get; }
    public abstract double MomentumCoefficient { get; }
    public virtual IReadOnlyList<Tensor>? Preconditioner => null;
    public double StabilityThreshold => Abstractions.StabilityThreshold.For(Momentum, LearningRate, MomentumCoefficient);

    public StepResult Step(IObjective objective)
    {
        var eval = objective.Evaluate();
        using (no_grad())
        {
            long t = StepCount + 1;
            for (int i = 0; i < Params.Count; i++)
                Update(i, Params[i], eval.Gradient[i], t);
        }
        StepCount++;
        objective.Invalidate();
        return new StepResult(eval.Loss);
    }

    /// <summary>Updates parameter <paramref name="index"/> in place (called under no_grad) at step t ≥ 1.</summary>
    protected abstract void Update(int index, Tensor param, Tensor grad, long t);

    /// <summary>The state buffer <paramref name="name"/> of parameter <paramref name="index"/>, created as zeros
    /// on first use. Buffers live outside every dispose scope and are freed by <see cref="Dispose"/>.</summary>
    protected Tensor Buffer(string name, int index)
    {
        if (!_buffers.TryGetValue(name, out var list))
            _buffers[name] = list = new Tensor?[Params.Count];
        return list[index] ??= zeros_like(Params[index]).DetachFromDisposeScope();
    }

    protected bool HasBuffer(string name, int index) =>
        _buffers.TryGetValue(name, out var list) && list[index] is not null;

    public virtual OptimizerState ExportState()
    {
        var state = new OptimizerState { Scalars = { ["step"] = StepCount, ["lr"] = LearningRate } };
        foreach (var (name, list) in _buffers)
            state.Buffers[name] = list.Select(t => t is null ? null : t.to(ScalarType.Float64).cpu().data<double>().ToArray()).ToArray();
        return state;
    }

    public virtual void ImportState(OptimizerState state)
    {
        StepCount = (long)state.Scalars.GetValueOrDefault("step");
        if (state.Scalars.TryGetValue("lr", out var lr)) LearningRate = lr;
        foreach (var list in _buffers.Values) foreach (var t in list) t?.Dispose();
        _buffers.Clear();
        foreach (var (name, arrays) in state.Buffers)
        {
            if (arrays.Length != Params.Count)
                throw new ArgumentException($"state buffer '{name}' has {arrays.Length} tensors, the optimizer {Params.Count}");
            var list = new Tensor?[Params.Count];
            for (int i = 0; i < arrays.Length; i++)
            {
                if (arrays[i] is not { } a) continue;
                if (a.Length != Params[i].numel())
                    throw new ArgumentException($"state buffer '{name}'[{i}] has {a.Length} entries, the parameter {Params[i].numel()}");
                list[i] = tensor(a, dtype: ScalarType.Float64).to(Params[i].dtype, Params[i].device).view(Params[i].shape).DetachFromDisposeScope();
            }
            _buffers[name] = list;
        }
    }

    public void Dispose()
    {
        foreach (var list in _buffers.Values) foreach (var t in list) t?.Dispose();
        _buffers.Clear();
        GC.SuppressFinalize(this);
    }
}
