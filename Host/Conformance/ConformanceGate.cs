using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Harness.Abstractions;
using Harness.Host.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Host.Conformance;

/// <summary>One check of the gate: its name, whether it passed, and what was seen.</summary>
public sealed record ConformanceCheck(string Name, bool Passed, string Detail);

/// <summary>The gate's verdict on one optimizer plugin.</summary>
public sealed record ConformanceReport(string Plugin, int GateVersion, IReadOnlyList<ConformanceCheck> Checks)
{
    public bool Passed => Checks.Count == ConformanceGate.CheckNames.Count && Checks.All(c => c.Passed);
    /// <summary>The first failed check (the reason the plugin is rejected), or null.</summary>
    public ConformanceCheck? FirstFailure => Checks.FirstOrDefault(c => !c.Passed);
    public string FailureSummary => FirstFailure is { } f ? $"{f.Name}: {f.Detail}" : "passed";
}

/// <summary>
/// The conformance gate for optimizer plugins (<c>harness verify</c>, and automatically when a plugin file is first
/// loaded). Checks, in order, at the plugin's default hyperparameters:
/// <list type="number">
/// <item><c>schema</c>: lower_snake_case unique names, a description, every default inside its own range;</item>
/// <item><c>create</c>: the plugin creates an optimizer from its defaults;</item>
/// <item><c>threshold</c>: momentum kind defined, coefficient in [0, 1); with a threshold (closed form or declared
/// recurrence): finite and positive before and after steps, falling when the learning rate doubles (it follows η_t),
/// and for a recurrence the optimizer's own number agrees with the numerical one; with none declared: the first step
/// is not linear in the gradient (else the update has a linear threshold and must declare it);</item>
/// <item><c>preconditioner</c>: P is null or one finite positive tensor per parameter, with the parameter's shape;</item>
/// <item><c>quadratic</c>: on a rotated convex quadratic (p = 17, two tensors), f falls to ≤ ½ f_0 within 500 steps,
/// at the default learning rate or, failing that, at one of the gate's own (default × 10^k, k = 1, 2, 3, −1, −2);</item>
/// <item><c>rosenbrock</c>: on 0.1·Rosenbrock from (−1.2, 1), f falls to ≤ ½ f_0 within 500 steps (same search);</item>
/// <item><c>threshold_boundary</c>: the declared threshold is the real one: on f = ½λθ² (1-D) a bisection over the
/// learning rate finds the boundary between convergence and divergence within 2% of it, and runs at 0.98× and 1.02×
/// converge and diverge (preconditioned methods: against λ/P, under the plugin's
/// <see cref="IOptimizerPlugin.ThresholdCheckSettings"/>, e.g. a frozen P);</item>
/// <item><c>determinism</c>: two runs with the same seed (torch.manual_seed before each) are bit-identical;</item>
/// <item><c>state_round_trip</c>: export mid-run, through JSON, import into a fresh instance on a copy of θ: the
/// re-exported state equals the original and the next steps are bit-identical to the original run's.</item>
/// </list>
/// A check that throws fails with the exception's message. The first failed check is the reason for rejection.
/// </summary>
public static partial class ConformanceGate
{
    /// <summary>Bumped whenever the checks change (invalidates cached verdicts).</summary>
    public const int Version = 3;
    public const int DecreaseSteps = 500;
    public const double DecreaseFactor = 0.5;
    private const long Seed = 20240611;

    public static readonly IReadOnlyList<string> CheckNames =
        ["schema", "create", "threshold", "preconditioner", "quadratic", "rosenbrock", "threshold_boundary", "determinism", "state_round_trip"];

    [GeneratedRegex("^[a-z][a-z0-9]*(_[a-z0-9]+)*$")]
    private static partial Regex SnakeCase();

    private sealed class CheckFailed(string message) : Exception(message);

    private static void Require(bool condition, string message)
    {
        if (!condition) throw new CheckFailed(message);
    }

