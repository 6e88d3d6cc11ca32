using Harness.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Models;

/// <summary>A tiny pre-LN transformer encoder with explicit attention (matmul and softmax, never a fused kernel, so
/// double backward works) on a synthetic sequence task (<see cref="SequenceTasks"/>): token + learned position
/// embeddings, <c>layers</c> blocks x ← x + W_o·MHA(LN(x)), x ← x + MLP(LN(x)) (GELU, with biases), a final LN and an
/// untied linear read-out per position. Attention projections W_q, W_k, W_v, W_o have no bias. Linear weights
/// N(0, 1/fan_in), embeddings N(0, 1), norms gain 1 bias 0. Loss per target token, mean over all tokens.</summary>
public sealed class TinyTransformerPlugin : IModelPlugin
{
    public string Name => "transformer";
    public string Description => "Tiny transformer encoder with explicit softmax attention on a synthetic sequence task (reverse, sort, prefix_sum).";
    public IReadOnlyList<HyperparameterSpec> Hyperparameters { get; } =
    [
        HyperparameterSpec.Choice("task", SequenceTasks.Reverse, "synthetic task generated from data_seed", SequenceTasks.All),
        HyperparameterSpec.Integer("vocab", 10, "token values 0..vocab−1", min: 2, max: 1024),
        HyperparameterSpec.Integer("seq_len", 8, "tokens per sequence", min: 1, max: 512),
        HyperparameterSpec.Integer("d_model", 32, "embedding width", min: 1, max: 4096),
        HyperparameterSpec.Integer("heads", 2, "attention heads (must divide d_model)", min: 1, max: 64),
        HyperparameterSpec.Integer("layers", 2, "transformer blocks", min: 1, max: 48),
        HyperparameterSpec.Integer("mlp_width", 64, "hidden units of each block's MLP", min: 1, max: 16384),
        HyperparameterSpec.Choice("norm", "layer", "layer (pre-LN) or none", "layer", "none"),
        HyperparameterSpec.Boolean("causal", false, "mask attention to earlier positions"),
        HyperparameterSpec.Integer("train_size", 1000, "training sequences (generated from data_seed)", min: 1, max: 10_000_000),
        HyperparameterSpec.Integer("test_size", 500, "test sequences (another stream of data_seed; 0 = none)", min: 0, max: 10_000_000),
        HyperparameterSpec.Choice("loss", Losses.CrossEntropy, "cross_entropy or mse on one-hot targets, per token", Losses.CrossEntropy, Losses.Mse),
    ];

    public IModel Create(ModelContext context) => new TinyTransformer(context);
}

public sealed class TinyTransformer : IModel
{
    private sealed record LayerNorm(Tensor Gain, Tensor Bias);
    private sealed record Block(LayerNorm? Ln1, Tensor Wq, Tensor Wk, Tensor Wv, Tensor Wo, LayerNorm? Ln2, Tensor W1, Tensor B1, Tensor W2, Tensor B2);

    private readonly Tensor _tokens, _positions, _outW, _outB;
    private readonly List<Block> _blocks = new();
    private readonly LayerNorm? _finalLn;
    private readonly int _heads, _vocab;
    private readonly bool _causal;
    private readonly string _loss;
    // Explicit, process-lifetime Scalar: a double converted implicitly for a native call can be finalized during it.
    private static readonly Scalar NegativeInfinity = double.NegativeInfinity.ToScalar(), One = 1.ToScalar();

