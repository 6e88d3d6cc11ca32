using Harness.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Models;

/// <summary>Teacher–student regression with a smooth student. Inputs x ~ N(0, I_d); a fixed teacher
/// y = Σ_k a_k tanh(t_kᵀx) (a_k ~ N(0, 1/teacher_width), t_k ~ N(0, 1/d)) plus optional Gaussian label noise, all drawn
/// with data_seed (the teacher is part of the data). Student: a tanh network d → width (× depth) → 1, weights
/// N(0, 1/fan_in), zero biases, drawn with init_seed. Loss (1/N) Σ ½(f(x_i) − y_i)². Smooth everywhere, so finite
/// differences, HVPs and the spectrum are well defined at every point.</summary>
public sealed class TeacherStudentPlugin : IModelPlugin
{
    public string Name => "teacher_student";
    public string Description => "Regression of a random tanh teacher by a tanh student network (smooth; synthetic data).";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } =
    [
        HyperparameterSpec.Integer("input_dim", 16, "input dimension d", min: 1, max: 100_000),
        HyperparameterSpec.Integer("teacher_width", 4, "hidden units of the teacher", min: 1, max: 100_000),
        HyperparameterSpec.Integer("width", 32, "hidden units per student layer", min: 1, max: 100_000),
        HyperparameterSpec.Integer("depth", 1, "hidden layers of the student", min: 1, max: 16),
        HyperparameterSpec.Real("noise", 0.0, "standard deviation of Gaussian label noise", min: 0),
        HyperparameterSpec.Integer("train_size", 1000, "training examples", min: 1, max: 10_000_000),
        HyperparameterSpec.Integer("test_size", 1000, "test examples (0 = none)", min: 0, max: 10_000_000),
    ];

    public IModel Create(ModelContext context) => new TeacherStudent(context);
}

public sealed class TeacherStudent : IModel
{
    private readonly List<(Tensor w, Tensor b)> _layers = new();

    public TeacherStudent(ModelContext ctx)
    {
        var hp = ctx.Hyperparameters;
        int d = (int)hp.Integer("input_dim"), k = (int)hp.Integer("teacher_width");
        int width = (int)hp.Integer("width"), depth = (int)hp.Integer("depth");
        double noise = hp.Real("noise");
        int nTrain = (int)hp.Integer("train_size"), nTest = (int)hp.Integer("test_size");

        using (var scope = NewDisposeScope())
        {
            var gen = new TorchSharp.torch.Generator((ulong)ctx.DataSeed);
            using var sqrtD = Math.Sqrt(d).ToScalar();
            using var sqrtK = Math.Sqrt(k).ToScalar();
            using var noiseScale = noise.ToScalar();
            var t = randn([k, d], dtype: ScalarType.Float64, generator: gen).div(sqrtD);
            var a = randn([1, k], dtype: ScalarType.Float64, generator: gen).div(sqrtK);
            Dataset Split(int n)
            {
                var x = randn([n, d], dtype: ScalarType.Float64, generator: gen);
                var y = nn.functional.linear(nn.functional.linear(x, t).tanh(), a);
                if (noise > 0) y = y.add(randn([n, 1], dtype: ScalarType.Float64, generator: gen).mul(noiseScale), One);
                return new Dataset(x.to(ctx.DType, ctx.Device).DetachFromDisposeScope(), y.to(ctx.DType, ctx.Device).DetachFromDisposeScope(), n);
            }
            Train = Split(nTrain);
            Test = nTest > 0 ? Split(nTest) : null;
        }

        var f = new ParameterFactory(ctx);
        long fanIn = d;
        for (int l = 0; l <= depth; l++)
        {
            long fanOut = l == depth ? 1 : width;
            _layers.Add((f.FanIn($"layer{l}.weight", [fanOut, fanIn]), f.Constant($"layer{l}.bias", [fanOut], 0)));
            fanIn = fanOut;
        }
        Parameters = f.Parameters;
    }

    public IReadOnlyList<ModelParameter> Parameters { get; }
    public Dataset Train { get; }
    public Dataset? Test { get; }

    private Tensor Forward(Tensor x)
    {
        for (int l = 0; l < _layers.Count; l++)
        {
            x = nn.functional.linear(x, _layers[l].w, _layers[l].b);
            if (l < _layers.Count - 1) x = x.tanh();
        }
        return x;
    }

    // Explicit, process-lifetime Scalar: a double converted implicitly for a native call can be finalized during it.
    private static readonly Scalar Half = 0.5.ToScalar(), One = 1.ToScalar(), Two = 2.ToScalar();

    public Tensor Loss(Dataset batch) => (Forward(batch.Inputs!) - batch.Targets!).pow(Two).sum(1).mean().mul(Half);

    public double? Accuracy(Dataset batch) => null;

    public void Dispose()
    {
        foreach (var p in Parameters) p.Tensor.Dispose();
        Train.Inputs?.Dispose(); Train.Targets?.Dispose();
        Test?.Inputs?.Dispose(); Test?.Targets?.Dispose();
    }
}
