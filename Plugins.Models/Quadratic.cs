using Harness.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Models;

/// <summary>f(θ) = ½ θᵀAθ with a chosen spectrum, A diagonal or randomly rotated (A = Q diag(λ) Qᵀ with Q from the
/// QR factorisation of a seeded Gaussian matrix). λ1(A) = lambda_max exactly, so thresholds can be checked. A linear
/// spectrum may include negative eigenvalues (a saddle). θ is declared as one layer, so per-layer probes (R_med, the
/// Hessian diagonal) can be checked against diag(A). <c>hessian</c> gives A itself (a symmetric matrix as text, rows
/// separated by ';', entries by spaces or commas) and <c>theta0</c> the starting point, for the papers' exact toys.</summary>
public sealed class QuadraticPlugin : IModelPlugin
{
    public string Name => "quadratic";
    public string Description => "Quadratic ½θᵀAθ with a linear or geometric spectrum, diagonal or rotated.";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } =
    [
        HyperparameterSpec.Integer("dim", 10, "dimension p", min: 1, max: 4096),
        HyperparameterSpec.Real("lambda_max", 1.0, "largest eigenvalue of A"),
        HyperparameterSpec.Real("lambda_min", 0.01, "smallest eigenvalue of A"),
        HyperparameterSpec.Choice("spectrum", "linear", "spacing of the eigenvalues between lambda_min and lambda_max", "linear", "geometric"),
        HyperparameterSpec.Boolean("rotated", false, "rotate A by a random orthogonal matrix (seeded by data_seed)"),
        HyperparameterSpec.Real("init_scale", 1.0, "θ0 ~ N(0, init_scale²) (seeded by init_seed)", min: 0),
        HyperparameterSpec.Text("hessian", "", "A itself, symmetric, rows separated by ';' (\"1 0.9; 0.9 1\"); sets p and replaces dim, the spectrum and the rotation; empty = from the spectrum"),
        HyperparameterSpec.Text("theta0", "", "starting point, p numbers separated by spaces or commas (\"2.8 3.5\"); empty = N(0, init_scale²)"),
    ];

    public IModel Create(ModelContext context) => new Quadratic(context);
}

public sealed class Quadratic : IModel
{
    private readonly Tensor _theta;

    public Quadratic(ModelContext ctx)
    {
        var hp = ctx.Hyperparameters;
        double[,]? given = ParseMatrix(hp.Text("hessian"));
        int p = given?.GetLength(0) ?? (int)hp.Integer("dim");
        double[]? start = ParseVector(hp.Text("theta0"), "theta0");
        if (start is not null && start.Length != p)
            throw new ArgumentException($"theta0 has {start.Length} entries but the quadratic has {p} parameters");
        using (var scope = NewDisposeScope())
        {
            Tensor a;
            if (given is not null)
            {
                a = tensor(given, dtype: ScalarType.Float64);
                Spectrum = linalg.eigvalsh(a).data<double>().ToArray().OrderByDescending(x => x).ToArray();
            }
            else
            {
                var spectrum = SpectrumOf(hp, p);
                Spectrum = spectrum;
                a = diag(tensor(spectrum, dtype: ScalarType.Float64));
                if (hp.Boolean("rotated"))
                {
                    var g = randn(p, p, dtype: ScalarType.Float64, generator: new TorchSharp.torch.Generator((ulong)ctx.DataSeed));
                    var (q, _) = linalg.qr(g);
                    a = q.matmul(a).matmul(q.T);
                    using var one = 1.ToScalar();
                    using var two = 2.ToScalar();
                    a = a.add(a.T, one).div(two);
                }
            }
            A = a.to(ctx.DType, ctx.Device).MoveToOuterDisposeScope();
            var gen = new TorchSharp.torch.Generator((ulong)ctx.InitSeed);
            using var initScale = hp.Real("init_scale").ToScalar();
            var theta0 = start is not null ? tensor(start, dtype: ScalarType.Float64)
                : randn(p, dtype: ScalarType.Float64, generator: gen).mul(initScale);
            _theta = theta0.to(ctx.DType, ctx.Device).requires_grad_(true).MoveToOuterDisposeScope();
        }
        A = A.DetachFromDisposeScope();
        _theta = _theta.DetachFromDisposeScope();
        Parameters = [new ModelParameter("theta", _theta, IsLayerWeight: true)];
    }

