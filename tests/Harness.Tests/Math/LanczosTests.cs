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
    public void WarmStartFromTheTopEigenvectorNeedsOnlyItsCheckChain()
    {
        using var scope = NewDisposeScope();
        var spectrum = Enumerable.Range(0, 60).Select(i => 5.0 * System.Math.Pow(0.9, i)).ToArray();
        var a = SymmetricWithSpectrum(spectrum, 3);
        var cold = Lanczos.Run(new MatrixOperator(a), new LanczosOptions(60, 1e-8), dtype: ScalarType.Float64);
        var warm = Lanczos.Run(new MatrixOperator(a), new LanczosOptions(60, 1e-8), start: cold.Top[0].Vector, dtype: ScalarType.Float64);
        Assert.AreEqual(5.0, cold.Top[0].Value, 1e-7);
        Assert.AreEqual(5.0, warm.Top[0].Value, 1e-7);
        Assert.IsTrue(warm.Converged && cold.Converged);
        Assert.AreEqual(1, warm.FreshChains, "one check chain after the first product");
        Assert.IsTrue(warm.Iterations < cold.Iterations, $"warm {warm.Iterations} vs cold {cold.Iterations}");
    }

    [TestMethod]
    public void InvariantSubspaceContinuesWithAFreshDirectionWithoutDividingByZero()
    {
        using var scope = NewDisposeScope();
        var a = diag(tensor(new double[] { 2, 1, 0.5, 0.25 }, dtype: ScalarType.Float64));
        var start = tensor(new double[] { 1, 1, 0, 0 }, dtype: ScalarType.Float64);
        var result = Lanczos.Run(new MatrixOperator(a), new LanczosOptions(4, 1e-12, TopK: 3, Smallest: true), start: start, dtype: ScalarType.Float64);
        Assert.IsTrue(result.Converged);
        Assert.AreEqual(4, result.Iterations, "the start spans an invariant plane: the rest comes from a fresh direction");
        CollectionAssert.AreEqual(new[] { 2.0, 1.0, 0.5 }, result.Top.Select(p => System.Math.Round(p.Value, 12)).ToArray());
        Assert.AreEqual(0.25, result.Bottom!.Value, 1e-12);
    }

    /// <summary>A Hessian-like spectrum in n = 1500: two top eigenvalues 1 % apart, eight more outliers, a bulk near 0
    /// with a few negative entries. The top pair is tight compared with the range, so a start with little weight on v1
    /// gives a converged λ2 before λ1 appears.</summary>
    private static double[] TightTopGapSpectrum(double second)
    {
        var s = new List<double> { 1.01, second };
        for (int i = 0; i < 8; i++) s.Add(0.9 - 0.07 * i);
        for (int i = 0; i < 1490; i++) s.Add(-0.02 + 0.07 * i / 1489.0);
        return s.ToArray();
    }

    private sealed class Diagonal(double[] d) : Harness.Abstractions.ISymmetricOperator
    {
        private readonly Tensor _d = tensor(d, dtype: ScalarType.Float64);
        public long Dimension => d.Length;
        public Tensor Multiply(Tensor v) => _d * v;
    }

    [TestMethod]
    public void TightTopGapFindsLambda1FromEveryRandomStart()
    {
        // λ1/λ2 = 1.01; a random start is rotation invariant, so a diagonal operator stands for any basis. The
        // documented tolerance is residual ≤ 1e-3·|λ|, which puts the Ritz value within 1e-3·λ1 of an eigenvalue:
        // reporting λ2 is an error of 1 %.
        using var scope = NewDisposeScope();
        var op = new Diagonal(TightTopGapSpectrum(1.0));
        var options = new LanczosOptions(200, 1e-3, TopK: 2, Smallest: true) { SmallestRelativeToScale = true };
        var wrong = new List<string>();
        var products = new List<int>();
        for (int seed = 0; seed < 200; seed++)
        {
            using var inner = NewDisposeScope();
            var r = Lanczos.Run(op, options, seed: seed, dtype: ScalarType.Float64);
            products.Add(r.Iterations);
            if (!r.Converged || System.Math.Abs(r.Top[0].Value - 1.01) > 1e-3 * 1.01 || System.Math.Abs(r.Top[1].Value - 1.0) > 1e-3
                || System.Math.Abs(r.Bottom!.Value + 0.02) > 1e-3 * 1.01)
                wrong.Add($"seed {seed}: {r.Top[0].Value} {r.Top[1].Value} {r.Bottom!.Value} converged {r.Converged} after {r.Iterations}");
        }
        Assert.AreEqual(0, wrong.Count, string.Join("\n", wrong));
        Console.WriteLine($"products per run: mean {products.Average():F1}, max {products.Max()}");
    }

    [TestMethod]
    public void TightTopGapFindsLambda1FromEveryRandomStartInFloat32()
    {
        using var scope = NewDisposeScope();
        var d = tensor(TightTopGapSpectrum(1.0), dtype: ScalarType.Float32);
        var op = new MatrixOperatorFloat32(d);
        var wrong = new List<string>();
        var products = new List<int>();
        for (int seed = 0; seed < 100; seed++)
        {
            using var inner = NewDisposeScope();
            var r = Lanczos.Run(op, new LanczosOptions(200, 1e-3), seed: seed);
            products.Add(r.Iterations);
            if (!r.Converged || System.Math.Abs(r.Top[0].Value - 1.01) > 1e-3 * 1.01)
                wrong.Add($"seed {seed}: {r.Top[0].Value} (residual {r.Top[0].Residual:E2}) after {r.Iterations}, {r.FreshChains} fresh chains");
        }
        Assert.AreEqual(0, wrong.Count, string.Join("\n", wrong));
        Console.WriteLine($"products per run: mean {products.Average():F1}, max {products.Max()}");
    }

    private sealed class MatrixOperatorFloat32(Tensor diagonal) : Harness.Abstractions.ISymmetricOperator
    {
        public long Dimension => diagonal.shape[0];
        public Tensor Multiply(Tensor v) => diagonal * v;
    }

    [TestMethod]
    public void ClusterOfEqualTopEigenvaluesGivesEveryCopy()
    {
        // λ1 = λ2 = λ3 = 1: a single Krylov sequence sees one vector of the eigenspace; the other copies come only from
        // fresh directions. Top-4 must be 1, 1, 1, 0.83.
        using var scope = NewDisposeScope();
        var s = TightTopGapSpectrum(1.01).ToList();
        s[0] = 1; s[1] = 1; s[2] = 1;
        var op = new Diagonal(s.ToArray());
        var wrong = new List<string>();
        for (int seed = 0; seed < 40; seed++)
        {
            using var inner = NewDisposeScope();
            var r = Lanczos.Run(op, new LanczosOptions(300, 1e-3, TopK: 4), seed: seed, dtype: ScalarType.Float64);
            double[] expected = [1, 1, 1, 0.83];
            if (!r.Converged || r.Top.Select((p, k) => System.Math.Abs(p.Value - expected[k]) > 1e-3 * 1.0).Any(b => b))
                wrong.Add($"seed {seed}: {string.Join(", ", r.Top.Select(p => p.Value))} converged {r.Converged}");
        }
        Assert.AreEqual(0, wrong.Count, string.Join("\n", wrong));
    }

    [TestMethod]
    public void WarmStartFromAnExactEigenvectorGivesLambda2AndLambdaMin()
    {
        // An exact eigenvector makes its Krylov space invariant after one product: without a fresh direction λ2 is
        // missing and λ_min is reported as λ1 — while claiming convergence.
        using var scope = NewDisposeScope();
        double[] spectrum = [5, 4, 3, 2, 1, 0.5, 0.25, -0.5, -1, 0.125, 0.7, 1.5];
        var a = SymmetricWithSpectrum(spectrum, 5);
        var (_, vectors) = linalg.eigh(a);
        foreach (int column in new[] { 11, 0, 6 }) // the top eigenvector, the bottom one, an interior one
        {
            var start = vectors[.., column].contiguous();
            var r = Lanczos.Run(new MatrixOperator(a), new LanczosOptions(12, 1e-10, TopK: 2, Smallest: true), start: start, dtype: ScalarType.Float64);
            Assert.IsTrue(r.Converged, $"column {column}");
            Assert.AreEqual(5.0, r.Top[0].Value, 1e-9, $"λ1 from column {column}");
            Assert.AreEqual(4.0, r.Top[1].Value, 1e-9, $"λ2 from column {column}");
            Assert.AreEqual(-1.0, r.Bottom!.Value, 1e-9, $"λ_min from column {column}");
        }
    }
}
