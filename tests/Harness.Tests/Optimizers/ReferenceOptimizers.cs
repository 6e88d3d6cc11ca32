namespace Harness.Tests.Optimizers;

using Math = System.Math;

/// <summary>
/// Hand-written float64 references of every built-in optimizer: plain loops over double[] per parameter tensor,
/// written from the algorithms' definitions (PyTorch's documented update rules and docs/science.md §2), sharing no code with
/// the TorchSharp implementations. <see cref="P"/> is the preconditioner of the most recent update (null for
/// unpreconditioned methods) and <see cref="Threshold"/> the stability threshold at the current η, both written out
/// by hand here.
/// </summary>
public abstract class RefOptimizer
{
    protected readonly Dictionary<string, object> Hp;
    protected readonly long[][] Shapes;
    public double Lr;
    public double[][]? P { get; protected set; }
    public long T { get; private set; }

    protected RefOptimizer(Dictionary<string, object> hp, long[][] shapes)
    {
        Hp = hp;
        Shapes = shapes;
        Lr = R("lr");
    }

    protected double R(string name, double fallback = 0) => Hp.TryGetValue(name, out var v) ? Convert.ToDouble(v) : fallback;
    protected bool B(string name, bool fallback = false) => Hp.TryGetValue(name, out var v) ? (bool)v : fallback;
    protected static double[][] Zeros(double[][] like) => like.Select(a => new double[a.Length]).ToArray();

    public abstract double Threshold { get; }

    /// <summary>One update of θ in place with the gradient g (weight decay applied here first).</summary>
    public void Step(double[][] theta, double[][] grad)
    {
        T++;
        double wd = R("weight_decay");
        bool decoupled = B("decoupled_weight_decay", DefaultDecoupled);
        var g = grad.Select(a => (double[])a.Clone()).ToArray();
        for (int k = 0; k < theta.Length; k++)
            for (int i = 0; i < theta[k].Length; i++)
            {
                if (wd == 0) continue;
                if (decoupled) theta[k][i] *= 1 - Lr * wd;
                else g[k][i] += wd * theta[k][i];
            }
        Update(theta, g, T);
    }

    protected virtual bool DefaultDecoupled => false;
    protected abstract void Update(double[][] theta, double[][] g, long t);

    // Thresholds of docs/science.md §2, written out.
    protected double Gd => 2 / Lr;
    protected double Hb(double b) => (2 + 2 * b) / Lr;
    protected double EmaHb(double b) => (2 + 2 * b) / (Lr * (1 - b));
    protected double Nest(double b) => (2 + 2 * b) / (Lr * (1 + 2 * b));
    protected double EmaNest(double b) => (2 + 2 * b) / (Lr * (1 - b) * (1 + 2 * b));
}

/// <summary>GD, heavy ball, EMA heavy ball, Nesterov, EMA Nesterov, optionally with a fixed P.</summary>
public sealed class RefMomentum(string kind, Dictionary<string, object> hp, long[][] shapes, double[][]? fixedP) : RefOptimizer(hp, shapes)
{
    private double[][]? _m;
    private double Beta => kind == "gd" ? 0 : R("momentum", 0.9);

    public override double Threshold => kind switch
    {
        "gd" => Gd, "heavy_ball" => Hb(Beta), "ema_heavy_ball" => EmaHb(Beta), "nesterov" => Nest(Beta), "ema_nesterov" => EmaNest(Beta),
        _ => throw new ArgumentException(kind),
    };

    protected override void Update(double[][] theta, double[][] g, long t)
    {
        _m ??= Zeros(theta);
        P = fixedP;
        double b = Beta;
        for (int k = 0; k < theta.Length; k++)
            for (int i = 0; i < theta[k].Length; i++)
            {
                double gi = g[k][i], d;
                switch (kind)
                {
                    case "gd": d = gi; break;
                    case "heavy_ball": _m[k][i] = b * _m[k][i] + gi; d = _m[k][i]; break;
                    case "ema_heavy_ball": _m[k][i] = b * _m[k][i] + (1 - b) * gi; d = _m[k][i]; break;
                    case "nesterov": _m[k][i] = b * _m[k][i] + gi; d = gi + b * _m[k][i]; break;
                    case "ema_nesterov": _m[k][i] = b * _m[k][i] + (1 - b) * gi; d = b * _m[k][i] + (1 - b) * gi; break;
                    default: throw new ArgumentException(kind);
                }
                double p = fixedP is null ? 1 : fixedP[k][i];
                theta[k][i] -= Lr * d / p;
            }
    }
}