    private static double[] SpectrumOf(HyperparameterValues hp, int p)
    {
        double hi = hp.Real("lambda_max"), lo = hp.Real("lambda_min");
        if (hi < lo) throw new ArgumentException($"lambda_max ({hi}) is below lambda_min ({lo})");
        if (hp.Choice("spectrum") == "geometric" && (lo <= 0 || hi <= 0))
            throw new ArgumentException("a geometric spectrum needs lambda_min > 0 and lambda_max > 0");
        var spectrum = new double[p];
        for (int i = 0; i < p; i++)
        {
            double s = p == 1 ? 1 : (double)(p - 1 - i) / (p - 1);
            spectrum[i] = hp.Choice("spectrum") == "geometric" ? lo * Math.Pow(hi / lo, s) : lo + (hi - lo) * s;
        }
        return spectrum;
    }

    /// <summary>Numbers separated by spaces or commas; null for empty text.</summary>
    private static double[]? ParseVector(string text, string what)
    {
        var parts = text.Split([' ', ',', '\t'], StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0) return null;
        var x = new double[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!double.TryParse(parts[i], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out x[i])
                || !double.IsFinite(x[i]))
                throw new ArgumentException($"{what}, entry {i}: '{parts[i]}' is not a number");
        return x;
    }

    /// <summary>A square symmetric matrix, rows separated by ';'; null for empty text. Symmetry is required to
    /// 1e-12 relative to the largest entry (A is a Hessian; an asymmetric A would make ½θᵀAθ's Hessian (A + Aᵀ)/2).</summary>
    private static double[,]? ParseMatrix(string text)
    {
        var rows = text.Split(';', StringSplitOptions.TrimEntries);
        if (rows.Length == 1 && rows[0].Length == 0) return null;
        int n = rows.Length;
        var m = new double[n, n];
        for (int i = 0; i < n; i++)
        {
            var row = ParseVector(rows[i], $"hessian row {i}") ?? [];
            if (row.Length != n) throw new ArgumentException($"hessian row {i} has {row.Length} entries, expected {n} (a square matrix)");
            for (int j = 0; j < n; j++) m[i, j] = row[j];
        }
        double scale = 0;
        foreach (var v in m) scale = Math.Max(scale, Math.Abs(v));
        for (int i = 0; i < n; i++)
            for (int j = i + 1; j < n; j++)
                if (Math.Abs(m[i, j] - m[j, i]) > 1e-12 * scale)
                    throw new ArgumentException(FormattableString.Invariant($"hessian is not symmetric: entry ({i}, {j}) = {m[i, j]} but ({j}, {i}) = {m[j, i]}"));
        return m;
    }

    /// <summary>The matrix A (p×p).</summary>
    public Tensor A { get; }
    /// <summary>Eigenvalues of A, descending.</summary>
    public IReadOnlyList<double> Spectrum { get; } = [];
    public IReadOnlyList<ModelParameter> Parameters { get; }
    public Dataset Train { get; } = new(null, null, 1);
    public Dataset? Test => null;

    // Explicit, process-lifetime Scalar: a double converted implicitly for a native call can be finalized during it.
    private static readonly Scalar Half = 0.5.ToScalar();

    public Tensor Loss(Dataset batch) => _theta.dot(A.mv(_theta)).mul(Half);
    public double? Accuracy(Dataset batch) => null;

    public void Dispose() { _theta.Dispose(); A.Dispose(); }
}
