using Harness.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Tests.Math;

/// <summary>A float64 tanh network small enough for an explicit Hessian (3 → 4 → 2, 6 examples, ½‖·‖² loss):
/// 26 parameters, random data from a fixed seed.</summary>
public sealed class TinyMlp : IModel
{
    private readonly Tensor _w1, _b1, _w2, _b2;

    public TinyMlp(long seed = 7, int inputs = 3, int hidden = 4, int outputs = 2, int examples = 6)
    {
        var g = new torch.Generator((ulong)seed);
        _w1 = randn(hidden, inputs, dtype: ScalarType.Float64, generator: g).requires_grad_(true);
        _b1 = (0.1 * randn(hidden, dtype: ScalarType.Float64, generator: g)).requires_grad_(true);
        _w2 = randn(outputs, hidden, dtype: ScalarType.Float64, generator: g).requires_grad_(true);
        _b2 = (0.1 * randn(outputs, dtype: ScalarType.Float64, generator: g)).requires_grad_(true);
        var x = randn(examples, inputs, dtype: ScalarType.Float64, generator: g);
        var y = randn(examples, outputs, dtype: ScalarType.Float64, generator: g);
        Train = new Dataset(x, y, examples);
        Parameters =
        [
            new("w1", _w1, true), new("b1", _b1, false), new("w2", _w2, true), new("b2", _b2, false),
        ];
    }

    public IReadOnlyList<ModelParameter> Parameters { get; }
    public Dataset Train { get; }
    public Dataset? Test => null;

    public Tensor Loss(Dataset batch)
    {
        var h = nn.functional.linear(batch.Inputs!, _w1, _b1).tanh();
        var f = nn.functional.linear(h, _w2, _b2);
        return 0.5 * (f - batch.Targets!).square().sum(1).mean();
    }

    public double? Accuracy(Dataset batch) => null;
    public void Dispose() { }
}

/// <summary>A symmetric operator given by an explicit matrix.</summary>
public sealed class MatrixOperator(Tensor a) : ISymmetricOperator
{
    public int Products { get; private set; }
    public long Dimension => a.shape[0];
    public Tensor Multiply(Tensor v) { Products++; return a.mv(v); }
}
