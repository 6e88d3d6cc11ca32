using Harness.Host.Matrix;
using Harness.Host.Output;
using Harness.Host.Reports;

namespace Harness.Tests.Reports;

/// <summary>The claims evaluator on synthetic traces whose answers are known exactly.</summary>
[TestClass]
public sealed class ClaimEvaluatorTests
{
    private static ClaimSpec Claim(ClaimExpectation expect, string metric = "metric", ClaimStatistic statistic = ClaimStatistic.Median,
        ClaimWindow? window = null, bool perRun = false, int minSeeds = 1, params (string Key, object Value)[] where) =>
        new("c", "a claim", null, metric, where.Select(w => new KeyValuePair<string, IReadOnlyList<object>>(w.Key, [w.Value])).ToList(),
            window ?? ClaimWindow.Whole, statistic, perRun, expect, minSeeds, new SourceLocation("m.yaml", 1, 1));

    private static ClaimResult Eval(SyntheticResults r, ClaimSpec c) => ClaimEvaluator.Evaluate(c, ReportData.Load(r.Directory));

    [TestMethod]
    public void BandThatHoldsPassesAndOneThatDoesNotFails()
    {
        var r = new SyntheticResults();
        // metric = 5 on steps 0..50, then 1 + seed/10 on steps 51..100
        for (int seed = 0; seed < 3; seed++) r.Add("gd", 0.1, seed, t => t > 50 ? 1 + seed / 10.0 : 5);
        var late = new ClaimWindow(0.5, 1.0);
        var pass = Eval(r, Claim(new ExpectBetween(0.9, 1.3), window: late));
        Assert.AreEqual(Verdict.Pass, pass.Verdict, pass.Reason);
        Assert.AreEqual(1, pass.Groups.Count);
        Assert.AreEqual(1.1, pass.Groups[0].Value, 1e-12, "median over seeds of the per-run medians 1.0, 1.1, 1.2");
        Assert.AreEqual(3, pass.Groups[0].Seeds);
        Assert.AreEqual(3, pass.RunsUsed);

        var fail = Eval(r, Claim(new ExpectBetween(0.9, 1.3)));   // whole run: each run's median is 5 (51 of its 101 rows are 5)
        Assert.AreEqual(Verdict.Fail, fail.Verdict);
        Assert.AreEqual(5, fail.Groups[0].Value, 1e-12);
    }

    [TestMethod]
    public void MissingMetricNoMatchingRunAndTooFewSeedsAreNotEnoughData()
    {
        var r = new SyntheticResults();
        r.Add("gd", 0.1, 0, _ => 1);
        r.Add("gd", 0.1, 1, _ => null);   // never measured: does not count as a seed with data
        Assert.AreEqual(Verdict.NotEnoughData, Eval(r, Claim(new ExpectRelation(">", 0), metric: "absent")).Verdict);
        Assert.AreEqual(Verdict.NotEnoughData, Eval(r, Claim(new ExpectRelation(">", 0), where: ("optimizer", "adam"))).Verdict);
        var few = Eval(r, Claim(new ExpectRelation(">", 0), minSeeds: 2));
        Assert.AreEqual(Verdict.NotEnoughData, few.Verdict, few.Reason);
        StringAssert.Contains(few.Reason, "1 seed(s) with data, min_seeds is 2");
        Assert.AreEqual(Verdict.Pass, Eval(r, Claim(new ExpectRelation(">", 0), minSeeds: 1)).Verdict);
        // a window past the end of every run has no data either
        Assert.AreEqual(Verdict.NotEnoughData, Eval(r, Claim(new ExpectRelation(">", 0), window: new ClaimWindow(FromStep: 500, ToStep: 600))).Verdict);
    }

    [TestMethod]
    public void DivergedRunsAreExcludedAndCounted()
    {
        var r = new SyntheticResults();
        r.Add("gd", 0.1, 0, _ => 1);
        r.Add("gd", 0.1, 1, _ => 1000, status: RunStatus.Diverged);
        var c = Eval(r, Claim(new ExpectRelation("<", 2)));
        Assert.AreEqual(Verdict.Pass, c.Verdict, "the diverged run's 1000 would fail it");
        Assert.AreEqual(1, c.RunsUsed);
        Assert.AreEqual(1, c.RunsExcluded);
        var all = new SyntheticResults();
        all.Add("gd", 0.1, 0, _ => 1, status: RunStatus.Diverged);
        Assert.AreEqual(Verdict.NotEnoughData, Eval(all, Claim(new ExpectRelation("<", 2))).Verdict);
    }

