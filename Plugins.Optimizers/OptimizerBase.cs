using Harness.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Optimizers;

/// <summary>
/// Shared plumbing of the built-in optimizers: parameters, step count, named state buffers per parameter
/// tensor (detached from every dispose scope, exported/imported as float64), weight decay, and disposal.
/// Subclasses implement <see cref="Update"/> for one parameter tensor and declare their buffers in
/// <see cref="BufferNames"/> (an import that names any other buffer is refused, so a state file of another
/// optimizer cannot be loaded by mistake).
/// Every built-in update is θ ← θ + η·u with u independent of η, so every built-in is an
/// <see cref="IDirectionalOptimizer"/>: subclasses move θ only through <see cref="Apply"/> and <see cref="ApplyDiv"/>,
/// which either update θ (<see cref="Step"/>) or accumulate u (<see cref="Direction"/>).
/// </summary>
public abstract class OptimizerBase : IDirectionalOptimizer
{
    protected readonly IReadOnlyList<Tensor> Params;
    private readonly Dictionary<string, Tensor?[]> _buffers = new(StringComparer.Ordinal);
    /// <summary>Non-null while <see cref="Direction"/> runs: the direction being accumulated per tensor.</summary>
    private Tensor[]? _direction;
    // Every Scalar handed to a TorchSharp op is created here and kept alive by its owner: a double converted
    // implicitly is a temporary that the GC may finalize while the native call still reads it (a random
    // "toFloat at c10/core/Scalar.h" error or a wrong number after hours of training).
    private readonly Dictionary<long, Scalar> _fixedScalars = new();
    /// <summary>The integer Scalars TorchSharp's convenience overloads would create implicitly (add(t) is add(t, 1),
    /// square() is pow(2)); pass them explicitly. Process lifetime.</summary>
    protected static readonly Scalar One = 1.ToScalar(), Two = 2.ToScalar();
    private readonly List<Scalar> _stepScalars = new();

    protected OptimizerBase(IReadOnlyList<Tensor> parameters, double learningRate, double weightDecay = 0, bool decoupledWeightDecay = false)
    {
        Params = parameters;
        LearningRate = learningRate;
        WeightDecay = weightDecay;
        DecoupledWeightDecay = decoupledWeightDecay;
    }

    /// <summary>Completed steps t (the update in progress is step t+1).</summary>
    public long StepCount { get; private set; }
    public double LearningRate { get; set; }
    /// <summary>Weight decay λ: L2 (g ← g + λθ) or decoupled (θ ← θ(1 − ηλ) before the update).</summary>
    public double WeightDecay { get; }
    public bool DecoupledWeightDecay { get; }
    public abstract MomentumKind Momentum { get; }
    public abstract double MomentumCoefficient { get; }
    public virtual IReadOnlyList<Tensor>? Preconditioner => null;
    public virtual double StabilityThreshold => Abstractions.StabilityThreshold.For(Momentum, LearningRate, MomentumCoefficient);
    public virtual ThresholdRule ThresholdRule => ThresholdRule.ClosedForm;
    public virtual double[,]? UpdateMatrix(double etaLambda) => null;

    /// <summary>Names of every state buffer this optimizer may create.</summary>
    protected abstract IReadOnlyCollection<string> BufferNames { get; }

    /// <summary>Shape of buffer <paramref name="name"/> of parameter <paramref name="index"/> (default: the parameter's).</summary>
    protected virtual long[] BufferShape(string name, int index) => Params[index].shape;

    public StepResult Step(IObjective objective)
    {
        var eval = objective.Evaluate();
        using (var scope = NewDisposeScope())
        using (no_grad())
        {
            long t = StepCount + 1;
            try
            {
                BeginStep(t);
                for (int i = 0; i < Params.Count; i++)
                {
                    var grad = eval.Gradient[i];
                    if (WeightDecay != 0)
                    {
                        if (DecoupledWeightDecay) Params[i].mul_(PerStep(1 - LearningRate * WeightDecay));
                        else grad = grad.add(Params[i], alpha: Fixed(WeightDecay));
                    }
                    Update(i, Params[i], grad, t);
                }
            }
            finally { EndStepScalars(); }
        }
        StepCount++;
        objective.Invalidate();
        return new StepResult(eval.Loss);
    }

    /// <summary>The direction u of the update <see cref="Step"/> would make, at learning rate 1: advances the state
    /// (step count, buffers) exactly as <see cref="Step"/> does and leaves θ unchanged. Decoupled weight decay is part
    /// of u (θ(1 − ηλ) − η d = θ + η(−λθ − d)).</summary>
    public IReadOnlyList<Tensor> Direction(IObjective objective)
    {
        var eval = objective.Evaluate();
        var u = new Tensor[Params.Count];
        using (no_grad())
        {
            for (int i = 0; i < Params.Count; i++) u[i] = zeros_like(Params[i]);
            using var scope = NewDisposeScope();
            long t = StepCount + 1;
            _direction = u;
            try
            {
                BeginStep(t);
                for (int i = 0; i < Params.Count; i++)
                {
                    var grad = eval.Gradient[i];
                    if (WeightDecay != 0)
                    {
                        if (DecoupledWeightDecay) u[i].add_(Params[i], alpha: Fixed(-WeightDecay));
                        else grad = grad.add(Params[i], alpha: Fixed(WeightDecay));
                    }
                    Update(i, Params[i], grad, t);
                }
            }
            finally
            {
                _direction = null;
                EndStepScalars();
            }
        }
        StepCount++;
        return u;
    }

