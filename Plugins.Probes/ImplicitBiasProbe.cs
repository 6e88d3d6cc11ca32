using Harness.Abstractions;
using Harness.Abstractions.Numerics;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Probes;

/// <summary>
/// Implicit-bias terms of full-batch Adam (Cattaneo et al., docs/science.md §4) at the current point, on the probe set:
/// u_i = g_i/sqrt(g_i²+ε), w = H u (one HVP), c_x(n) = x/(1−x) − (n+1)x^(n+1)/(1−x^(n+1)) with n = the step,
/// b_j = (h/2)[(2c_β1(n)+1) − (2c_β2(n)+1) g_j²/(g_j²+ε)] w_j; N_ε = Σ sqrt(g_j²+ε) and its excess N_ε − p·sqrt(ε);
/// the fractions of components with |g_j|/sqrt(ε) &gt; 10 (sign-descent regime) and &lt; 0.1 (gradient-descent regime);
/// the penalised fraction (b_j has the sign of w_j, i.e. (2c_β1+1) − (2c_β2+1) g_j²/(g_j²+ε) &gt; 0; and the n → ∞
/// form A − B + Bε/(g_j²+ε) &gt; 0 of docs/science.md §4); D_bias = −Σ w_j b_j / sqrt(g_j²+ε); κ = max_j |b_j|/|g_j| over g_j ≠ 0.
/// h, β1 come from the optimizer (η and, for EMA momentum, its coefficient; else β1 = 0 as for RMSProp) unless set;
/// β2 and ε are probe hyperparameters (the contract does not expose them). Publishes b and w (flat tensors) on the
/// blackboard as "implicit_bias_b" and "implicit_bias_w". Cost: 1 gradient evaluation + 1 HVP.
/// </summary>
public sealed class ImplicitBiasProbePlugin : IProbePlugin
{
    public const string BiasKey = "implicit_bias_b";
    public const string HuKey = "implicit_bias_w";

    public string Name => "implicit_bias";
    public string Description => "Cattaneo et al.'s implicit-bias terms of Adam: N_ε, regimes, penalised fraction, bias b, D_bias, κ.";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } =
    [
        HyperparameterSpec.Real("beta1", -1, "β1; −1 = the optimizer's momentum coefficient when its momentum is EMA, else 0", min: -1, max: 1, maxExclusive: true),
        HyperparameterSpec.Real("beta2", 0.999, "β2 (not exposed by the optimizer contract)", min: 0, max: 1, maxExclusive: true),
        HyperparameterSpec.Real("eps", 1e-8, "ε inside the root (Cattaneo et al., Roulet et al. convention)", min: 0, minExclusive: true),
        HyperparameterSpec.Real("lr", 0, "h; 0 = the optimizer's current learning rate", min: 0),
    ];

    public IReadOnlyList<MetricSpec> MetricsFor(HyperparameterValues hp) =>
    [
        new("implicit_bias_n_eps", "perturbed one-norm N_ε = Σ_j sqrt(g_j² + ε) of the probe-set gradient"),
        new("implicit_bias_n_eps_excess", "N_ε − p·sqrt(ε)"),
        new("implicit_bias_grad_l1", "‖g‖₁ on the probe set"),
        new("implicit_bias_grad_l2", "‖g‖₂ on the probe set"),
        new("implicit_bias_frac_sign", "fraction of components with |g_j|/sqrt(ε) > 10 (sign-descent regime)"),
        new("implicit_bias_frac_gd", "fraction of components with |g_j|/sqrt(ε) < 0.1 (gradient-descent regime)"),
        new("implicit_bias_penalised_fraction", "fraction of components with (2c_β1(n)+1) − (2c_β2(n)+1) g_j²/(g_j²+ε) > 0 (N_ε penalised)"),
        new("implicit_bias_penalised_fraction_limit", "the same with the n → ∞ coefficients: A − B + Bε/(g_j²+ε) > 0"),
        new("implicit_bias_norm", "‖b‖₂ of the bias vector"),
        new("implicit_bias_d_bias", "D_bias = −Σ_j w_j b_j / sqrt(g_j²+ε) (rate of change of N_ε due to the bias; < 0 = penalising)"),
        new("implicit_bias_kappa", "κ = max_j |b_j|/|g_j| (the expansion is trustworthy for κ ≲ 0.3)"),
        new("implicit_bias_coef1", "2c_β1(n) + 1 (→ A = (1+β1)/(1−β1))"),
        new("implicit_bias_coef2", "2c_β2(n) + 1 (→ B = (1+β2)/(1−β2))"),
    ];

    public IProbe Create(HyperparameterValues hp) => new ImplicitBiasProbe(hp.Real("beta1"), hp.Real("beta2"), hp.Real("eps"), hp.Real("lr"));
}

