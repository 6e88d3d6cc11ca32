using System.Text.Json;
using Harness.Abstractions;
using Harness.Host.Training;
using static TorchSharp.torch;
using static Harness.Tests.Optimizers.OptimizerTestKit;

namespace Harness.Tests.Optimizers;

using Math = System.Math;

/// <summary>Optimizer state export/import: a mid-run round trip (through the JSON state file) continues
/// bit-identically for every optimizer; frozen Adam is exactly PrecondEMAHB with the frozen P.</summary>
[TestClass]
public sealed class StateTests
{
    public static IEnumerable<object[]> RoundTripCases()
    {
        foreach (var name in OptimizerTestKit.Plugins.Keys.Order(StringComparer.Ordinal))
            yield return [name, ""];
        yield return ["adam", "freeze_at_step=5"];          // exported after the freeze
        yield return ["adam", "freeze_at_step=11"];         // exported before the freeze, which happens after import
        yield return ["rmsprop", "momentum=0.9,centered=true"];
        yield return ["padam", "amsgrad=true"];
        yield return ["nadam", "weight_decay=0.1,decoupled_weight_decay=true"];
        yield return ["adafactor", "beta1=0.9,freeze_at_step=4"];
        yield return ["adagrad", "initial_accumulator_value=0.1,lr_decay=0.01"];
    }

    private static Dictionary<string, object> Parse(string options)
    {
        var d = options.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(kv => kv.Split('='))
            .ToDictionary(kv => kv[0], kv => (object)kv[1]);
        d.TryAdd("lr", "0.02");
        return d;
    }

    [TestMethod]
    [DynamicData(nameof(RoundTripCases))]
    public void MidRunRoundTripContinuesBitIdentically(string optimizer, string options)
    {
        const int before = 8, after = 8;
        var problem = new RefProblem(42);
        var given = Parse(options);
        using var scope = NewDisposeScope();
        var parameters = problem.Parameters();
        using var opt = Create(optimizer, parameters, given);
        if (optimizer.StartsWith("precond_", StringComparison.Ordinal))
            opt.ImportState(new OptimizerState
            {
                Scalars = { ["step"] = 0, ["lr"] = 0.02 },
                Buffers = { ["preconditioner"] = problem.Shapes.Select(s => (double[]?)Enumerable.Range(0, (int)s.Aggregate(1L, (x, y) => x * y)).Select(i => 0.5 + i % 3).ToArray()).ToArray() },
            });
        var objective = new ArrayObjective(parameters, problem);
        void Run(IOptimizer o, ArrayObjective obj, int from, int count, List<long[]>? record)
        {
            for (int t = from; t < from + count; t++)
            {
                using var s = NewDisposeScope();
                obj.T = t;
                obj.Invalidate();
                o.Step(obj);
                record?.Add(Bits(obj.Parameters));
            }
        }
        Run(opt, objective, 1, before, null);

        // Save as the host does (state file JSON), then continue the original run.
        var file = OptimizerStateFile.Capture(optimizer, opt, parameters, before);
        string json = file.ToJson();
        var original = new List<long[]>();
        Run(opt, objective, before + 1, after, original);

        // A fresh instance on θ from the file, with the imported state.
        var loaded = OptimizerStateFile.FromJson(json);
        var copy = loaded.Parameters!.Select((a, i) => tensor(a, dtype: ScalarType.Float64).reshape(problem.Shapes[i]).requires_grad_(true)).ToList();
        using var resumed = Create(optimizer, copy, given);
        resumed.ImportState(loaded.State);
        Assert.AreEqual(JsonSerializer.Serialize(file.State, OptimizerStateFile.Json), JsonSerializer.Serialize(resumed.ExportState(), OptimizerStateFile.Json),
            "the state exported right after import differs from the imported one");
        var continued = new List<long[]>();
        Run(resumed, new ArrayObjective(copy, problem), before + 1, after, continued);
        for (int s = 0; s < after; s++)
            CollectionAssert.AreEqual(original[s], continued[s], $"{optimizer} {options}: step {before + s + 1} after the round trip is not bit-identical");
    }

