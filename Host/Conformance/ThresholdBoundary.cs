using Harness.Abstractions.Numerics;
using System.Globalization;
using Harness.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Host.Conformance;

/// <summary>
/// The <c>threshold_boundary</c> check: the declared threshold must be where the optimizer really starts to diverge.
/// On one eigen-direction f = ½λθ² (λ = 1, θ0 = 1) the gate runs the optimizer at learning rates of its own choosing
/// and reads, at each, the ratio r = (λ/P)/threshold(η) (P = 1 without a preconditioner). It brackets the boundary
/// between runs that stay bounded and runs that blow up (|θ| &gt; 10³ within 2000 steps), bisects it to 0.2% in η,
/// and requires the boundary within 2% of r = 1; then a run at r = 0.98 must converge (|θ| &lt; 10⁻⁶ within 30000
/// steps) and one at
/// r = 1.02 must diverge. The plugin's <see cref="IOptimizerPlugin.ThresholdCheckSettings"/> apply (an adaptive P
/// must be frozen for the check to mean anything: it would otherwise follow the gradient and never diverge).
/// </summary>
public static partial class ConformanceGate
{
    public const double BoundaryTolerance = 0.02;
    private const int BoundaryMaxSteps = 2000;
    /// <summary>The run at 0.98× may converge slowly (a momentum mode near β, e.g. QHM's β = 0.999): it gets more steps.</summary>
    private const int ConvergenceMaxSteps = 30000;
    private const double BoundaryGrow = 1e3, BoundaryShrink = 1e-6, BoundaryBisection = 1.002;

    /// <summary>The measured boundary of the last boundary check per plugin name (for tables; null: nothing declared).</summary>
    public sealed record BoundaryMeasurement(string Plugin, ThresholdRule Rule, double? DeclaredThreshold, double? LearningRate, double? BoundaryRatio, string Settings);

    private sealed record Trial(double Eta, bool Diverged, bool Converged, double Ratio, int Steps);

    /// <summary>Runs the boundary check alone and returns what it measured (the check's pass/fail is in the detail).</summary>
    public static (bool Passed, string Detail, BoundaryMeasurement Measurement) MeasureBoundary(IOptimizerPlugin plugin)
    {
        var hp = new HyperparameterValues(plugin.Hyperparameters);
        try
        {
            var (detail, m) = Boundary(plugin, hp);
            return (true, detail, m);
        }
        catch (CheckFailed e)
        {
            return (false, e.Message, _lastMeasurement ?? new BoundaryMeasurement(plugin.Name, ThresholdRule.ClosedForm, null, null, null, ""));
        }
    }

    [ThreadStatic] private static BoundaryMeasurement? _lastMeasurement;

    private static string ThresholdBoundaryCheck(IOptimizerPlugin plugin, HyperparameterValues defaults) => Boundary(plugin, defaults).Detail;

    private static (string Detail, BoundaryMeasurement Measurement) Boundary(IOptimizerPlugin plugin, HyperparameterValues defaults)
    {
        _lastMeasurement = null;
        var hp = CheckSettings(plugin, defaults, out string settings);
        ThresholdRule rule;
        double eta0;
        using (var line = new GateLine(1, 1))
        using (var o = plugin.Create(line.Parameters, hp))
        {
            rule = o.ThresholdRule;
            eta0 = o.LearningRate;
        }
        if (rule == ThresholdRule.None)
        {
            _lastMeasurement = new BoundaryMeasurement(plugin.Name, rule, null, null, null, settings);
            return ("no linear threshold declared (ThresholdRule.None): nothing to prove", _lastMeasurement);
        }

        Trial Run(double eta) => BoundaryTrial(plugin, hp, eta);
        var first = Run(eta0);
        Require(double.IsFinite(first.Ratio) && first.Ratio > 0, $"no threshold ratio could be measured at η = {eta0:G6} (threshold or P not finite)");
        double eta = eta0 / first.Ratio;
        Trial? lo = null, hi = null;
        var t = Run(eta);
        if (t.Diverged)
        {
            hi = t;
            for (int i = 0; i < 40 && lo is null; i++)
            {
                var u = Run(hi.Eta / 2);
                if (u.Diverged) hi = u; else lo = u;
            }
            Require(lo is not null, $"diverges at every learning rate down to {hi.Ratio:G4}× the declared threshold (η = {hi.Eta:G4}){settings}: the declared threshold is false");
        }
        else
        {
            lo = t;
            for (int i = 0; i < 40 && hi is null; i++)
            {
                var u = Run(lo.Eta * 2);
                if (u.Diverged) hi = u; else lo = u;
            }
            Require(hi is not null, $"no divergence on ½λθ² up to {lo.Ratio:G4}× the declared threshold (η = {lo.Eta:G4}){settings}: the declared threshold is false" +
                " (an adaptive preconditioner follows the gradient and never diverges: declare ThresholdCheckSettings that freeze it)");
        }
        while (hi!.Eta / lo!.Eta > BoundaryBisection)
        {
            var u = Run(Math.Sqrt(lo.Eta * hi.Eta));
            if (u.Diverged) hi = u; else lo = u;
        }
        double boundary = Math.Sqrt(lo.Ratio * hi.Ratio);
        double declared = DeclaredAt(plugin, hp, lo.Eta);
        _lastMeasurement = new BoundaryMeasurement(plugin.Name, rule, declared, lo.Eta, boundary, settings);
        string where = $"(λ/P = {lo.Ratio * declared:G6} against the declared {declared:G6} at η = {lo.Eta:G6}){settings}";
        Require(Math.Abs(boundary - 1) <= BoundaryTolerance,
            $"the declared threshold is false: on ½λθ² divergence starts at {boundary:F4}× it {where}; it must be within {BoundaryTolerance:P0}");
        var below = BoundaryTrial(plugin, hp, lo.Eta * (1 - BoundaryTolerance) / lo.Ratio, ConvergenceMaxSteps);
        Require(below.Converged, $"at {below.Ratio:F4}× the declared threshold (η = {below.Eta:G6}) θ did not converge to |θ| < {BoundaryShrink:G} within {ConvergenceMaxSteps} steps{(below.Diverged ? " (it diverged)" : "")}{settings}");
        var above = Run(hi.Eta * (1 + BoundaryTolerance) / hi.Ratio);
        Require(above.Diverged, $"at {above.Ratio:F4}× the declared threshold (η = {above.Eta:G6}) θ did not diverge within {BoundaryMaxSteps} steps{settings}");
        return ($"measured boundary {boundary:F4}× the declared threshold {where}; converges at {below.Ratio:F3}× ({below.Steps} steps), diverges at {above.Ratio:F3}× ({above.Steps} steps)",
            _lastMeasurement);
    }