public sealed class ImplicitBiasProbe(double beta1, double beta2, double eps, double lr) : IProbe
{
    private Tensor? _b, _w;

    /// <summary>c_x(n) = x/(1−x) − (n+1)x^(n+1)/(1−x^(n+1)); 0 for x = 0.</summary>
    public static double C(double x, long n)
    {
        if (x == 0) return 0;
        double xn1 = Math.Pow(x, n + 1);
        return x / (1 - x) - (n + 1) * xn1 / (1 - xn1);
    }

    public IReadOnlyDictionary<string, double> Measure(ProbeContext ctx)
    {
        using var scope = NewDisposeScope();
        var opt = ctx.Optimizer;
        double b1 = beta1 >= 0 ? beta1 : opt.Momentum is MomentumKind.Ema or MomentumKind.EmaNesterov ? opt.MomentumCoefficient : 0;
        double h = lr > 0 ? lr : opt.LearningRate;
        long n = ctx.Step;
        double coef1 = 2 * C(b1, n) + 1, coef2 = 2 * C(beta2, n) + 1;
        double limA = (1 + b1) / (1 - b1), limB = (1 + beta2) / (1 - beta2);

        var g = ProbeMath.Flat(ctx.Objective.Evaluate().Gradient).to(ScalarType.Float64);
        using var two = 2.ToScalar();
        var g2 = g.pow(two);
        // Explicit Scalars (an implicitly converted double can be finalized during the native call).
        using var epsS = eps.ToScalar();
        using var coef1S = coef1.ToScalar();
        using var coef2S = coef2.ToScalar();
        using var halfH = (h / 2).ToScalar();
        using var sqrtEps = Math.Sqrt(eps).ToScalar();
        using var limBEps = (limB * eps).ToScalar();
        using var limAMinusB = (limA - limB).ToScalar();
        using var zero = 0.ToScalar();
        using var one = 1.ToScalar();
        using var ten = 10.ToScalar();
        using var tenth = 0.1.ToScalar();
        var root = g2.add(epsS, one).sqrt();
        var u = g / root;
        Tensor w;
        using (var hessian = ctx.Objective.Hessian())
            w = hessian.Multiply(u.to(ctx.Objective.Parameters[0].dtype)).to(ScalarType.Float64);
        var frac = g2 / g2.add(epsS, one);
        var c = frac.mul(coef2S).negative().add(coef1S, one);   // coef1 − coef2·frac, as TorchSharp's double − Tensor
        var b = c.mul(halfH) * w;
        long p = g.shape[0];
        var ratio = g.abs().div(sqrtEps);
        var nonzero = g.ne(zero);

        var m = new Dictionary<string, double>
        {
            ["implicit_bias_n_eps"] = root.sum().item<double>(),
            ["implicit_bias_n_eps_excess"] = root.sum().item<double>() - p * Math.Sqrt(eps),
            ["implicit_bias_grad_l1"] = g.abs().sum().item<double>(),
            ["implicit_bias_grad_l2"] = g.norm().item<double>(),
            ["implicit_bias_frac_sign"] = ratio.gt(ten).to(ScalarType.Float64).mean().item<double>(),
            ["implicit_bias_frac_gd"] = ratio.lt(tenth).to(ScalarType.Float64).mean().item<double>(),
            ["implicit_bias_penalised_fraction"] = c.gt(zero).to(ScalarType.Float64).mean().item<double>(),
            ["implicit_bias_penalised_fraction_limit"] = g2.add(epsS, one).reciprocal().mul(limBEps).add(limAMinusB, one).gt(zero).to(ScalarType.Float64).mean().item<double>(),
            ["implicit_bias_norm"] = b.norm().item<double>(),
            ["implicit_bias_d_bias"] = -(w * b / root).sum().item<double>(),
            ["implicit_bias_coef1"] = coef1,
            ["implicit_bias_coef2"] = coef2,
        };
        using (var any = nonzero.any())
            if (any.ReadBoolean())
                m["implicit_bias_kappa"] = (b.abs() / g.abs()).masked_select(nonzero).max().item<double>();

        _b?.Dispose(); _w?.Dispose();
        _b = b.detach().clone().DetachFromDisposeScope();
        _w = w.detach().clone().DetachFromDisposeScope();
        ctx.Shared[ImplicitBiasProbePlugin.BiasKey] = _b;
        ctx.Shared[ImplicitBiasProbePlugin.HuKey] = _w;
        return m;
    }

    public void Dispose() { _b?.Dispose(); _w?.Dispose(); }
}
