using Harness.Host.Matrix;
using Harness.Host.Plugins;

namespace Harness.Tests.Reports;

/// <summary>The claims section of a matrix file: parsed into specs, and every mistake located.</summary>
[TestClass]
public sealed class ClaimParserTests
{
    private static readonly Lazy<PluginCatalog> Catalog = new(() => PluginCatalog.Load(Paths.PluginArtifacts));

    private const string Head = """
        name: c
        models:
          - name: quadratic
        optimizers:
          - name: gd
            hyperparameters: { lr: [0.1, 0.2] }
        training: { steps: 10 }
        probes:
          - name: sharpness
            every: 5
        claims:

        """;

    private static MatrixSpec Parse(string claims) => new MatrixParser(Catalog.Value).Parse(Head + claims, "m.yaml");

    private static List<string> Errors(string claims)
    {
        try { Parse(claims); Assert.Fail("expected validation errors"); return []; }
        catch (MatrixValidationException e) { return e.Errors.Select(x => x.ToString()).ToList(); }
    }

    [TestMethod]
    public void ParsesEveryPart()
    {
        var spec = Parse("""
              - id: gd-edge
                text: "sharpness hovers at 2/eta"
                source: "a paper, Fig. 1"
                metric: edge_ratio
                where: { optimizer: gd, optimizer.lr: [0.1, 0.2], probe.sharpness.max_iterations: 20 }
                window: { from: 0.5, to: 1.0 }
                statistic: median
                per: configuration
                expect: { between: [0.9, 1.1] }
                min_seeds: 3
              - id: mono
                text: t
                metric: train_loss
                window: { from_step: 2, to_step: 8 }
                statistic: final
                per: run
                expect: { monotone: { over: optimizer.lr, direction: decreasing } }
              - id: cmp
                text: t
                metric: sharpness
                statistic: slope
                expect: { compare: { other: { optimizer.lr: 0.2 }, relation: "<", factor: 2 } }
              - id: ge
                text: t
                metric: edge_crossing
                statistic: fraction_true
                expect: { ">=": 0 }
            """);
        Assert.AreEqual(4, spec.Claims.Count);
        var c = spec.Claims[0];
        Assert.AreEqual(("gd-edge", "edge_ratio", ClaimStatistic.Median, false, 3), (c.Id, c.Metric, c.Statistic, c.PerRun, c.MinSeeds));
        Assert.AreEqual("a paper, Fig. 1", c.Source);
        Assert.AreEqual(new ClaimWindow(0.5, 1.0), c.Window);
        Assert.AreEqual(new ExpectBetween(0.9, 1.1), c.Expect);
        CollectionAssert.AreEqual(new[] { "optimizer", "optimizer.lr", "probe.sharpness.max_iterations" }, c.Where.Select(w => w.Key).ToArray());
        CollectionAssert.AreEqual(new object[] { 0.1, 0.2 }, c.Where[1].Value.ToArray());
        Assert.AreEqual(new ClaimWindow(FromStep: 2, ToStep: 8), spec.Claims[1].Window);
        Assert.IsTrue(spec.Claims[1].PerRun);
        Assert.AreEqual(new ExpectMonotone("optimizer.lr", false), spec.Claims[1].Expect);
        var cmp = (ExpectCompare)spec.Claims[2].Expect;
        Assert.AreEqual(("<", 2.0, "optimizer.lr"), (cmp.Relation, cmp.Factor, cmp.Other[0].Key));
        Assert.AreEqual(new ExpectRelation(">=", 0), spec.Claims[3].Expect);
        Assert.AreEqual(ClaimStatistic.FractionTrue, spec.Claims[3].Statistic);
    }

    [TestMethod]
    public void EveryMistakeIsLocated()
    {
        var errors = Errors("""
              - id: Bad Id
                text: t
                metric: m
                expect: { between: [1, 0] }
              - id: two
                text: t
                metric: m
                statistic: mode
                per: seed
                window: { from: 0.8, to: 0.2 }
                expect: { "<": 1, ">": 0 }
              - id: two
                metric: m
                where: { optimizer.momentum: 0.9, probe.hessian.k: 1, colour: red }
                expect: { monotone: { over: optimizer.lr, direction: up } }
                bogus: 1
            """);
        string[] expected =
        [
            "m.yaml:12:9: claims[0].id: 'Bad Id' must be lower-case letters, digits, '_', '.', '-'",
            "m.yaml:15:24: claims[0].expect.between: high 0 is below low 1",
            "m.yaml:19:16: claims[1].statistic: unknown statistic 'mode' (one of: median, mean, min, max, final, slope, fraction_true)",
            "m.yaml:20:10: claims[1].per: 'seed' is not one of configuration, run",
            "m.yaml:21:13: claims[1].window: the window is empty: need from < to (got 0.8 and 0.2); they are fractions of each run's steps",
            "m.yaml:22:13: claims[1].expect: must be a mapping with exactly one of: between, >, >=, <, <=, monotone, compare",
            "m.yaml:23:9: claims[2].id: claim id 'two' is used twice",
            "m.yaml:23:5: claims[2].text: required",
            "m.yaml:25:14: claims[2].where.optimizer.momentum: no hyperparameter 'momentum' in the matrix's optimizers (they have: decoupled_weight_decay, lr, weight_decay)",
            "m.yaml:25:39: claims[2].where.probe.hessian.k: the matrix has no probe 'hessian' (it has: sharpness)",
            "m.yaml:25:59: claims[2].where.colour: unknown label: use optimizer, model, tuner, optimizer.<hp>, model.<hp>, tuner.<hp> or probe.<probe>.<hp>",
            "m.yaml:26:58: claims[2].expect.monotone.direction: 'up' is not one of increasing, decreasing",
            "m.yaml:27:5: claims[2].bogus: unknown key (expected one of: id, text, source, metric, where, window, statistic, per, expect, min_seeds, must_pass)",
        ];
        CollectionAssert.AreEquivalent(expected, errors, "\n" + string.Join("\n", errors));
    }

    [TestMethod]
    public void MustPassMarksAnExactToyClaimAndIsFalseByDefault()
    {
        var spec = Parse("""
              - { id: toy, text: t, metric: train_loss, expect: { "<": 1 }, must_pass: true }
              - { id: net, text: t, metric: train_loss, expect: { "<": 1 } }
            """);
        Assert.IsTrue(spec.Claims[0].MustPass);
        Assert.IsFalse(spec.Claims[1].MustPass);
        CollectionAssert.AreEqual(new[] { "m.yaml:12:76: claims[0].must_pass: 'yes' is not one of true, false" },
            Errors("""
              - { id: toy, text: t, metric: train_loss, expect: { "<": 1 }, must_pass: yes }
            """));
    }
}
