using Harness.Abstractions;
using Harness.Abstractions.Numerics;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Host.Training;

/// <summary>
/// The one implementation of <see cref="IObjective"/>: a model's loss on one fixed batch. Gradients by
/// backward; Hessian-vector products by double backward on a retained gradient graph (Pearlmutter), so a
/// Lanczos run of k products builds the graph once.
/// </summary>
public sealed class TorchObjective(IModel model, Dataset batch) : IObjective
{
    private readonly IModel _model = model;
    private readonly Dataset _batch = batch;
    private readonly Tensor[] _params = model.Parameters.Select(p => p.Tensor).ToArray();
    private Evaluation? _cached;

    public IReadOnlyList<Tensor> Parameters => _params;
    public long ParameterCount { get; } = model.Parameters.Sum(p => p.Tensor.numel());
    public int GradientEvaluations { get; private set; }
    /// <summary>Hessian-vector products done through every operator this objective handed out.</summary>
    public int HessianProducts { get; internal set; }

    public Evaluation Evaluate() => _cached ??= Compute();

    public void Invalidate() => _cached = null;

    private Evaluation Compute()
    {
        GradientEvaluations++;
        using var _ = enable_grad();
        var loss = _model.Loss(_batch);
        var grads = autograd.grad([loss], _params, allow_unused: true);
        var detached = new Tensor[_params.Length];
        for (int i = 0; i < _params.Length; i++)
            detached[i] = IsMissing(grads[i]) ? zeros_like(_params[i]) : grads[i].detach();
        return new Evaluation(loss.detach().ReadDouble(), detached);
    }

    public double LossAt(IReadOnlyList<Tensor> direction, double scale) =>
        AtOffset(direction, scale, () =>
        {
            using var _ = no_grad();
            return _model.Loss(_batch).ReadDouble();
        });

    public Evaluation EvaluateAt(IReadOnlyList<Tensor> direction, double scale) =>
        AtOffset(direction, scale, Compute);

    private TResult AtOffset<TResult>(IReadOnlyList<Tensor> direction, double scale, Func<TResult> evaluate)
    {
        if (direction.Count != _params.Length)
            throw new ArgumentException($"direction has {direction.Count} tensors, the model {_params.Length}");
        var saved = new Tensor[_params.Length];
        using (var alpha = scale.ToScalar())
        using (no_grad())
            for (int i = 0; i < _params.Length; i++)
            {
                saved[i] = _params[i].clone();
                _params[i].add_(direction[i], alpha: alpha);
            }
        try { return evaluate(); }
        finally
        {
            using (no_grad())
                for (int i = 0; i < _params.Length; i++) { _params[i].copy_(saved[i]); saved[i].Dispose(); }
        }
    }

    public IHessianOperator Hessian() => new HessianOperator(this);

    public Tensor PerSampleGradients(int maxSamples)
    {
        long n = Math.Min(maxSamples, _batch.Count);
        var rows = new Tensor[n];
        for (long i = 0; i < n; i++)
        {
            using var idx = tensor(new[] { i });
            var single = new TorchObjective(_model, _batch.Select(idx));
            rows[i] = ParameterVectors.Flatten(single.Evaluate().Gradient);
            GradientEvaluations++;
        }
        return stack(rows);
    }

    internal static bool IsMissing(Tensor? t) => t is null || t.IsInvalid;

    private sealed class HessianOperator : IHessianOperator
    {
        private readonly TorchObjective _owner;
        private readonly Tensor _gradFlat;

        public HessianOperator(TorchObjective owner)
        {
            _owner = owner;
            // Intermediate handles are freed with this scope; the graph itself lives on through _gradFlat's grad_fn.
            using (var scope = NewDisposeScope())
            using (enable_grad())
            {
                var loss = owner._model.Loss(owner._batch);
                // create_graph needs retain_graph too, or the next backward aborts the process from C++.
                var grads = autograd.grad([loss], owner._params, retain_graph: true, create_graph: true, allow_unused: true);
                var flat = new Tensor[owner._params.Length];
                for (int i = 0; i < flat.Length; i++)
                    flat[i] = (IsMissing(grads[i]) ? zeros_like(owner._params[i]) : grads[i]).reshape(-1);
                _gradFlat = cat(flat).DetachFromDisposeScope();
            }
            owner.GradientEvaluations++;
            Dimension = owner.ParameterCount;
        }

        public long Dimension { get; }
        public int Products { get; private set; }

        public Tensor Multiply(Tensor v)
        {
            if (v.shape.Length != 1 || v.shape[0] != Dimension)
                throw new ArgumentException($"vector has shape [{string.Join(",", v.shape)}], expected [{Dimension}]");
            Products++;
            _owner.HessianProducts++;
            if (!_gradFlat.requires_grad) return zeros_like(v);
            using var _ = enable_grad();
            var hv = autograd.grad([_gradFlat], _owner._params, [v.to(_gradFlat.dtype)], retain_graph: true, allow_unused: true);
            var parts = new Tensor[hv.Count];
            for (int i = 0; i < parts.Length; i++)
                parts[i] = (IsMissing(hv[i]) ? zeros_like(_owner._params[i]) : hv[i].detach()).reshape(-1);
            return cat(parts);
        }

        public void Dispose() => _gradFlat.Dispose();
    }
}
