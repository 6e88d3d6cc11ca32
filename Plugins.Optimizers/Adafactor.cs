using Harness.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Optimizers;

/// <summary>
/// Adafactor (Shazeer &amp; Stern) with the factored second moment of PyTorch's implementation, but with a fixed
/// step size (no relative step ρ_t, no parameter scaling) and no update clipping, so that the update is exactly
/// θ ← θ − η P^-1 g (β1 = 0) and P is well defined. With ŵ_t = t^beta2_decay (the weight of the new value):
/// tensors of 2+ dimensions keep row and column means of g² over the last two dimensions,
/// R ← (1−ŵ)R + ŵ·mean_col(g²), C ← (1−ŵ)C + ŵ·mean_row(g²), V = R C / max(mean(R), ε1); vectors keep
/// V ← (1−ŵ)V + ŵ g². P = sqrt(max(V, ε1²)). Optional momentum β1 &gt; 0 (Cohen et al. used 0.9):
/// m ← β1 m + (1−β1) g/P; θ ← θ − η m. Threshold 2/η, or (2+2β1)/(η(1−β1)) with momentum, on λ1(P^-1/2 H P^-1/2).
/// Weight decay is decoupled by default (PyTorch).
/// </summary>
public sealed class AdafactorPlugin : IOptimizerPlugin
{
    public string Name => "adafactor";
    public IReadOnlyDictionary<string, object> ThresholdCheckSettings => Specs.FrozenCheck;
    public string Description => "Adafactor: factored second moment, fixed η (no relative step, no clipping): θ ← θ − η g/P. Threshold 2/η ((2+2β1)/(η(1−β1)) with momentum).";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } =
    [
        Specs.Lr(0.01),
        HyperparameterSpec.Real("beta2_decay", -0.8, "the second-moment EMA gives the new value weight t^beta2_decay", max: 0),
        HyperparameterSpec.Real("eps", 0, "ε1 floor of V and of the row-mean normaliser; 0 = machine epsilon of the parameters' dtype (PyTorch's default)", min: 0),
        HyperparameterSpec.Real("beta1", 0, "momentum on the preconditioned gradient (0 = none, as in PyTorch)", min: 0, max: 1, maxExclusive: true),
        Specs.WeightDecay(), Specs.Decoupled(true), Specs.FreezeAtStep(),
    ];
    public IOptimizer Create(IReadOnlyList<Tensor> parameters, HyperparameterValues hp) => new Adafactor(parameters, hp);
}

public sealed class Adafactor(IReadOnlyList<Tensor> parameters, HyperparameterValues hp)
    : AdaptiveOptimizer(parameters, hp.Real("lr"), hp.Real("weight_decay"), hp.Boolean("decoupled_weight_decay"), hp.Integer("freeze_at_step"))
{
    private readonly double _decay = hp.Real("beta2_decay"), _eps = hp.Real("eps"), _beta1 = hp.Real("beta1");

    public override MomentumKind Momentum => _beta1 > 0 ? MomentumKind.Ema : MomentumKind.None;
    public override double MomentumCoefficient => _beta1;
    protected override IReadOnlyCollection<string> StatisticsBuffers => ["row_var", "col_var", "variance", "momentum"];

    private bool Factored(int index) => Params[index].dim() >= 2;

    protected override long[] BufferShape(string name, int index)
    {
        var shape = Params[index].shape.ToArray();
        if (shape.Length >= 2 && name == "row_var") shape[^1] = 1;
        else if (shape.Length >= 2 && name == "col_var") shape[^2] = 1;
        return shape;
    }

    private double Eps1(int index) => _eps > 0 ? _eps : Params[index].dtype switch
    {
        ScalarType.Float64 => 2.220446049250313e-16,
        ScalarType.Float16 => 0.0009765625,
        ScalarType.BFloat16 => 0.0078125,
        _ => 1.1920928955078125e-07,
    };

    protected override void Update(int index, Tensor param, Tensor grad, long t)
    {
        var p = StepPreconditioner(index, grad, t);
        if (_beta1 > 0)
        {
            var m = Buffer("momentum", index);
            m.mul_(Fixed(_beta1)).addcdiv_(grad, p, value: Fixed(1 - _beta1));
            Apply(index, param, m);
        }
        else
            ApplyDiv(index, param, grad, p);
    }

    protected override void UpdateStatistics(int index, Tensor grad, long t)
    {
        double w = Math.Pow(t, _decay);
        var g2 = grad.pow(Two);
        if (Factored(index))
        {
            Buffer("row_var", index).mul_(PerStep(1 - w)).add_(g2.mean([-1], keepdim: true), alpha: PerStep(w));
            Buffer("col_var", index).mul_(PerStep(1 - w)).add_(g2.mean([-2], keepdim: true), alpha: PerStep(w));
        }
        else
            Buffer("variance", index).mul_(PerStep(1 - w)).add_(g2, alpha: PerStep(w));
    }

    protected override Tensor PreconditionerAt(int index, long t)
    {
        double eps1 = Eps1(index);
        Tensor v;
        if (Factored(index))
        {
            var row = Buffer("row_var", index);
            v = row.matmul(Buffer("col_var", index)).div_(row.mean([-2], keepdim: true).clamp_min(Fixed(eps1)));
        }
        else
            v = Buffer("variance", index).clone();
        return v.clamp_min_(Fixed(eps1 * eps1)).sqrt_();
    }
}
