using System.Text.RegularExpressions;
using Harness.Abstractions;
using Harness.Abstractions.Numerics;
using Harness.Host.Training;
using Harness.Plugins.Models;
using Harness.Host.Output;
using Harness.Plugins.Probes;
using Harness.Tests.Optimizers;
using TorchSharp;
using static Harness.Tests.Probes.ProbeTestSupport;
using static TorchSharp.torch;
namespace Harness.Tests.Probes;

using Math = System.Math;

/// <summary>The sharpness probe against an independent float64 reference on the demo's network at the edge of
/// stability, where λ1 and λ2 are 1–2.5 % apart.</summary>
[TestClass]
public sealed class SharpnessReferenceTests
{
    /// <summary>Saved states: the last 250 steps of experiments/demo.yaml's η = 0.03 run, at the demo's probe interval.</summary>
    internal static readonly long[] Steps = Enumerable.Range(0, 11).Select(i => 2250L + 25 * i).ToArray();

    /// <summary>The demo matrix restricted to η = 0.03, saving its state at <paramref name="steps"/>, without probes
    /// (the probes run afterwards on the saved states).</summary>
    internal static string DemoAtEdge(IEnumerable<long> steps)
    {
        string text = File.ReadAllText(Path.Combine(Paths.RepoRoot, "experiments", "demo.yaml"));
        text = Regex.Replace(text, @"(?m)^(\s+)lr: \[[^\]]*\]", "$1lr: 0.03");
        text = Regex.Replace(text, @"(?m)^(\s+)steps: (\d+)", $"$1steps: $2\n$1save_state_at: [{string.Join(", ", steps)}]");
        text = text[..text.IndexOf("probes:", StringComparison.Ordinal)];
        Assert.Contains("lr: 0.03", text, "demo.yaml's lr list changed shape");
        Assert.Contains("save_state_at", text, "demo.yaml's steps line changed shape");
        return text;
    }

    /// <summary>Reference λ1, λ2: plain Lanczos in float64 for a fixed, long Krylov dimension with full
    /// reorthogonalisation (written here, independent of the probe's stopping rule), checked by its own residual.</summary>
    internal static (double l1, double l2, double residual) Reference(ISymmetricOperator h, int dimension)
    {
        using var scope = NewDisposeScope();
        long n = h.Dimension;
        var q = randn(n, dtype: ScalarType.Float64, generator: new Generator(12345));
        q = q / q.norm();
        var rows = new List<Tensor> { q };
        var t = new double[dimension, dimension];
        Tensor w = q;
        for (int j = 0; j < dimension; j++)
        {
            w = h.Multiply(rows[j]).to(ScalarType.Float64);
            var basis = stack(rows);
            for (int pass = 0; pass < 2; pass++)
            {
                var c = basis.mv(w);
                w = w - basis.T.mv(c);
                var cs = c.data<double>().ToArray();
                for (int i = 0; i < cs.Length; i++) { t[i, j] += cs[i]; if (i != j) t[j, i] += cs[i]; }
            }
            if (j + 1 < dimension) rows.Add(w / w.norm());
        }
        var (values, vectors) = linalg.eigh(tensor(t, dtype: ScalarType.Float64));
        var l = values.data<double>().ToArray();
        double beta = w.norm().ToDouble();
        double residual = beta * Math.Abs(vectors[dimension - 1, dimension - 1].ToDouble());
        return (l[dimension - 1], l[dimension - 2], residual);
    }

    private static void Load(IModel model, OptimizerStateFile state)
    {
        using var _ = no_grad();
        for (int i = 0; i < model.Parameters.Count; i++)
        {
            var p = model.Parameters[i].Tensor;
            using var v = tensor(state.Parameters![i], dtype: ScalarType.Float64).to(p.dtype).reshape(p.shape);
            p.copy_(v);
        }
    }

    [TestMethod]
    public void ColdAndWarmSharpnessEqualAFloat64ReferenceAlongTheDemosEdgeOfStability()
    {
        var dir = Paths.NewTempDirectory("sharpness-reference");
        try
        {
            var (spec, outcome) = HostFixture.Run(DemoAtEdge(Steps), dir);
            var run = outcome.Runs.Single();
            Assert.AreEqual(RunStatus.Completed, run.Status, run.Reason);
            var cell = Harness.Host.Matrix.MatrixExpander.Expand(spec).Single();
            var modelPlugin = new FashionMlpPlugin();
            ModelContext Context(ScalarType dtype) => new(new HyperparameterValues(modelPlugin.Hyperparameters, cell.ModelHyperparameters),
                cell.InitSeed, cell.DataSeed, dtype, CPU, spec.DataDirectory);
            using var model = modelPlugin.Create(Context(ScalarType.Float32));
            using var exact = modelPlugin.Create(Context(ScalarType.Float64));
            Assert.AreEqual(2000, model.Train.Count, "the probe set is the whole training subset");
            using var gd = OptimizerTestKit.Create("gd", model.Parameters.Select(p => p.Tensor).ToList(), new Dictionary<string, object> { ["lr"] = 0.03 });
            var plugin = new SharpnessProbePlugin();
            HyperparameterValues Hp(bool warm) => new(plugin.Hyperparameters, new Dictionary<string, object>
            {
                ["tolerance"] = 1e-3, ["warm_start"] = warm, // the demo's tolerance, the default max_iterations
            });
            using var warmProbe = plugin.Create(Hp(true));
            var lines = new List<string>();
            var wrong = new List<string>();
            double coldHvps = 0, warmHvps = 0;
            foreach (long step in Steps)
            {
                var state = OptimizerStateFile.Load(Path.Combine(outcome.Directory, run.RunId, $"state-{step}.json"));
                Assert.AreEqual(step, state.Step);
                Load(model, state);
                Load(exact, state);
                using var scope = NewDisposeScope();
                using var coldProbe = plugin.Create(Hp(false));
                var cold = coldProbe.Measure(ProbeTestSupport.Context(model, gd, step));
                var warm = warmProbe.Measure(ProbeTestSupport.Context(model, gd, step));
                using var h = new TorchObjective(exact, exact.Train).Hessian();
                var (l1, l2, residual) = Reference(h, 120);
                Assert.IsTrue(residual <= 1e-9 * l1, $"step {step}: reference residual {residual:E2}");
                coldHvps += cold["sharpness_iterations"];
                warmHvps += warm["sharpness_iterations"];
                lines.Add($"step {step}: λ1 {l1:F4} λ2 {l2:F4} (gap {100 * (l1 - l2) / l1:F2} %), cold {cold["sharpness"]:F4} ({cold["sharpness_iterations"]} HVPs), warm {warm["sharpness"]:F4} ({warm["sharpness_iterations"]} HVPs)");
                // tolerance 1e-3 on the residual puts the Ritz value within 1e-3·λ1 of an eigenvalue (float32 products)
                foreach (var (name, m) in new[] { ("cold", cold), ("warm", warm) })
                    if (Math.Abs(m["sharpness"] - l1) > 1e-3 * l1 || m["sharpness_converged"] != 1)
                        wrong.Add($"step {step} {name}: {m["sharpness"]:R} vs λ1 {l1:R} (λ2 {l2:R}), converged {m["sharpness_converged"]}");
            }
            Console.WriteLine(string.Join("\n", lines));
            Console.WriteLine($"HVPs per measurement: cold {coldHvps / Steps.Length:F1}, warm {warmHvps / Steps.Length:F1} (the first warm one is cold)");
            Assert.AreEqual(0, wrong.Count, string.Join("\n", wrong) + "\n" + string.Join("\n", lines));
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}