    public static ConformanceReport Verify(IOptimizerPlugin plugin)
    {
        var checks = new List<ConformanceCheck>();
        string name = SafeName(plugin);
        var rng = torch.random.get_rng_state();
        try
        {
            bool Run(string check, Func<string> body)
            {
                try
                {
                    using var scope = NewDisposeScope();
                    checks.Add(new ConformanceCheck(check, true, body()));
                    return true;
                }
                catch (Exception e)
                {
                    var inner = e is System.Reflection.TargetInvocationException { InnerException: { } ie } ? ie : e;
                    string detail = inner is CheckFailed ? inner.Message : $"{inner.GetType().Name}: {inner.Message.Split('\n')[0].Trim()}";
                    checks.Add(new ConformanceCheck(check, false, detail));
                    return false;
                }
            }

            if (!Run("schema", () => Schema(plugin))) return new ConformanceReport(name, Version, checks);
            HyperparameterValues? hp = null;
            if (!Run("create", () =>
                {
                    hp = new HyperparameterValues(plugin.Hyperparameters);
                    using var q = GateQuadratic.Create(Seed);
                    using var o = plugin.Create(q.Parameters, hp);
                    return $"created with defaults {Format(hp)}";
                }))
                return new ConformanceReport(name, Version, checks);
            Run("threshold", () => Threshold(plugin, hp!));
            Run("preconditioner", () => Preconditioner(plugin, hp!));
            Run("quadratic", () => Decrease(plugin, hp!, () => GateQuadratic.Create(Seed), "convex quadratic"));
            Run("rosenbrock", () => Decrease(plugin, hp!, () => new GateRosenbrock(), "0.1·Rosenbrock"));
            Run("threshold_boundary", () => ThresholdBoundaryCheck(plugin, hp!));
            Run("determinism", () => Determinism(plugin, hp!));
            Run("state_round_trip", () => RoundTrip(plugin, hp!));
            return new ConformanceReport(name, Version, checks);
        }
        finally
        {
            torch.random.set_rng_state(rng);
            rng.Dispose();
        }
    }

    private static string SafeName(IOptimizerPlugin plugin)
    {
        try { return plugin.Name; } catch { return plugin.GetType().FullName ?? "?"; }
    }

    private static string Format(HyperparameterValues hp) =>
        "{" + string.Join(", ", hp.All.Select(kv => $"{kv.Key}={Matrix.RunCell.Format(kv.Value)}")) + "}";

