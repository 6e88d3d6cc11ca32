namespace Harness.Host.Training;

/// <summary>
/// A learning-rate schedule η_t = η_0 · factor(t), applied by the host before every step (the optimizer's
/// threshold then follows η_t). Kinds: constant; linear_warmup (0 → 1 over warmup_steps, then 1); cosine and
/// linear_decay (after an optional warm-up, from 1 down to final_fraction at decay_steps, then constant);
/// step_decay (× gamma every step_size steps, after the warm-up).
/// </summary>
public sealed record LearningRateSchedule(string Kind, long WarmupSteps = 0, long DecaySteps = 0, double FinalFraction = 0,
    long StepSize = 1, double Gamma = 0.1)
{
    public static readonly string[] Kinds = ["constant", "linear_warmup", "cosine", "linear_decay", "step_decay"];
    public static readonly string[] Keys = ["kind", "warmup_steps", "decay_steps", "final_fraction", "step_size", "gamma"];
    public static readonly LearningRateSchedule Constant = new("constant");

    /// <summary>Multiplier of the base learning rate at step t (t = 0 is the first update).</summary>
    public double Factor(long t)
    {
        if (Kind == "constant") return 1;
        if (WarmupSteps > 0 && t < WarmupSteps) return (t + 1.0) / WarmupSteps;
        long s = t - WarmupSteps;
        long span = Math.Max(1, DecaySteps - WarmupSteps);
        double progress = Math.Clamp((double)s / span, 0, 1);
        return Kind switch
        {
            "linear_warmup" => 1,
            "cosine" => FinalFraction + (1 - FinalFraction) * 0.5 * (1 + Math.Cos(Math.PI * progress)),
            "linear_decay" => 1 - (1 - FinalFraction) * progress,
            "step_decay" => Math.Pow(Gamma, Math.Max(0, s) / Math.Max(1, StepSize)),
            _ => throw new InvalidOperationException($"unknown schedule kind '{Kind}'"),
        };
    }
}
