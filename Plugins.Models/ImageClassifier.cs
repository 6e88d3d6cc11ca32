using Harness.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Models;

/// <summary>What the image classifiers (fashion_mlp, cnn, resnet) share: the loss choice, the data, loss and accuracy
/// computed from <see cref="Forward"/>, and disposal. A subclass builds its parameters and sets
/// <see cref="Parameters"/>.</summary>
public abstract class ImageClassifier : IModel
{
    private readonly string _loss;

    protected ImageClassifier(ModelContext ctx, bool flatten)
    {
        _loss = ctx.Hyperparameters.Choice("loss");
        Data = ImageData.Load(ctx, flatten);
    }

    /// <summary>The loaded data set (shapes, class count).</summary>
    protected ImageSplits Data { get; }
    protected int Classes => Data.Classes;
    public IReadOnlyList<ModelParameter> Parameters { get; protected init; } = [];
    public Dataset Train => Data.Train;
    public Dataset? Test => Data.Test;

    /// <summary>Logits (N × classes) of a batch of inputs.</summary>
    protected abstract Tensor Forward(Tensor x);

    public Tensor Loss(Dataset batch) => Losses.Classification(_loss, Forward(batch.Inputs!), batch.Targets!, Classes);

    public double? Accuracy(Dataset batch)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        return Losses.Accuracy(Forward(batch.Inputs!), batch.Targets!);
    }

    public void Dispose()
    {
        foreach (var p in Parameters) p.Tensor.Dispose();
        ImageData.Dispose(Train, Test);
        GC.SuppressFinalize(this);
    }
}