/// <summary>Common freeze_at_step logic of the adaptive references.</summary>
public abstract class RefAdaptive(Dictionary<string, object> hp, long[][] shapes) : RefOptimizer(hp, shapes)
{
    private double[][]? _frozen;
    private long FreezeAt => Hp.TryGetValue("freeze_at_step", out var v) ? Convert.ToInt64(v) : 0;

    /// <summary>P for update t: frozen, or statistics updated then P computed.</summary>
    protected double[][] Precondition(double[][] g, long t)
    {
        if (FreezeAt > 0 && t > FreezeAt) return P = _frozen!;
        UpdateStatistics(g, t);
        P = ComputeP(t);
        if (FreezeAt > 0 && t == FreezeAt) _frozen = P.Select(a => (double[])a.Clone()).ToArray();
        return P;
    }

    protected abstract void UpdateStatistics(double[][] g, long t);
    protected abstract double[][] ComputeP(long t);

    protected static double Root(double x, double eps, bool inside, double e = 0.5) =>
        inside ? Math.Pow(x + eps, e) : Math.Pow(x, e) + eps;
}

/// <summary>Adam / AdamW / AMSGrad / Padam: P = c1 (root(ν/c2) + ε), θ ← θ − η m/P (PyTorch's Adam written with P).</summary>
public sealed class RefAdam(Dictionary<string, object> hp, long[][] shapes, bool amsgrad, double exponent, bool decoupledDefault) : RefAdaptive(hp, shapes)
{
    private double[][]? _m, _v, _vmax;
    private double B1 => R("beta1", 0.9);
    private double B2 => R("beta2", 0.999);
    protected override bool DefaultDecoupled => decoupledDefault;
    public override double Threshold => EmaHb(B1);

    protected override void Update(double[][] theta, double[][] g, long t)
    {
        _m ??= Zeros(theta); _v ??= Zeros(theta); _vmax ??= Zeros(theta);
        for (int k = 0; k < theta.Length; k++)
            for (int i = 0; i < theta[k].Length; i++)
                _m[k][i] = B1 * _m[k][i] + (1 - B1) * g[k][i];
        var p = Precondition(g, t);
        for (int k = 0; k < theta.Length; k++)
            for (int i = 0; i < theta[k].Length; i++)
                theta[k][i] -= Lr * _m[k][i] / p[k][i];
    }

    protected override void UpdateStatistics(double[][] g, long t)
    {
        for (int k = 0; k < g.Length; k++)
            for (int i = 0; i < g[k].Length; i++)
            {
                _v![k][i] = B2 * _v[k][i] + (1 - B2) * g[k][i] * g[k][i];
                _vmax![k][i] = Math.Max(_vmax[k][i], _v[k][i]);
            }
    }

    protected override double[][] ComputeP(long t)
    {
        bool bc = B("bias_correction", true), inside = B("eps_inside_sqrt");
        double c1 = bc ? 1 - Math.Pow(B1, t) : 1, c2 = bc ? 1 - Math.Pow(B2, t) : 1, eps = R("eps", 1e-8);
        var v = amsgrad ? _vmax! : _v!;
        return v.Select(a => a.Select(x => c1 * Root(x / c2, eps, inside, exponent)).ToArray()).ToArray();
    }
}

/// <summary>RMSProp (PyTorch RMSprop, plus bias correction, ε-inside and initial second moment ν0 options).</summary>
public sealed class RefRmsProp(Dictionary<string, object> hp, long[][] shapes) : RefAdaptive(hp, shapes)
{
    private double[][]? _v, _ga, _buf;
    private double A => R("beta2", 0.99);
    private double Mu => R("momentum");
    public override double Threshold => Mu > 0 ? Hb(Mu) : Gd;