    /// <summary>θ ← θ − η·scale·d for parameter <paramref name="index"/> (or, inside <see cref="Direction"/>,
    /// u ← u − scale·d). The only way subclasses may change a parameter.</summary>
    protected void Apply(int index, Tensor param, Tensor d, double scale = 1)
    {
        if (_direction is { } u) u[index].add_(d, alpha: PerStep(-scale));
        else param.add_(d, alpha: PerStep(-LearningRate * scale));
    }

    /// <summary>θ ← θ − η·scale·n/p (or u ← u − scale·n/p inside <see cref="Direction"/>).</summary>
    protected void ApplyDiv(int index, Tensor param, Tensor n, Tensor p, double scale = 1)
    {
        if (_direction is { } u) u[index].addcdiv_(n, p, value: PerStep(-scale));
        else param.addcdiv_(n, p, value: PerStep(-LearningRate * scale));
    }

    /// <summary>A Scalar for a value fixed for the optimizer's life (a hyperparameter or a function of them only):
    /// created once per value, disposed with the optimizer. Never pass a double to a TorchSharp op directly.</summary>
    protected Scalar Fixed(double value)
    {
        long key = BitConverter.DoubleToInt64Bits(value);
        if (!_fixedScalars.TryGetValue(key, out var s)) _fixedScalars[key] = s = value.ToScalar();
        return s;
    }

    /// <summary>A Scalar for a value of the current step (learning rate, bias corrections): disposed when the step
    /// ends (or, outside a step, when the next one ends).</summary>
    protected Scalar PerStep(double value)
    {
        var s = value.ToScalar();
        _stepScalars.Add(s);
        return s;
    }

    private void EndStepScalars()
    {
        foreach (var s in _stepScalars) s.Dispose();
        _stepScalars.Clear();
    }

    /// <summary>Called once per step before the per-tensor updates (for step-wide scalars).</summary>
    protected virtual void BeginStep(long t) { }

    /// <summary>Updates parameter <paramref name="index"/> (called under no_grad, inside a dispose scope) at step
    /// t ≥ 1, changing it only through <see cref="Apply"/>/<see cref="ApplyDiv"/> (so that <see cref="Direction"/>
    /// works). <paramref name="grad"/> already includes L2 weight decay.</summary>
    protected abstract void Update(int index, Tensor param, Tensor grad, long t);

    /// <summary>The state buffer <paramref name="name"/> of parameter <paramref name="index"/>, created as zeros
    /// on first use. Buffers live outside every dispose scope and are freed by <see cref="Dispose"/>.</summary>
    protected Tensor Buffer(string name, int index)
    {
        if (!_buffers.TryGetValue(name, out var list))
            _buffers[name] = list = new Tensor?[Params.Count];
        return list[index] ??= zeros(BufferShape(name, index), dtype: Params[index].dtype, device: Params[index].device).DetachFromDisposeScope();
    }

    protected bool HasBuffer(string name, int index) =>
        _buffers.TryGetValue(name, out var list) && list[index] is not null;

    /// <summary>Extra scalars a subclass keeps (exported next to "step" and "lr").</summary>
    protected virtual void ExportScalars(Dictionary<string, double> scalars) { }
    protected virtual void ImportScalars(IReadOnlyDictionary<string, double> scalars) { }

    public virtual OptimizerState ExportState()
    {
        var state = new OptimizerState { Scalars = { ["step"] = StepCount, ["lr"] = LearningRate } };
        ExportScalars(state.Scalars);
        foreach (var (name, list) in _buffers.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            state.Buffers[name] = list.Select(t => t is null ? null : ToDoubles(t)).ToArray();
        return state;
    }

    private static double[] ToDoubles(Tensor t)
    {
        using var d = t.detach().to(ScalarType.Float64).cpu().contiguous();
        return d.data<double>().ToArray();
    }

    public virtual void ImportState(OptimizerState state)
    {
        foreach (var (name, arrays) in state.Buffers)
        {
            if (!BufferNames.Contains(name))
                throw new ArgumentException($"{GetType().Name} has no state buffer '{name}' (it has: {string.Join(", ", BufferNames)}); is this the state of another optimizer?");
            if (arrays.Length != Params.Count)
                throw new ArgumentException($"state buffer '{name}' has {arrays.Length} tensors, the optimizer {Params.Count}");
            for (int i = 0; i < arrays.Length; i++)
            {
                if (arrays[i] is not { } a) continue;
                long n = BufferShape(name, i).Aggregate(1L, (x, y) => x * y);
                if (a.Length != n)
                    throw new ArgumentException($"state buffer '{name}'[{i}] has {a.Length} entries, expected {n}");
            }
        }
        StepCount = (long)state.Scalars.GetValueOrDefault("step");
        if (state.Scalars.TryGetValue("lr", out var lr)) LearningRate = lr;
        ImportScalars(state.Scalars);
        DisposeBuffers();
        foreach (var (name, arrays) in state.Buffers)
        {
            var list = new Tensor?[Params.Count];
            for (int i = 0; i < arrays.Length; i++)
            {
                if (arrays[i] is not { } a) continue;
                using var scope = NewDisposeScope();
                list[i] = tensor(a, dtype: ScalarType.Float64).to(Params[i].dtype, Params[i].device)
                    .view(BufferShape(name, i)).clone().DetachFromDisposeScope();
            }
            _buffers[name] = list;
        }
    }

    private void DisposeBuffers()
    {
        foreach (var list in _buffers.Values) foreach (var t in list) t?.Dispose();
        _buffers.Clear();
    }

    public void Dispose()
    {
        DisposeBuffers();
        EndStepScalars();
        foreach (var s in _fixedScalars.Values) s.Dispose();
        _fixedScalars.Clear();
        GC.SuppressFinalize(this);
    }
}
