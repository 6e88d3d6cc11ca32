using Harness.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Optimizers;

/// <summary>
/// The five momentum types of docs/science.md §2, optionally with a static diagonal preconditioner P (θ steps with −η P^-1(·)):
/// <list type="bullet">
/// <item>None: θ ← θ − η P^-1 g</item>
/// <item>Standard: m ← βm + g; θ ← θ − η P^-1 m (PyTorch SGD momentum, dampening 0)</item>
/// <item>Ema: m ← βm + (1−β)g; θ ← θ − η P^-1 m</item>
/// <item>StandardNesterov: m ← βm + g; θ ← θ − η P^-1 (βm + g) (PyTorch SGD nesterov=True)</item>
/// <item>EmaNesterov: m ← βm + (1−β)g; θ ← θ − η P^-1 (βm + (1−β)g)</item>
/// </list>
/// P is the state buffer <see cref="PreconditionerBuffer"/>, imported with the state (from another run's saved
/// state through the matrix key <c>preconditioner_from</c>, or by hand); until one is imported P = 1.
/// </summary>
public abstract class MomentumMethod : OptimizerBase
{
    /// <summary>Name of the state buffer holding the static P of the preconditioned variants.</summary>
    public const string PreconditionerBuffer = "preconditioner";
    private const string MomentumBuffer = "momentum";

    private readonly MomentumKind _kind;
    private readonly double _beta;
    private readonly bool _preconditioned;
    private readonly string[] _bufferNames;

    protected MomentumMethod(IReadOnlyList<Tensor> parameters, double lr, MomentumKind kind, double beta,
        double weightDecay, bool decoupledWeightDecay, bool preconditioned)
        : base(parameters, lr, weightDecay, decoupledWeightDecay)
    {
        _kind = kind;
        _beta = kind == MomentumKind.None ? 0 : beta;
        _preconditioned = preconditioned;
        _bufferNames = preconditioned ? [MomentumBuffer, PreconditionerBuffer] : [MomentumBuffer];
    }

    public override MomentumKind Momentum => _kind;
    public override double MomentumCoefficient => _beta;
    protected override IReadOnlyCollection<string> BufferNames => _bufferNames;

    protected override void Update(int index, Tensor param, Tensor grad, long t)
    {
        Tensor direction;
        switch (_kind)
        {
            case MomentumKind.None:
                direction = grad;
                break;
            case MomentumKind.Standard:
                direction = Buffer(MomentumBuffer, index).mul_(Fixed(_beta)).add_(grad, One);
                break;
            case MomentumKind.Ema:
                direction = Buffer(MomentumBuffer, index).mul_(Fixed(_beta)).add_(grad, alpha: Fixed(1 - _beta));
                break;
            case MomentumKind.StandardNesterov:
            {
                var m = Buffer(MomentumBuffer, index).mul_(Fixed(_beta)).add_(grad, One);
                direction = grad.add(m, alpha: Fixed(_beta));
                break;
            }
            case MomentumKind.EmaNesterov:
            {
                var m = Buffer(MomentumBuffer, index).mul_(Fixed(_beta)).add_(grad, alpha: Fixed(1 - _beta));
                direction = m.mul(Fixed(_beta)).add_(grad, alpha: Fixed(1 - _beta));
                break;
            }
            default:
                throw new InvalidOperationException($"unknown momentum kind {_kind}");
        }
        if (_preconditioned && HasBuffer(PreconditionerBuffer, index))
            ApplyDiv(index, param, direction, Buffer(PreconditionerBuffer, index));
        else
            Apply(index, param, direction);
    }

    /// <summary>The static P (ones until one is imported) for the preconditioned variants; null otherwise.</summary>
    public override IReadOnlyList<Tensor>? Preconditioner =>
        _preconditioned
            ? Params.Select((p, i) => HasBuffer(PreconditionerBuffer, i) ? Buffer(PreconditionerBuffer, i).clone() : ones_like(p)).ToList()
            : null;

    public override void ImportState(OptimizerState state)
    {
        if (state.Buffers.TryGetValue(PreconditionerBuffer, out var p))
            foreach (var a in p)
                if (a is not null && a.Any(x => !(x > 0) || double.IsInfinity(x)))
                    throw new ArgumentException("an imported preconditioner must have finite, positive entries");
        base.ImportState(state);
    }
}