    protected override void Update(double[][] theta, double[][] g, long t)
    {
        _v ??= theta.Select(a => Enumerable.Repeat(R("initial_square_avg"), a.Length).ToArray()).ToArray();
        _ga ??= Zeros(theta); _buf ??= Zeros(theta);
        var p = Precondition(g, t);
        for (int k = 0; k < theta.Length; k++)
            for (int i = 0; i < theta[k].Length; i++)
            {
                if (Mu > 0) { _buf[k][i] = Mu * _buf[k][i] + g[k][i] / p[k][i]; theta[k][i] -= Lr * _buf[k][i]; }
                else theta[k][i] -= Lr * g[k][i] / p[k][i];
            }
    }

    protected override void UpdateStatistics(double[][] g, long t)
    {
        for (int k = 0; k < g.Length; k++)
            for (int i = 0; i < g[k].Length; i++)
            {
                _v![k][i] = A * _v[k][i] + (1 - A) * g[k][i] * g[k][i];
                _ga![k][i] = A * _ga[k][i] + (1 - A) * g[k][i];
            }
    }

    protected override double[][] ComputeP(long t)
    {
        bool centered = B("centered"), bc = B("bias_correction"), inside = B("eps_inside_sqrt");
        double c2 = bc ? 1 - Math.Pow(A, t) : 1, eps = R("eps", 1e-8);
        return _v!.Select((a, k) => a.Select((x, i) =>
        {
            double var = x / c2 - (centered ? (_ga![k][i] / c2) * (_ga[k][i] / c2) : 0);
            return Root(var, eps, inside);
        }).ToArray()).ToArray();
    }
}

/// <summary>Adagrad (PyTorch): s ← s + g², θ ← θ − η/(1 + (t−1) lr_decay) · g/(sqrt(s) + ε).</summary>
public sealed class RefAdagrad(Dictionary<string, object> hp, long[][] shapes) : RefAdaptive(hp, shapes)
{
    private double[][]? _s;
    public override double Threshold => Gd;

    protected override void Update(double[][] theta, double[][] g, long t)
    {
        _s ??= theta.Select(a => Enumerable.Repeat(R("initial_accumulator_value"), a.Length).ToArray()).ToArray();
        var p = Precondition(g, t);
        for (int k = 0; k < theta.Length; k++)
            for (int i = 0; i < theta[k].Length; i++)
                theta[k][i] -= Lr * g[k][i] / p[k][i];
    }

    protected override void UpdateStatistics(double[][] g, long t)
    {
        for (int k = 0; k < g.Length; k++)
            for (int i = 0; i < g[k].Length; i++) _s![k][i] += g[k][i] * g[k][i];
    }

    protected override double[][] ComputeP(long t)
    {
        double decay = 1 + (t - 1) * R("lr_decay"), eps = R("eps", 1e-10);
        bool inside = B("eps_inside_sqrt");
        return _s!.Select(a => a.Select(x => decay * Root(x, eps, inside)).ToArray()).ToArray();
    }
}

/// <summary>Nadam (PyTorch NAdam, plus constant-μ, no-bias-correction and ε-inside options).</summary>
public sealed class RefNadam(Dictionary<string, object> hp, long[][] shapes) : RefAdaptive(hp, shapes)
{
    private double[][]? _m, _v;
    private double _product = 1, _a, _b;
    private double B1 => R("beta1", 0.9);
    private double B2 => R("beta2", 0.999);
    private double Mu(long t) => B("momentum_schedule", true) ? B1 * (1 - 0.5 * Math.Pow(0.96, t * R("momentum_decay", 0.004))) : B1;

    public override double Threshold => (2 + 2 * B1) / (Lr * (_a * (1 + B1) + _b * (1 - B1)));

    protected override void Update(double[][] theta, double[][] g, long t)
    {
        _m ??= Zeros(theta); _v ??= Zeros(theta);
        double mu = Mu(t), muNext = Mu(t + 1);
        _product *= mu;
        bool bc = B("bias_correction", true);
        _a = bc ? (1 - mu) / (1 - _product) : 1 - mu;
        _b = bc ? muNext / (1 - _product * muNext) : muNext;
        for (int k = 0; k < theta.Length; k++)
            for (int i = 0; i < theta[k].Length; i++)
                _m[k][i] = B1 * _m[k][i] + (1 - B1) * g[k][i];
        var p = Precondition(g, t);
        for (int k = 0; k < theta.Length; k++)
            for (int i = 0; i < theta[k].Length; i++)
                theta[k][i] -= Lr * (_a * g[k][i] + _b * _m[k][i]) / p[k][i];
    }