    private static double DeclaredAt(IOptimizerPlugin plugin, HyperparameterValues hp, double eta)
    {
        using var line = new GateLine(1, 1);
        using var o = plugin.Create(line.Parameters, hp);
        o.LearningRate = eta;
        return StabilityThreshold.Of(o) ?? double.NaN;
    }

    private static HyperparameterValues CheckSettings(IOptimizerPlugin plugin, HyperparameterValues defaults, out string text)
    {
        var declared = plugin.ThresholdCheckSettings;
        text = "";
        if (declared is null || declared.Count == 0) return defaults;
        var given = new Dictionary<string, object>(defaults.All, StringComparer.Ordinal);
        foreach (var (k, v) in declared) given[k] = v;
        try
        {
            var values = new HyperparameterValues(plugin.Hyperparameters, given);
            text = " under the plugin's check settings {" + string.Join(", ", declared.Select(kv => $"{kv.Key}={Matrix.RunCell.Format(kv.Value)}")) + "}";
            return values;
        }
        catch (ArgumentException e)
        {
            throw new CheckFailed($"ThresholdCheckSettings do not fit the schema: {e.Message}");
        }
    }

    /// <summary>One run on ½θ² at learning rate η: diverged (|θ| &gt; 10³ or not finite), converged (|θ| &lt; 10⁻⁶) or
    /// neither after the step budget; with the last finite ratio (λ/P)/threshold.</summary>
    private static Trial BoundaryTrial(IOptimizerPlugin plugin, HyperparameterValues hp, double eta, int maxSteps = BoundaryMaxSteps)
    {
        using var scope = NewDisposeScope();
        using var line = new GateLine(1, 1);
        using var opt = plugin.Create(line.Parameters, hp);
        opt.LearningRate = eta;
        Require(opt.LearningRate == eta, $"the optimizer does not accept the learning rate {eta:G6} the gate sets");
        double ratio = double.NaN;
        for (int s = 1; s <= maxSteps; s++)
        {
            using var stepScope = NewDisposeScope();
            line.Invalidate();
            opt.Step(line);
            double theta = line.Theta;
            bool diverged = !double.IsFinite(theta) || Math.Abs(theta) > BoundaryGrow;
            bool converged = Math.Abs(theta) < BoundaryShrink;
            if (s <= 10 || s % 50 == 0 || diverged || converged)
                if (Ratio(opt, line.Lambda) is { } r) ratio = r;
            if (diverged || converged) return new Trial(eta, diverged, converged, ratio, s);
        }
        return new Trial(eta, false, false, ratio, maxSteps);
    }

    private static double? Ratio(IOptimizer opt, double lambda)
    {
        if (StabilityThreshold.Of(opt) is not { } threshold) return null;
        double p = 1;
        if (opt.Preconditioner is { Count: > 0 } pre)
        {
            using var _ = no_grad();
            p = pre[0].detach().to(ScalarType.Float64).reshape(-1)[0].ReadDouble();
        }
        double r = lambda / p / threshold;
        return double.IsFinite(r) && r > 0 ? r : null;
    }

    internal static string FormatRatio(double? r) => r is { } v ? v.ToString("F4", CultureInfo.InvariantCulture) : "—";
}
