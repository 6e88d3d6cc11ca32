using Harness.Abstractions;

namespace Harness.Plugins.Optimizers;

/// <summary>Hyperparameter specs shared by several optimizers (same names and meaning everywhere).</summary>
internal static class Specs
{
    public static HyperparameterSpec Lr(double @default) =>
        HyperparameterSpec.Real("lr", @default, "learning rate η (a schedule multiplies it per step)", min: 0, minExclusive: true);

    public static HyperparameterSpec Momentum(double @default = 0.9) =>
        HyperparameterSpec.Real("momentum", @default, "momentum coefficient β", min: 0, max: 1, maxExclusive: true);

    public static HyperparameterSpec Beta1(double @default = 0.9) =>
        HyperparameterSpec.Real("beta1", @default, "first-moment (momentum) decay β1", min: 0, max: 1, maxExclusive: true);

    public static HyperparameterSpec Beta2(double @default = 0.999) =>
        HyperparameterSpec.Real("beta2", @default, "second-moment decay β2", min: 0, max: 1, maxExclusive: true);

    public static HyperparameterSpec Eps(double @default) =>
        HyperparameterSpec.Real("eps", @default, "ε added to the root (or inside it, see eps_inside_sqrt)", min: 0);

    public static HyperparameterSpec EpsInsideSqrt() =>
        HyperparameterSpec.Boolean("eps_inside_sqrt", false, "sqrt(ν̂ + ε) (Cattaneo et al., Roulet et al.) instead of sqrt(ν̂) + ε (PyTorch, Cohen et al., the coherence paper)");

    public static HyperparameterSpec BiasCorrection(bool @default) =>
        HyperparameterSpec.Boolean("bias_correction", @default, "divide the moments by (1 − β^t)");

    public static HyperparameterSpec WeightDecay(double @default = 0) =>
        HyperparameterSpec.Real("weight_decay", @default, "weight decay λ", min: 0);

    public static HyperparameterSpec Decoupled(bool @default = false) =>
        HyperparameterSpec.Boolean("decoupled_weight_decay", @default, "true: θ ← θ(1 − ηλ) before the update (AdamW); false: L2, g ← g + λθ");

    /// <summary>Settings under which the gate proves an adaptive method's threshold: P frozen after the first update (an
    /// adaptive P follows the gradient and never lets a quadratic diverge) and no weight decay (the threshold is the
    /// loss's).</summary>
    public static readonly IReadOnlyDictionary<string, object> FrozenCheck =
        new Dictionary<string, object> { ["freeze_at_step"] = 1L, ["weight_decay"] = 0.0 };

    public static HyperparameterSpec FreezeAtStep() =>
        HyperparameterSpec.Integer("freeze_at_step", 0, "freeze P after update k (\"frozen Adam\", Cohen et al.): later updates use P_k and stop updating the second moments; 0 = never", min: 0);
}
