using Harness.Abstractions.Numerics;
using Harness.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Probes;

/// <summary>Loss and accuracy on the whole training subset and on the test set (forward passes only).</summary>
public sealed class AccuracyProbePlugin : IProbePlugin
{
    public string Name => "accuracy";
    public string Description => "Full training-set loss/accuracy and test loss/accuracy (forward passes).";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } = [];

    public IReadOnlyList<MetricSpec> MetricsFor(HyperparameterValues hp) =>
    [
        new("train_accuracy", "accuracy on the whole training subset (null for non-classifiers)"),
        new("test_loss", "mean loss on the test set"),
        new("test_accuracy", "accuracy on the test set"),
    ];

    public IProbe Create(HyperparameterValues hp) => new AccuracyProbe();
}

public sealed class AccuracyProbe : IProbe
{

    public IReadOnlyDictionary<string, double> Measure(ProbeContext ctx)
    {
        using var scope = NewDisposeScope();
        var m = new Dictionary<string, double>();
        if (ctx.Model.Accuracy(ctx.Model.Train) is { } trainAcc) m["train_accuracy"] = trainAcc;
        if (ctx.Model.Test is { } test)
        {
            using (no_grad()) m["test_loss"] = ctx.Model.Loss(test).ReadDouble();
            if (ctx.Model.Accuracy(test) is { } testAcc) m["test_accuracy"] = testAcc;
        }
        return m;
    }

    public void Dispose() { }
}
