using Harness.Abstractions;

namespace Harness.Plugins.Tuners;

/// <summary>η_t = the base optimizer's η (its lr, times the schedule): the wrapped run reproduces the base optimizer's
/// trajectory. A baseline for the tuners that goes through the same direction/commit path.</summary>
public sealed class ConstantPlugin : ILearningRateTunerPlugin
{
    public string Name => "constant";
    public string Description => "η_t = the base optimizer's (scheduled) lr: reproduces the untuned run through the tuner path.";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } = [];
    public IReadOnlyList<MetricSpec> MetricsFor(HyperparameterValues hp) => [TunerMetrics.Eta];
    public ILearningRateTuner Create(HyperparameterValues hp) => new ConstantTuner();
}

public sealed class ConstantTuner : ILearningRateTuner
{
    private readonly Dictionary<string, double> _internals = new();
    public IReadOnlyDictionary<string, double> Internals => _internals;

    public double Choose(TunerContext ctx) => _internals["eta"] = ctx.BaseLearningRate;

    public void Dispose() { }
}