    protected override void UpdateStatistics(double[][] g, long t)
    {
        for (int k = 0; k < g.Length; k++)
            for (int i = 0; i < g[k].Length; i++) _v![k][i] = B2 * _v[k][i] + (1 - B2) * g[k][i] * g[k][i];
    }

    protected override double[][] ComputeP(long t)
    {
        double c2 = B("bias_correction", true) ? 1 - Math.Pow(B2, t) : 1, eps = R("eps", 1e-8);
        bool inside = B("eps_inside_sqrt");
        return _v!.Select(a => a.Select(x => Root(x / c2, eps, inside)).ToArray()).ToArray();
    }
}

/// <summary>Adafactor with fixed η, no clipping: factored over the last two dimensions (leading ones are a batch).</summary>
public sealed class RefAdafactor(Dictionary<string, object> hp, long[][] shapes) : RefAdaptive(hp, shapes)
{
    private double[][]? _row, _col, _var, _m;
    private double Beta1 => R("beta1");
    private double Eps1 => R("eps") > 0 ? R("eps") : 2.220446049250313e-16;
    protected override bool DefaultDecoupled => true;
    public override double Threshold => Beta1 > 0 ? EmaHb(Beta1) : Gd;

    private (int batch, int rows, int cols) Dims(int k)
    {
        var s = Shapes[k];
        int rows = (int)s[^2], cols = (int)s[^1];
        return ((int)(s.Aggregate(1L, (x, y) => x * y) / (rows * cols)), rows, cols);
    }

    private bool Factored(int k) => Shapes[k].Length >= 2;

    protected override void Update(double[][] theta, double[][] g, long t)
    {
        if (_row is null)
        {
            _row = new double[theta.Length][]; _col = new double[theta.Length][]; _var = Zeros(theta); _m = Zeros(theta);
            for (int k = 0; k < theta.Length; k++)
                if (Factored(k)) { var (b, r, c) = Dims(k); _row[k] = new double[b * r]; _col[k] = new double[b * c]; }
        }
        var p = Precondition(g, t);
        for (int k = 0; k < theta.Length; k++)
            for (int i = 0; i < theta[k].Length; i++)
            {
                if (Beta1 > 0) { _m![k][i] = Beta1 * _m[k][i] + (1 - Beta1) * g[k][i] / p[k][i]; theta[k][i] -= Lr * _m[k][i]; }
                else theta[k][i] -= Lr * g[k][i] / p[k][i];
            }
    }

    protected override void UpdateStatistics(double[][] g, long t)
    {
        double w = Math.Pow(t, R("beta2_decay", -0.8));
        for (int k = 0; k < g.Length; k++)
        {
            if (!Factored(k))
            {
                for (int i = 0; i < g[k].Length; i++) _var![k][i] = (1 - w) * _var[k][i] + w * g[k][i] * g[k][i];
                continue;
            }
            var (batch, rows, cols) = Dims(k);
            for (int b = 0; b < batch; b++)
            {
                for (int r = 0; r < rows; r++)
                {
                    double s = 0;
                    for (int c = 0; c < cols; c++) { double x = g[k][(b * rows + r) * cols + c]; s += x * x; }
                    _row![k][b * rows + r] = (1 - w) * _row[k][b * rows + r] + w * s / cols;
                }
                for (int c = 0; c < cols; c++)
                {
                    double s = 0;
                    for (int r = 0; r < rows; r++) { double x = g[k][(b * rows + r) * cols + c]; s += x * x; }
                    _col![k][b * cols + c] = (1 - w) * _col[k][b * cols + c] + w * s / rows;
                }
            }
        }
    }

