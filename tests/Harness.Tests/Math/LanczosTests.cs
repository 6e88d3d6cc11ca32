using Harness.Abstractions.Numerics;
using Harness.Host.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Tests.Math;

[TestClass]
public sealed class LanczosTests
{
    private static Tensor SymmetricWithSpectrum(double[] spectrum, long seed)
    {
        int n = spectrum.Length;
        var (q, _) = linalg.qr(randn(n, n, dtype: ScalarType.Float64, generator: new torch.Generator((ulong)seed)));
        var a = q.matmul(diag(tensor(spectrum, dtype: ScalarType.Float64))).matmul(q.T);
        return (a + a.T) / 2;
    }

    [TestMethod]
    public void FindsLargestAlgebraicEigenvalueWhenTheLargestMagnitudeIsNegative()
    {
        using var scope = NewDisposeScope();
        double[] spectrum = [-10, -4, 3, 2.5, 1, 0.5, 0.1, -0.2, 0.05, 0.01];
        var op = new MatrixOperator(SymmetricWithSpectrum(spectrum, 11));
        var result = Lanczos.Run(op, new LanczosOptions(MaxIterations: 10, RelativeTolerance: 1e-12, TopK: 2, Smallest: true), dtype: ScalarType.Float64);
        Assert.AreEqual(3.0, result.Top[0].Value, 1e-10);
        Assert.AreEqual(2.5, result.Top[1].Value, 1e-10);
        Assert.AreEqual(-10.0, result.Bottom!.Value, 1e-10);
        Assert.IsTrue(result.Top[0].Residual < 1e-9, $"residual {result.Top[0].Residual}");
    }

    [TestMethod]
    public void TopEigenvalueOfNetworkHessianEqualsExplicitHessiansLargestAlgebraicEigenvalue()
    {
        using var scope = NewDisposeScope();
        var model = new TinyMlp();
        var h = HessianTests.ExplicitHessian(model);
        var eig = linalg.eigvalsh(h).data<double>().ToArray();
        double expected = eig.Max();
        var objective = new TorchObjective(model, model.Train);
        using var op = objective.Hessian();
        var result = Lanczos.Run(op, new LanczosOptions(MaxIterations: 26, RelativeTolerance: 1e-12, Smallest: true), dtype: ScalarType.Float64);
        Assert.IsTrue(System.Math.Abs(result.Top[0].Value - expected) <= 1e-8 * System.Math.Abs(expected), $"{result.Top[0].Value} vs {expected}");
        Assert.IsTrue(System.Math.Abs(result.Bottom!.Value - eig.Min()) <= 1e-8 * System.Math.Abs(eig.Min()), $"{result.Bottom.Value} vs {eig.Min()}");
        // The reported residual is the true one: ‖Hv − λv‖.
        var v = result.Top[0].Vector;
        double trueResidual = (h.mv(v) - result.Top[0].Value * v).norm().ToDouble();
        Assert.AreEqual(trueResidual, result.Top[0].Residual, 1e-8 * System.Math.Abs(expected) + 1e-10);
        Assert.AreEqual(result.Iterations, op.Products);
    }

    [TestMethod]
    public void WarmStartFromTheTopEigenvectorConvergesInOneIteration()
    {
        using var scope = NewDisposeScope();
        double[] spectrum = [5, 4, 3, 2, 1, 0.5, 0.25, 0.125];
        var a = SymmetricWithSpectrum(spectrum, 3);
        var cold = Lanczos.Run(new MatrixOperator(a), new LanczosOptions(8, 1e-10), dtype: ScalarType.Float64);
        var warm = Lanczos.Run(new MatrixOperator(a), new LanczosOptions(8, 1e-10), start: cold.Top[0].Vector, dtype: ScalarType.Float64);
        Assert.AreEqual(5.0, cold.Top[0].Value, 1e-10);
        Assert.AreEqual(5.0, warm.Top[0].Value, 1e-10);
        Assert.AreEqual(1, warm.Iterations);
        Assert.IsTrue(cold.Iterations > 1);
    }

    [TestMethod]
    public void StopsAtAnInvariantSubspaceWithoutDividingByZero()
    {
        using var scope = NewDisposeScope();
        var a = diag(tensor(new double[] { 2, 1, 0.5, 0.25 }, dtype: ScalarType.Float64));
        var start = tensor(new double[] { 1, 1, 0, 0 }, dtype: ScalarType.Float64);
        var result = Lanczos.Run(new MatrixOperator(a), new LanczosOptions(4, 1e-12), start: start, dtype: ScalarType.Float64);
        Assert.AreEqual(2, result.Iterations);
        Assert.IsTrue(result.Converged);
        Assert.AreEqual(2.0, result.Top[0].Value, 1e-12);
    }
}