    private static string Schema(IOptimizerPlugin plugin)
    {
        Require(SnakeCase().IsMatch(plugin.Name ?? ""), $"plugin name '{plugin.Name}' is not lower_snake_case");
        Require(!string.IsNullOrWhiteSpace(plugin.Description), "the description is empty");
        var schema = plugin.Hyperparameters;
        Require(schema is not null, "the hyperparameter schema is null");
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var spec in schema!)
        {
            Require(SnakeCase().IsMatch(spec.Name ?? ""), $"hyperparameter name '{spec.Name}' is not lower_snake_case");
            Require(seen.Add(spec.Name!), $"hyperparameter '{spec.Name}' is declared twice");
            Require(!string.IsNullOrWhiteSpace(spec.Doc), $"hyperparameter '{spec.Name}' has no doc");
            Require(spec.Coerce(spec.Default, out var err) is not null, $"default of '{spec.Name}' does not fit its own spec: {err}");
            if (spec.Kind == HyperparameterKind.Choice)
                Require(spec.Choices is { Count: > 0 }, $"choice hyperparameter '{spec.Name}' lists no choices");
            if (spec is { Min: { } lo, Max: { } hi })
                Require(lo <= hi, $"hyperparameter '{spec.Name}' has min {lo} > max {hi}");
        }
        return $"{schema.Count} hyperparameter(s): {string.Join(", ", schema.Select(s => s.Name))}";
    }

    private static string Threshold(IOptimizerPlugin plugin, HyperparameterValues hp)
    {
        using var q = GateQuadratic.Create(Seed);
        using var opt = plugin.Create(q.Parameters, hp);
        Require(Enum.IsDefined(opt.Momentum), $"momentum kind {(int)opt.Momentum} is not a defined MomentumKind");
        Require(Enum.IsDefined(opt.ThresholdRule), $"threshold rule {(int)opt.ThresholdRule} is not a defined ThresholdRule");
        double beta = opt.MomentumCoefficient;
        Require(double.IsFinite(beta) && beta >= 0 && beta < 1, $"momentum coefficient {beta} is outside [0, 1)");
        double lr = opt.LearningRate;
        Require(double.IsFinite(lr) && lr > 0, $"learning rate {lr} is not finite and positive");
        if (opt.ThresholdRule == ThresholdRule.None) return NoThreshold(plugin, hp, opt);
        if (opt.ThresholdRule == ThresholdRule.ClosedForm)
            Require(opt.Momentum != MomentumKind.Other || double.IsFinite(opt.StabilityThreshold),
                "momentum kind Other with a closed-form rule needs a threshold of the optimizer's own");
        double t0 = Resolved(opt, "at step 0");
        for (int s = 0; s < 5; s++) { q.Invalidate(); opt.Step(q); }
        double t5 = Resolved(opt, "after 5 steps");
        lr = opt.LearningRate;
        opt.LearningRate = 2 * lr;
        string follows = "";
        if (opt.LearningRate == 2 * lr)
        {
            double t2 = Resolved(opt, "at 2η");
            Require(t2 < t5, $"threshold does not follow η: {t5:G6} at η = {lr:G6} and {t2:G6} at 2η (it must fall as η grows)");
            follows = $", {t2:G6} at 2η";
        }
        opt.LearningRate = lr;
        string rule = opt.ThresholdRule == ThresholdRule.LinearRecurrence
            ? $"linear recurrence ({opt.UpdateMatrix(1)!.GetLength(0)}×{opt.UpdateMatrix(1)!.GetLength(0)}, x* = η·λ* = {LinearRecurrence.CriticalStep(opt):G9})"
            : "closed form";
        return $"{opt.Momentum} β = {beta:G4}, {rule}: threshold {t0:G6} at η = {lr:G4}, {t5:G6} after 5 steps{follows}";
    }

    /// <summary>The host's threshold of the optimizer (finite and positive), checked against the optimizer's own number
    /// when it declares a recurrence.</summary>
    private static double Resolved(IOptimizer opt, string when)
    {
        double? t = StabilityThreshold.Of(opt);
        Require(t is { } v && double.IsFinite(v) && v > 0,
            $"threshold {(t?.ToString("G6", CultureInfo.InvariantCulture) ?? (opt.ThresholdRule == ThresholdRule.LinearRecurrence ? "(none: the declared recurrence is stable up to η·λ = 1e8)" : opt.StabilityThreshold.ToString("G6", CultureInfo.InvariantCulture)))} {when} is not finite and positive");
        if (opt.ThresholdRule == ThresholdRule.LinearRecurrence && double.IsFinite(opt.StabilityThreshold))
            Require(Math.Abs(opt.StabilityThreshold - t!.Value) <= 1e-9 * t.Value,
                $"StabilityThreshold {opt.StabilityThreshold:G12} {when} differs from the threshold of the declared recurrence {t.Value:G12} (return LinearRecurrence.Threshold(this))");
        return t!.Value;
    }

    /// <summary>A "no linear threshold" declaration is checked: on f = ½λθ² from θ = 1, the first step at λ = 1000
    /// must not be 1000× the step at λ = 1 (a linear update would be, and then it has a threshold to declare).</summary>
    private static string NoThreshold(IOptimizerPlugin plugin, HyperparameterValues hp, IOptimizer opt)
    {
        Require(StabilityThreshold.Of(opt) is null, "declares no threshold but StabilityThreshold.Of gave one");
        double FirstStep(double lambda)
        {
            using var line = new GateLine(lambda, 1.0);
            using var o = plugin.Create(line.Parameters, hp);
            line.Invalidate();
            o.Step(line);
            return line.Theta - 1.0;
        }
        double small = FirstStep(1), large = FirstStep(1000);
        Require(small != 0, "declares no threshold, and its first step on ½θ² does not move θ");
        double scale = large / small;
        Require(Math.Abs(scale / 1000 - 1) > 0.01,
            $"declares no linear threshold (ThresholdRule.None), but its first step scales linearly with the gradient (λ × 1000 → step × {scale:G6}); declare its closed form or its recurrence");
        return $"no linear threshold declared ({opt.Momentum} β = {opt.MomentumCoefficient:G4}); first step scales ×{scale:G4} when the gradient scales ×1000: not linear";
    }

    private static string Preconditioner(IOptimizerPlugin plugin, HyperparameterValues hp)
    {
        using var q = GateQuadratic.Create(Seed);
        using var opt = plugin.Create(q.Parameters, hp);
        for (int s = 0; s < 5; s++) { q.Invalidate(); opt.Step(q); }
        var p = opt.Preconditioner;
        if (p is null) return "none (unpreconditioned)";
        Require(p.Count == q.Parameters.Count, $"P has {p.Count} tensors, the problem {q.Parameters.Count} parameters");
        double min = double.PositiveInfinity, max = 0;
        for (int i = 0; i < p.Count; i++)
        {
            Require(p[i].shape.SequenceEqual(q.Parameters[i].shape),
                $"P[{i}] has shape [{string.Join(",", p[i].shape)}], the parameter [{string.Join(",", q.Parameters[i].shape)}]");
            var values = OptimizerStateFile.ToDoubles(p[i]);
            Require(values.All(x => double.IsFinite(x) && x > 0), $"P[{i}] has entries that are not finite and positive");
            min = Math.Min(min, values.Min());
            max = Math.Max(max, values.Max());
        }
        return $"{p.Count} tensor(s), entries in [{min:G4}, {max:G4}]";
    }

    private static readonly int[] SearchPowers = [0, 1, 2, 3, -1, -2];

    /// <summary>f must fall to ≤ ½ f0 at the default learning rate, or at the first of the gate's own learning rates
    /// (default × 10^k) that makes it fall: user-facing defaults (e.g. Lion's 1e-4) are not the gate's business.</summary>
    private static string Decrease(IOptimizerPlugin plugin, HyperparameterValues hp, Func<GateObjective> make, string what)
    {
        string? firstFailure = null;
        foreach (int k in SearchPowers)
        {
            using var problem = make();
            using var opt = plugin.Create(problem.Parameters, hp);
            double lr0 = opt.LearningRate, lr = lr0 * Math.Pow(10, k);
            if (k != 0)
            {
                opt.LearningRate = lr;
                if (opt.LearningRate != lr) break;   // the optimizer does not let the gate set η
            }
            torch.manual_seed(Seed);
            double f0 = problem.Loss;
            string? failure = null;
            for (int s = 0; s < DecreaseSteps && failure is null; s++)
            {
                using var scope = NewDisposeScope();
                problem.Invalidate();
                double f = opt.Step(problem).Loss;
                if (!double.IsFinite(f)) failure = $"loss became {f} at step {s}";
            }
            problem.Invalidate();
            double fT = problem.Loss;
            if (failure is null && !(double.IsFinite(fT) && fT <= DecreaseFactor * f0))
                failure = $"f went from {f0:G6} to {fT:G6} in {DecreaseSteps} steps (needs ≤ {DecreaseFactor}·f0)";
            if (failure is null)
                return $"{what}: f {f0:G4} → {fT:G4} in {DecreaseSteps} steps at η = {lr:G4}{(k == 0 ? " (default)" : $" (default {lr0:G4} × 10^{k}: gate's learning-rate search)")}";
            firstFailure ??= $"{what}: at the default η = {lr0:G6}: {failure}";
        }
        throw new CheckFailed(firstFailure + $"; no η = default × 10^k (k in {string.Join(", ", SearchPowers.Skip(1))}) did better");
    }

    /// <summary>Runs <paramref name="steps"/> steps and returns θ's bits after each and the losses' bits.</summary>
    private static List<long[]> Trajectory(IOptimizer opt, GateObjective problem, int steps, long seed)
    {
        torch.manual_seed(seed);
        var result = new List<long[]>();
        for (int s = 0; s < steps; s++)
        {
            using var scope = NewDisposeScope();
            problem.Invalidate();
            double loss = opt.Step(problem).Loss;
            result.Add([.. problem.Bits(), BitConverter.DoubleToInt64Bits(loss)]);
        }
        return result;
    }

    private static int FirstDifference(List<long[]> a, List<long[]> b)
    {
        for (int s = 0; s < Math.Min(a.Count, b.Count); s++)
            if (!a[s].SequenceEqual(b[s])) return s;
        return a.Count == b.Count ? -1 : Math.Min(a.Count, b.Count);
    }

    private static string Determinism(IOptimizerPlugin plugin, HyperparameterValues hp)
    {
        List<long[]> Once()
        {
            using var q = GateQuadratic.Create(Seed);
            torch.manual_seed(Seed);
            using var opt = plugin.Create(q.Parameters, hp);
            return Trajectory(opt, q, 50, Seed + 1);
        }
        var a = Once();
        var b = Once();
        int d = FirstDifference(a, b);
        Require(d < 0, $"two runs with the same seed differ from step {d + 1} on (θ or loss not bit-identical)");
        return "50 steps bit-identical across two runs";
    }

    private static string RoundTrip(IOptimizerPlugin plugin, HyperparameterValues hp)
    {
        const int before = 6, after = 6;
        using var q = GateQuadratic.Create(Seed);
        torch.manual_seed(Seed);
        using var opt = plugin.Create(q.Parameters, hp);
        Trajectory(opt, q, before, Seed + 1);
        var exported = opt.ExportState();
        string json = JsonSerializer.Serialize(exported, OptimizerStateFile.Json);
        var snapshot = q.Parameters.Select(p => p.detach().clone()).ToList();
        var original = Trajectory(opt, q, after, Seed + 2);

        using var copy = new GateCopy(snapshot);
        using var fresh = plugin.Create(copy.Parameters, hp);
        fresh.LearningRate = exported.Scalars.TryGetValue("lr", out var lr) ? lr : fresh.LearningRate;
        var imported = JsonSerializer.Deserialize<OptimizerState>(json, OptimizerStateFile.Json)
            ?? throw new CheckFailed("the exported state does not survive JSON");
        fresh.ImportState(imported);
        string reexported = JsonSerializer.Serialize(fresh.ExportState(), OptimizerStateFile.Json);
        Require(SameState(json, reexported), "the state exported right after ImportState differs from the state that was imported");
        var resumed = Trajectory(fresh, copy, after, Seed + 2);
        int d = FirstDifference(original, resumed);
        Require(d < 0, $"after export at step {before} and import into a fresh instance, step {before + d + 1} differs from the uninterrupted run (state incomplete?)");
        int buffers = exported.Buffers.Count;
        return $"exported at step {before} ({exported.Scalars.Count} scalar(s), {buffers} buffer(s), {json.Length} bytes of JSON); {after} resumed steps bit-identical";
    }

    /// <summary>Equal as JSON objects regardless of key order.</summary>
    private static bool SameState(string a, string b)
    {
        var x = JsonSerializer.Deserialize<OptimizerState>(a, OptimizerStateFile.Json)!;
        var y = JsonSerializer.Deserialize<OptimizerState>(b, OptimizerStateFile.Json)!;
        if (x.Scalars.Count != y.Scalars.Count || x.Buffers.Count != y.Buffers.Count) return false;
        foreach (var (k, v) in x.Scalars)
            if (!y.Scalars.TryGetValue(k, out var w) || BitConverter.DoubleToInt64Bits(v) != BitConverter.DoubleToInt64Bits(w)) return false;
        foreach (var (k, v) in x.Buffers)
        {
            if (!y.Buffers.TryGetValue(k, out var w) || v.Length != w.Length) return false;
            for (int i = 0; i < v.Length; i++)
            {
                if (v[i] is null != w[i] is null) return false;
                if (v[i] is { } va && !va.Select(BitConverter.DoubleToInt64Bits).SequenceEqual(w[i]!.Select(BitConverter.DoubleToInt64Bits))) return false;
            }
        }
        return true;
    }

    /// <summary>The quadratic at a given θ (for the resumed half of the round trip).</summary>
    private sealed class GateCopy : GateObjective
    {
        private readonly GateQuadratic _q = GateQuadratic.Create(Seed);
        public GateCopy(IEnumerable<Tensor> theta) : base(theta) { }
        protected override (double, Tensor) LossAndGradient(Tensor x) => _q.LossAndGradientOf(x);
        protected override Tensor HessianAt(Tensor x) => _q.HessianOf(x);
        public override void Dispose() { base.Dispose(); _q.Dispose(); }
    }

    internal static string Describe(double x) => x.ToString("G6", CultureInfo.InvariantCulture);
}