    [TestMethod]
    public void ImportRefusesTheStateOfAnotherOptimizer()
    {
        using var scope = NewDisposeScope();
        var problem = new RefProblem(1);
        var p = problem.Parameters();
        using var adam = Create("adam", p);
        var objective = new ArrayObjective(p, problem);
        adam.Step(objective);
        using var hb = Create("heavy_ball", p);
        var e = Assert.ThrowsExactly<ArgumentException>(() => hb.ImportState(adam.ExportState()));
        StringAssert.Contains(e.Message, "no state buffer 'exp_avg");
        using var padam = Create("precond_heavy_ball", p);
        var bad = new OptimizerState { Buffers = { ["preconditioner"] = [new double[12], new double[5], new double[12]] } };
        Assert.ThrowsExactly<ArgumentException>(() => padam.ImportState(bad), "a zero preconditioner must be refused");
    }

    /// <summary>Cohen et al.'s "frozen Adam": Adam with freeze_at_step = k is exactly PrecondEMAHB(η, β1, P_k) from step
    /// k on, when PrecondEMAHB starts from Adam's θ_k and first moment m_k with P_k = (1−β1^k)(sqrt(ν_k/(1−β2^k)) + ε).</summary>
    [TestMethod]
    [DataRow(true)]
    [DataRow(false)]
    public void FrozenAdamIsPrecondEmaHeavyBallWithTheFrozenP(bool biasCorrection)
    {
        const int k = 10, more = 25;
        var problem = new RefProblem(7);
        var hp = new Dictionary<string, object> { ["lr"] = 0.02, ["beta1"] = 0.9, ["beta2"] = 0.99, ["eps"] = 1e-3, ["bias_correction"] = biasCorrection };
        using var scope = NewDisposeScope();

        var pa = problem.Parameters();
        using var frozen = Create("adam", pa, new Dictionary<string, object>(hp) { ["freeze_at_step"] = (long)k });
        var oa = new ArrayObjective(pa, problem);

        var pb = problem.Parameters();
        using var adam = Create("adam", pb, hp);
        var ob = new ArrayObjective(pb, problem);

        for (int t = 1; t <= k; t++)
        {
            oa.T = ob.T = t; oa.Invalidate(); ob.Invalidate();
            frozen.Step(oa); adam.Step(ob);
        }
        CollectionAssert.AreEqual(Bits(pa), Bits(pb));
        // P_k and m_k of the unfrozen Adam, handed to PrecondEMAHB through the state.
        var pk = adam.Preconditioner!.Select(OptimizerStateFile.ToDoubles).ToArray();
        var mk = adam.ExportState().Buffers["exp_avg"];
        var expectedPk = ExpectedAdamP(problem, hp, k);
        for (int i = 0; i < pk.Length; i++)
            Assert.IsLessThan(1e-12, RelativeError(pk[i], expectedPk[i]), "Adam's P must be (1−β1^t)(sqrt(ν/(1−β2^t)) + ε)");
        using var hb = Create("precond_ema_heavy_ball", pb, new Dictionary<string, object> { ["lr"] = 0.02, ["momentum"] = 0.9 });
        hb.ImportState(new OptimizerState
        {
            Scalars = { ["step"] = k, ["lr"] = 0.02 },
            Buffers = { ["preconditioner"] = pk.Select(a => (double[]?)a).ToArray(), ["momentum"] = mk },
        });
        for (int t = k + 1; t <= k + more; t++)
        {
            oa.T = ob.T = t; oa.Invalidate(); ob.Invalidate();
            frozen.Step(oa); hb.Step(ob);
            CollectionAssert.AreEqual(Bits(pb), Bits(pa), $"frozen Adam and PrecondEMAHB differ at step {t}");
        }
        var pFrozen = frozen.Preconditioner!.Select(OptimizerStateFile.ToDoubles).SelectMany(a => a).ToArray();
        CollectionAssert.AreEqual(pk.SelectMany(a => a).ToArray(), pFrozen, "frozen Adam must keep reporting P_k");
        Assert.AreEqual(hb.StabilityThreshold, frozen.StabilityThreshold, "same threshold (2+2β1)/(η(1−β1))");
    }

    /// <summary>Adam's P at step k from a float64 replay of its second moment.</summary>
    private static double[][] ExpectedAdamP(RefProblem problem, Dictionary<string, object> hp, int k)
    {
        var reference = new RefAdam(new Dictionary<string, object>(hp), problem.Shapes, amsgrad: false, exponent: 0.5, decoupledDefault: false);
        var theta = problem.InitialCopy();
        for (int t = 1; t <= k; t++) reference.Step(theta, problem.Evaluate(theta, t).grad);
        return reference.P!;
    }
}
