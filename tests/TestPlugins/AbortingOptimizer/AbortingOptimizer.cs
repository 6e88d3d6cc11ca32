using System.Runtime.InteropServices;
using Harness.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

[assembly: ContractVersion(Contract.Version)]

namespace Harness.TestPlugins;

/// <summary>Gradient descent that calls libc abort() (a native crash, like a libtorch assertion) at step
/// abort_at_step (-1 = never), allocates memory without bound from step hog_at_step (-1 = never), or sleeps
/// sleep_ms per step.</summary>
public sealed class AbortingOptimizerPlugin : IOptimizerPlugin
{
    public string Name => "abort_gd";
    public string Description => "Test plugin: gradient descent that aborts the process natively at a chosen step.";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } =
    [
        HyperparameterSpec.Real("lr", 0.01, "learning rate η", min: 0, minExclusive: true),
        HyperparameterSpec.Integer("abort_at_step", -1, "step at which Step calls abort() (-1 = never)", min: -1),
        HyperparameterSpec.Integer("hog_at_step", -1, "step from which Step allocates 64 MiB per step and keeps it (-1 = never)", min: -1),
        HyperparameterSpec.Integer("sleep_ms", 0, "milliseconds Step sleeps (a slow run, for time limits)", min: 0),
        HyperparameterSpec.Integer("overflow_at_step", -1, "step at which Step recurses without end (a .NET stack overflow; -1 = never)", min: -1),
    ];

    public IOptimizer Create(IReadOnlyList<Tensor> parameters, HyperparameterValues hp) =>
        new AbortingOptimizer(parameters, hp.Real("lr"), hp.Integer("abort_at_step"), hp.Integer("hog_at_step"), hp.Integer("sleep_ms"), hp.Integer("overflow_at_step"));
}

public sealed class AbortingOptimizer(IReadOnlyList<Tensor> parameters, double lr, long abortAt, long hogAt, long sleepMs, long overflowAt) : IOptimizer
{
    [DllImport("libc", EntryPoint = "abort")]
    private static extern void NativeAbort();

    private static readonly List<byte[]> Hog = new();

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static long Recurse(long depth) => Recurse(depth + 1) + depth;
    private long _t;

    public double LearningRate { get; set; } = lr;
    public IReadOnlyList<Tensor>? Preconditioner => null;
    public MomentumKind Momentum => MomentumKind.None;
    public double MomentumCoefficient => 0;
    public double StabilityThreshold => 2.0 / LearningRate;

    public StepResult Step(IObjective objective)
    {
        // ABORTING_OPTIMIZER_ALWAYS=1 (tests of the conformance gate's isolation): abort on every first step.
        if (_t == abortAt || Environment.GetEnvironmentVariable("ABORTING_OPTIMIZER_ALWAYS") == "1") NativeAbort();
        if (_t == overflowAt) Recurse(0);
        if (sleepMs > 0) Thread.Sleep((int)sleepMs);
        if (hogAt >= 0 && _t >= hogAt)
        {
            var block = new byte[64 << 20];
            for (int i = 0; i < block.Length; i += 4096) block[i] = 1; // touch every page: resident, not just reserved
            Hog.Add(block);
        }
        var eval = objective.Evaluate();
        using (no_grad())
            for (int i = 0; i < parameters.Count; i++) parameters[i].add_(eval.Gradient[i], alpha: -LearningRate);
        objective.Invalidate();
        _t++;
        return new StepResult(eval.Loss);
    }

    public OptimizerState ExportState() => new() { Scalars = { ["step"] = _t } };
    public void ImportState(OptimizerState state) => _t = (long)state.Scalars.GetValueOrDefault("step");
    public void Dispose() { }
}