    [TestMethod]
    public void StatisticsHaveTheirExactValues()
    {
        var r = new SyntheticResults();
        r.Add("gd", 0.1, 0, t => 2.0 * t + 1);   // steps 0..100
        double Value(ClaimStatistic s, ClaimWindow? w = null) => Eval(r, Claim(new ExpectRelation(">", -1e9), statistic: s, window: w)).Groups[0].Value;
        Assert.AreEqual(2.0, Value(ClaimStatistic.Slope), 1e-12);
        Assert.AreEqual(101.0, Value(ClaimStatistic.Median), 1e-12);
        Assert.AreEqual(101.0, Value(ClaimStatistic.Mean), 1e-12);
        Assert.AreEqual(1.0, Value(ClaimStatistic.Min), 1e-12);
        Assert.AreEqual(201.0, Value(ClaimStatistic.Max), 1e-12);
        Assert.AreEqual(201.0, Value(ClaimStatistic.Final), 1e-12);
        // steps 10..20 inclusive: values 21..41; fraction 0.5..1.0 of 100 steps: steps 50..100
        Assert.AreEqual(31.0, Value(ClaimStatistic.Median, new ClaimWindow(FromStep: 10, ToStep: 20)), 1e-12);
        Assert.AreEqual(101.0, Value(ClaimStatistic.Min, new ClaimWindow(0.5, 1.0)), 1e-12);
        Assert.AreEqual(41.0, Value(ClaimStatistic.Final, new ClaimWindow(FromStep: 10, ToStep: 20)), 1e-12);

        var flags = new SyntheticResults();
        flags.Add("gd", 0.1, 0, t => t % 4 == 0 ? 1 : 0);   // steps 0..100: 26 of 101 are 1
        var f = Eval(flags, Claim(new ExpectBetween(0, 1), metric: "flag", statistic: ClaimStatistic.FractionTrue));
        Assert.AreEqual(26.0 / 101, f.Groups[0].Value, 1e-12);
    }

    [TestMethod]
    public void BootstrapIntervalOfTheMedianOverSeeds()
    {
        // Median of a resample of 3 from {1, 2, 3}: 1 with probability 7/27, 2 with 13/27, 3 with 7/27, so the 5 % and
        // 95 % percentiles of the bootstrap distribution are 1 and 3 (any resampling that is not absurdly unlucky).
        var r = new SyntheticResults();
        for (int seed = 1; seed <= 3; seed++) r.Add("gd", 0.1, seed, _ => seed);
        var g = Eval(r, Claim(new ExpectRelation(">", 0))).Groups.Single();
        Assert.AreEqual((2.0, 1.0, 3.0, 3), (g.Value, g.Low, g.High, g.Seeds));
        var (m, lo, hi) = Bootstrap.MedianInterval([5.0, 5.0, 5.0, 5.0]);
        Assert.AreEqual((5.0, 5.0, 5.0), (m, lo, hi));
        Assert.AreEqual((7.0, 7.0, 7.0), Bootstrap.MedianInterval([7.0]));
    }

    [TestMethod]
    public void MonotoneOverALearningRate()
    {
        var r = new SyntheticResults();
        foreach (var (lr, v) in new[] { (0.1, 3.0), (0.2, 2.0), (0.4, 1.0) }) r.Add("gd", lr, 0, _ => v);
        Assert.AreEqual(Verdict.Pass, Eval(r, Claim(new ExpectMonotone("optimizer.lr", Increasing: false))).Verdict);
        var inc = Eval(r, Claim(new ExpectMonotone("optimizer.lr", Increasing: true)));
        Assert.AreEqual(Verdict.Fail, inc.Verdict);
        Assert.AreEqual(2, inc.Groups.Count(g => g.Met == false));
        r.Add("gd", 0.8, 0, _ => 1.5);   // breaks the decrease at the largest lr
        Assert.AreEqual(Verdict.Fail, Eval(r, Claim(new ExpectMonotone("optimizer.lr", Increasing: false))).Verdict);
        var single = new SyntheticResults();
        single.Add("gd", 0.1, 0, _ => 1);
        Assert.AreEqual(Verdict.NotEnoughData, Eval(single, Claim(new ExpectMonotone("optimizer.lr", Increasing: false))).Verdict);
    }

    [TestMethod]
    public void CompareWithTheMatchingGroupOfAnotherOptimizer()
    {
        var r = new SyntheticResults();
        r.Add("adam", 0.01, 0, _ => 3, width: 10);
        r.Add("sgd", 0.5, 0, _ => 1, width: 10);
        r.Add("adam", 0.01, 0, _ => 3, width: 20);
        r.Add("sgd", 0.5, 0, _ => 2.5, width: 20);
        ClaimSpec Cmp(string rel, double factor) => Claim(new ExpectCompare([new("optimizer", ["sgd"])], rel, factor), where: ("optimizer", "adam"));
        var gt = Eval(r, Cmp(">", 1));
        Assert.AreEqual(Verdict.Pass, gt.Verdict, gt.Reason);
        Assert.AreEqual(2, gt.Groups.Count, "one comparison per model width");
        // 3 > 2 × 1 holds at width 10, 3 > 2 × 2.5 does not at width 20
        var twice = Eval(r, Cmp(">", 2));
        Assert.AreEqual(Verdict.Fail, twice.Verdict);
        Assert.AreEqual(1, twice.Groups.Count(g => g.Met == false));
        Assert.AreEqual(Verdict.NotEnoughData, Eval(r, Claim(new ExpectCompare([new("optimizer", ["lion"])], ">", 1), where: ("optimizer", "adam"))).Verdict);
    }

    [TestMethod]
    public void PerRunJudgesEverySeedSeparately()
    {
        var r = new SyntheticResults();
        r.Add("gd", 0.1, 0, _ => 0.5);
        r.Add("gd", 0.1, 1, _ => 0.7);
        r.Add("gd", 0.1, 2, _ => 2.0);
        Assert.AreEqual(Verdict.Pass, Eval(r, Claim(new ExpectRelation("<", 1))).Verdict, "median over seeds 0.7 < 1");
        var perRun = Eval(r, Claim(new ExpectRelation("<", 1), perRun: true));
        Assert.AreEqual(Verdict.Fail, perRun.Verdict);
        Assert.AreEqual(3, perRun.Groups.Count);
    }
}
