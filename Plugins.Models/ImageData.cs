using Harness.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Models;

/// <summary>Train/test splits of an image dataset as tensors, with their shape.</summary>
/// <param name="Train">inputs N×C×H×W (or N×(C·H·W) when flattened) in the run's dtype, targets int64 labels</param>
public sealed record ImageSplits(Dataset Train, Dataset? Test, int Channels, int Height, int Width, int Classes)
{
    public int Features => Channels * Height * Width;
}

/// <summary>The image datasets the classifiers share: Fashion-MNIST (IDX, Debian package) and user-supplied CIFAR-10/100
/// binaries. Seeded class-balanced subsets chosen by data_seed; pixels scaled to [0, 1], and for Fashion-MNIST then
/// standardised with the training set's mean and standard deviation (<see cref="FashionMnist.PixelMean"/>,
/// <see cref="FashionMnist.PixelStd"/>); CIFAR is not standardised; never downloaded.</summary>
public static class ImageData
{
    public const string FashionMnistName = "fashion_mnist";
    public const string Cifar10Name = "cifar10";
    public const string Cifar100Name = "cifar100";

    public static HyperparameterSpec DatasetSpec() => HyperparameterSpec.Choice("dataset", FashionMnistName,
        "fashion_mnist (IDX files of the Debian package) or cifar10/cifar100 (binary batches from the matrix's data_dir; never downloaded)",
        FashionMnistName, Cifar10Name, Cifar100Name);

    public static HyperparameterSpec TrainSizeSpec(long @default = 1000) => HyperparameterSpec.Integer("train_size", @default,
        "training examples, class-balanced, chosen by data_seed", min: 10, max: 60000);

    public static HyperparameterSpec TestSizeSpec(long @default = 1000) => HyperparameterSpec.Integer("test_size", @default,
        "test examples (balanced, from the test split; 0 = none)", min: 0, max: 10000);

    public static HyperparameterSpec LossSpec() => HyperparameterSpec.Choice("loss", Losses.Mse,
        "mse on one-hot targets (½‖·‖², mean over examples) or cross_entropy", Losses.Mse, Losses.CrossEntropy);

    /// <summary>Loads the splits named by the model's "dataset", "train_size" and "test_size" hyperparameters.</summary>
    public static ImageSplits Load(ModelContext ctx, bool flatten)
    {
        var hp = ctx.Hyperparameters;
        return Load(hp.Choice("dataset"), (int)hp.Integer("train_size"), (int)hp.Integer("test_size"), ctx, flatten);
    }

    public static ImageSplits Load(string dataset, int trainSize, int testSize, ModelContext ctx, bool flatten)
    {
        using var scope = NewDisposeScope();
        Dataset train; Dataset? test = null;
        int c, h, w, classes;
        switch (dataset)
        {
            case FashionMnistName:
            {
                (c, h, w, classes) = (1, 28, 28, FashionMnist.Classes);
                string dir = FashionMnist.ResolveDirectory(ctx.DataDirectory);
                var idx = FashionMnist.BalancedSubset(FashionMnist.ReadLabels(dir, train: true), trainSize, ctx.DataSeed);
                var (x, y) = FashionMnist.Tensors(dir, true, idx, ctx.DType, ctx.Device);
                train = new Dataset(x, y, idx.Length);
                if (testSize > 0)
                {
                    var tidx = FashionMnist.BalancedSubset(FashionMnist.ReadLabels(dir, train: false), testSize, ctx.DataSeed);
                    var (tx, ty) = FashionMnist.Tensors(dir, false, tidx, ctx.DType, ctx.Device);
                    test = new Dataset(tx, ty, tidx.Length);
                }
                break;
            }
            case Cifar10Name or Cifar100Name:
            {
                bool hundred = dataset == Cifar100Name;
                (c, h, w, classes) = (3, 32, 32, Cifar.Classes(hundred));
                string dir = Cifar.ResolveDirectory(ctx.DataDirectory, hundred);
                train = CifarSplit(dir, hundred, true, trainSize, ctx);
                if (testSize > 0) test = CifarSplit(dir, hundred, false, testSize, ctx);
                break;
            }
            default: throw new ArgumentException($"unknown dataset '{dataset}'");
        }
        long[] shape = flatten ? [-1, c * h * w] : [-1, c, h, w];
        train = new Dataset(train.Inputs!.reshape(shape).DetachFromDisposeScope(), train.Targets!.DetachFromDisposeScope(), train.Count);
        if (test is not null)
            test = new Dataset(test.Inputs!.reshape(shape).DetachFromDisposeScope(), test.Targets!.DetachFromDisposeScope(), test.Count);
        return new ImageSplits(train, test, c, h, w, classes);
    }

    private static Dataset CifarSplit(string dir, bool hundred, bool train, int size, ModelContext ctx)
    {
        var (pixels, labels, _) = Cifar.Read(dir, hundred, train);
        var idx = Subsets.Balanced(labels, Cifar.Classes(hundred), size, ctx.DataSeed, hundred ? "CIFAR-100" : "CIFAR-10");
        var x = new double[(long)idx.Length * Cifar.Pixels];
        var y = new long[idx.Length];
        for (int k = 0; k < idx.Length; k++)
        {
            long src = (long)idx[k] * Cifar.Pixels, dst = (long)k * Cifar.Pixels;
            for (int j = 0; j < Cifar.Pixels; j++) x[dst + j] = pixels[src + j] / 255.0;
            y[k] = labels[idx[k]];
        }
        return new Dataset(tensor(x, [idx.Length, Cifar.Pixels], dtype: ScalarType.Float64).to(ctx.DType, ctx.Device),
            tensor(y, dtype: ScalarType.Int64).to(ctx.Device), idx.Length);
    }

    public static void Dispose(Dataset train, Dataset? test)
    {
        train.Inputs?.Dispose(); train.Targets?.Dispose();
        test?.Inputs?.Dispose(); test?.Targets?.Dispose();
    }
}
