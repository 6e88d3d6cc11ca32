using Harness.Abstractions;
using TorchSharp;

[assembly: ContractVersion(Contract.Version)]

namespace Harness.TestPlugins.Throwing;

/// <summary>A plugin of the current contract version whose constructor throws (as a plugin that fails to read its
/// own configuration or a missing native library would).</summary>
public sealed class ThrowingOptimizerPlugin : IOptimizerPlugin
{
    public const string Message = "ThrowingOptimizerPlugin refuses to be constructed (test plugin)";

    public ThrowingOptimizerPlugin() => throw new InvalidOperationException(Message);

    public string Name => "throwing";
    public string Description => "Never constructed.";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters => [];
    public IOptimizer Create(IReadOnlyList<torch.Tensor> parameters, HyperparameterValues hyperparameters) =>
        throw new NotSupportedException();
}