    protected override double[][] ComputeP(long t)
    {
        var result = new double[Shapes.Length][];
        double e1 = Eps1;
        for (int k = 0; k < Shapes.Length; k++)
        {
            if (!Factored(k)) { result[k] = _var![k].Select(v => Math.Sqrt(Math.Max(v, e1 * e1))).ToArray(); continue; }
            var (batch, rows, cols) = Dims(k);
            result[k] = new double[batch * rows * cols];
            for (int b = 0; b < batch; b++)
            {
                double mean = 0;
                for (int r = 0; r < rows; r++) mean += _row![k][b * rows + r];
                mean = Math.Max(mean / rows, e1);
                for (int r = 0; r < rows; r++)
                    for (int c = 0; c < cols; c++)
                    {
                        double v = _row![k][b * rows + r] * _col![k][b * cols + c] / mean;
                        result[k][(b * rows + r) * cols + c] = Math.Sqrt(Math.Max(v, e1 * e1));
                    }
            }
        }
        return result;
    }
}

/// <summary>QHM (Ma &amp; Yarats 2019): m ← βm + (1−β)g; θ ← θ − η((1−ν)g + νm). Its threshold, derived by hand from the
/// recurrence z² − (1 + β − x(1−νβ))z + β(1 − x(1−ν)) = 0 (Jury: p(−1) &gt; 0 and |β(1 − x(1−ν))| &lt; 1; p(1) = x(1−β) &gt; 0
/// always): x* = min((2+2β)/(1 + β − 2νβ), (1 + 1/β)/(1−ν)), threshold x*/η.</summary>
public sealed class RefQhm(Dictionary<string, object> hp, long[][] shapes) : RefOptimizer(hp, shapes)
{
    private double[][]? _m;
    private double Beta => R("momentum", 0.999);
    private double Nu => R("nu", 0.7);

    public override double Threshold
    {
        get
        {
            double b = Beta, nu = Nu;
            double flip = (2 + 2 * b) / (1 + b - 2 * nu * b);
            double modulus = nu < 1 && b > 0 ? (1 + 1 / b) / (1 - nu) : double.PositiveInfinity;
            return Math.Min(flip, modulus) / Lr;
        }
    }

    protected override void Update(double[][] theta, double[][] g, long t)
    {
        _m ??= Zeros(theta);
        for (int k = 0; k < theta.Length; k++)
            for (int i = 0; i < theta[k].Length; i++)
            {
                _m[k][i] = Beta * _m[k][i] + (1 - Beta) * g[k][i];
                theta[k][i] -= Lr * ((1 - Nu) * g[k][i] + Nu * _m[k][i]);
            }
    }
}

/// <summary>Lion (Chen et al. 2023): c = β1m + (1−β1)g; θ ← θ − η sign(c); m ← β2m + (1−β2)g (decoupled weight decay by
/// default). No linear threshold: <see cref="Threshold"/> is NaN (the optimizer must report none).</summary>
public sealed class RefLion(Dictionary<string, object> hp, long[][] shapes) : RefOptimizer(hp, shapes)
{
    private double[][]? _m;
    public override double Threshold => double.NaN;
    protected override bool DefaultDecoupled => true;

    protected override void Update(double[][] theta, double[][] g, long t)
    {
        _m ??= Zeros(theta);
        double b1 = R("beta1", 0.9), b2 = R("beta2", 0.99);
        for (int k = 0; k < theta.Length; k++)
            for (int i = 0; i < theta[k].Length; i++)
            {
                double c = b1 * _m[k][i] + (1 - b1) * g[k][i];
                theta[k][i] -= Lr * Math.Sign(c);
                _m[k][i] = b2 * _m[k][i] + (1 - b2) * g[k][i];
            }
    }
}

/// <summary>Signum (Bernstein et al. 2018): m ← βm + (1−β)g; θ ← θ − η sign(m). No linear threshold.</summary>
public sealed class RefSignum(Dictionary<string, object> hp, long[][] shapes) : RefOptimizer(hp, shapes)
{
    private double[][]? _m;
    public override double Threshold => double.NaN;

    protected override void Update(double[][] theta, double[][] g, long t)
    {
        _m ??= Zeros(theta);
        double b = R("momentum", 0.9);
        for (int k = 0; k < theta.Length; k++)
            for (int i = 0; i < theta[k].Length; i++)
            {
                _m[k][i] = b * _m[k][i] + (1 - b) * g[k][i];
                theta[k][i] -= Lr * Math.Sign(_m[k][i]);
            }
    }
}