    public TinyTransformer(ModelContext ctx)
    {
        var hp = ctx.Hyperparameters;
        _vocab = (int)hp.Integer("vocab");
        int len = (int)hp.Integer("seq_len"), d = (int)hp.Integer("d_model"), mlp = (int)hp.Integer("mlp_width");
        _heads = (int)hp.Integer("heads");
        if (d % _heads != 0) throw new ArgumentException($"heads ({_heads}) must divide d_model ({d})");
        _causal = hp.Boolean("causal");
        _loss = hp.Choice("loss");
        bool norm = hp.Choice("norm") == "layer";
        string task = hp.Choice("task");

        var f = new ParameterFactory(ctx);
        LayerNorm? Ln(string name) => norm ? new LayerNorm(f.Constant($"{name}.gain", [d], 1), f.Constant($"{name}.bias", [d], 0)) : null;
        _tokens = f.Normal("embed.tokens", [_vocab, d], 1.0, layerWeight: true);
        _positions = f.Normal("embed.positions", [len, d], 1.0, layerWeight: true);
        for (int l = 0; l < (int)hp.Integer("layers"); l++)
        {
            string n = $"block{l + 1}";
            var ln1 = Ln($"{n}.ln1");
            var wq = f.FanIn($"{n}.attn.q.weight", [d, d]);
            var wk = f.FanIn($"{n}.attn.k.weight", [d, d]);
            var wv = f.FanIn($"{n}.attn.v.weight", [d, d]);
            var wo = f.FanIn($"{n}.attn.o.weight", [d, d]);
            var ln2 = Ln($"{n}.ln2");
            var w1 = f.FanIn($"{n}.mlp.fc1.weight", [mlp, d]);
            var b1 = f.Constant($"{n}.mlp.fc1.bias", [mlp], 0);
            var w2 = f.FanIn($"{n}.mlp.fc2.weight", [d, mlp]);
            var b2 = f.Constant($"{n}.mlp.fc2.bias", [d], 0);
            _blocks.Add(new Block(ln1, wq, wk, wv, wo, ln2, w1, b1, w2, b2));
        }
        _finalLn = Ln("final.ln");
        _outW = f.FanIn("out.weight", [_vocab, d]);
        _outB = f.Constant("out.bias", [_vocab], 0);
        Parameters = f.Parameters;

        Train = Make(task, (int)hp.Integer("train_size"), len, ctx.DataSeed * 2, ctx);
        int testSize = (int)hp.Integer("test_size");
        Test = testSize > 0 ? Make(task, testSize, len, ctx.DataSeed * 2 + 1, ctx) : null;
    }

    private Dataset Make(string task, int count, int len, long seed, ModelContext ctx)
    {
        var (x, y) = SequenceTasks.Generate(task, count, len, _vocab, seed);
        var xt = tensor(x, [count, len], dtype: ScalarType.Int64).to(ctx.Device).DetachFromDisposeScope();
        var yt = tensor(y, [count, len], dtype: ScalarType.Int64).to(ctx.Device).DetachFromDisposeScope();
        return new Dataset(xt, yt, count);
    }

    public IReadOnlyList<ModelParameter> Parameters { get; }
    public Dataset Train { get; }
    public Dataset? Test { get; }

    private static Tensor Norm(Tensor x, LayerNorm? ln) => ln is null ? x : Norms.Layer(x, ln.Gain, ln.Bias);

    /// <summary>Logits N×T×vocab.</summary>
    private Tensor Forward(Tensor tokens)
    {
        long n = tokens.shape[0], t = tokens.shape[1], d = _tokens.shape[1], dh = d / _heads;
        var x = _tokens.index_select(0, tokens.reshape(-1)).view(n, t, d).add(_positions.narrow(0, 0, t), One);
        Tensor? mask = _causal ? ones(t, t, dtype: ScalarType.Bool, device: tokens.device).triu(1) : null;
        foreach (var b in _blocks)
        {
            var h = Norm(x, b.Ln1);
            Tensor Heads(Tensor w) => nn.functional.linear(h, w).view(n, t, _heads, dh).transpose(1, 2);   // N×H×T×dh
            var q = Heads(b.Wq); var k = Heads(b.Wk); var v = Heads(b.Wv);
            using var scale = Math.Sqrt(dh).ToScalar();
            var scores = q.matmul(k.transpose(2, 3)).div(scale);
            if (mask is not null) scores = scores.masked_fill(mask, NegativeInfinity);
            var attn = scores.softmax(-1).matmul(v).transpose(1, 2).reshape(n, t, d);
            x = x.add(nn.functional.linear(attn, b.Wo), One);
            h = Norm(x, b.Ln2);
            x = x.add(nn.functional.linear(nn.functional.gelu(nn.functional.linear(h, b.W1, b.B1)), b.W2, b.B2), One);
        }
        return nn.functional.linear(Norm(x, _finalLn), _outW, _outB);
    }

    public Tensor Loss(Dataset batch)
    {
        var logits = Forward(batch.Inputs!);
        return Losses.Classification(_loss, logits.reshape(-1, _vocab), batch.Targets!.reshape(-1), _vocab);
    }

    /// <summary>Fraction of correctly predicted target tokens.</summary>
    public double? Accuracy(Dataset batch)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        return Losses.Accuracy(Forward(batch.Inputs!).reshape(-1, _vocab), batch.Targets!.reshape(-1));
    }

    public void Dispose()
    {
        foreach (var p in Parameters) p.Tensor.Dispose();
        Train.Inputs?.Dispose(); Train.Targets?.Dispose();
        Test?.Inputs?.Dispose(); Test?.Targets?.Dispose();
    }
}
