using Harness.Host.Training;

namespace Harness.Tests.Probes;

using Math = System.Math;

[TestClass]
public sealed class ProbeSchedulerTests
{
    private static List<long> Steps(ProbeScheduler s, int probe, long steps, Func<long, double>? loss = null,
        Func<long, IReadOnlyDictionary<string, double>?>? values = null)
    {
        var measured = new List<long>();
        for (long t = 0; t < steps; t++)
        {
            foreach (int i in s.Due(t))
            {
                s.Measured(i, t, 0, i == probe ? values?.Invoke(t) : null);
                if (i == probe) measured.Add(t);
            }
            s.StepEnded(t, 1, loss?.Invoke(t) ?? 1.0);
        }
        return measured;
    }

    [TestMethod]
    public void EveryKIsTheMultiplesOfK()
    {
        var s = new ProbeScheduler([new ProbeSchedule("a", 25), new ProbeSchedule("b", 7)]);
        CollectionAssert.AreEqual(Enumerable.Range(0, 4).Select(i => 25L * i).ToList(), Steps(s, 0, 100));
        var s2 = new ProbeScheduler([new ProbeSchedule("a", 25), new ProbeSchedule("b", 7)]);
        CollectionAssert.AreEqual(Enumerable.Range(0, 15).Select(i => 7L * i).ToList(), Steps(s2, 1, 100));
    }

    [TestMethod]
    public void FinalRowMeasuresEveryProbe()
    {
        var s = new ProbeScheduler([new ProbeSchedule("a", 25), new ProbeSchedule("b", 7)], budget: 0.1);
        s.Measured(0, 0, 100); s.Measured(1, 0, 100);
        s.StepEnded(0, 201, 1);
        CollectionAssert.AreEqual(new[] { 0, 1 }, s.Due(1, last: true).ToArray());
    }

    [TestMethod]
    public void DenseWindowsMeasureEveryStepInsideAndTheirOwnEvery()
    {
        var s = new ProbeScheduler([new ProbeSchedule("a", 50, [new ProbeWindow(10, 14), new ProbeWindow(100, 110, 5)])]);
        var got = Steps(s, 0, 160);
        CollectionAssert.AreEqual(new long[] { 0, 10, 11, 12, 13, 63, 100, 105, 155 }, got);
        Assert.AreEqual(1, new ProbeScheduler([new ProbeSchedule("a", 50, [new ProbeWindow(10, 14)])]).BaseInterval(0, 13));
        Assert.AreEqual(50, new ProbeScheduler([new ProbeSchedule("a", 50, [new ProbeWindow(10, 14)])]).BaseInterval(0, 14));
    }

    [TestMethod]
    public void CrossingEventStartsABurstInEveryProbeThatAsksForIt()
    {
        var s = new ProbeScheduler([
            new ProbeSchedule("sharpness", 10, Burst: new ProbeBurst(3, OnCrossing: true, OnLossSpike: false)),
            new ProbeSchedule("other", 20, Burst: new ProbeBurst(2)),
            new ProbeSchedule("plain", 20),
        ]);
        var seen = new Dictionary<int, List<long>> { [0] = [], [1] = [], [2] = [] };
        for (long t = 0; t < 45; t++)
        {
            foreach (int i in s.Due(t))
            {
                seen[i].Add(t);
                var v = i == 0 && t == 20 ? new Dictionary<string, double> { ["edge_crossing"] = 1, ["edge_ratio"] = 1.01 }
                    : new Dictionary<string, double> { ["edge_crossing"] = 0 };
                s.Measured(i, t, 0, v);
            }
            var events = s.StepEnded(t, 1, 1.0);
            Assert.AreEqual(t == 20 ? ProbeEvents.Crossing : ProbeEvents.None, events, $"step {t}");
        }
        CollectionAssert.AreEqual(new long[] { 0, 10, 20, 21, 22, 23, 33, 43 }, seen[0]);
        CollectionAssert.AreEqual(new long[] { 0, 20, 21, 22, 42 }, seen[1]);
        CollectionAssert.AreEqual(new long[] { 0, 20, 40 }, seen[2]);
    }

    [TestMethod]
    public void LossSpikeStartsABurst()
    {
        var s = new ProbeScheduler([new ProbeSchedule("a", 100, Burst: new ProbeBurst(2, OnCrossing: false, OnLossSpike: true, LossSpikeFactor: 2))]);
        // Loss 1.0 everywhere except 1.9 at step 30 (no spike) and 2.5 at step 60 (spike: > 2 × EMA).
        var got = Steps(s, 0, 130, loss: t => t == 30 ? 1.9 : t == 60 ? 2.5 : 1.0);
        CollectionAssert.AreEqual(new long[] { 0, 61, 62 }, got, "intervals count from the last measurement");
    }

    [TestMethod]
    public void BudgetKeepsAccountedProbeTimeWithinTheFractionAndDropsNothing()
    {
        // Step 0.10 s; probe a costs 1.0 s every step asked, probe b 4.0 s every 10 steps; budget 20 %.
        const double budget = 0.2;
        var s = new ProbeScheduler([new ProbeSchedule("a", 1), new ProbeSchedule("b", 10)], budget);
        double[] cost = [1.0, 4.0];
        var last = new long[] { -1, -1 };
        var maxGap = new long[2];
        int n = 60000;
        bool settled = false;
        for (long t = 0; t < n; t++)
        {
            double probeSeconds = 0;
            foreach (int i in s.Due(t))
            {
                if (last[i] >= 0) maxGap[i] = Math.Max(maxGap[i], t - last[i]);
                last[i] = t;
                s.Measured(i, t, cost[i]);
                probeSeconds += cost[i];
            }
            s.StepEnded(t, 0.1 + probeSeconds, 1.0);
            if (s.Fraction <= budget) settled = true;
            else Assert.IsFalse(settled, $"step {t}: probe fraction {s.Fraction:F4} above the budget after it had been met");
        }
        Assert.IsTrue(settled);
        Assert.IsTrue(s.Fraction > budget * 0.97, $"the budget should be used, fraction {s.Fraction:F4}");
        // Both keep running at the stretched rates: a every 56 steps, b every 560.
        Assert.IsTrue(s.Measurements(0) >= 0.97 * n / 56 && s.Measurements(0) <= n / 56 + 1, $"a measured {s.Measurements(0)} times");
        Assert.IsTrue(s.Measurements(1) >= 0.97 * n / 560 && s.Measurements(1) <= n / 560 + 1, $"b measured {s.Measurements(1)} times");
        // Planned: 0.1 s of training per step buys 0.025 s of probes per step; demand 1.0 + 0.4 s per step → s = 56.
        Assert.AreEqual(56, s.Stretch, 1e-9);
        Assert.IsTrue(maxGap[1] < 2 * 56 * 10, $"the expensive probe is never starved (max gap {maxGap[1]})");
        Assert.IsTrue(s.Postponed(0) + s.Postponed(1) > 0);
        Assert.AreEqual(s.ProbeSeconds, s.Measurements(0) * 1.0 + s.Measurements(1) * 4.0, 1e-6);
    }

    [TestMethod]
    public void NoBudgetMeansNoStretch()
    {
        var s = new ProbeScheduler([new ProbeSchedule("a", 2)]);
        var got = Steps(s, 0, 10);
        CollectionAssert.AreEqual(new long[] { 0, 2, 4, 6, 8 }, got);
        Assert.AreEqual(1.0, s.Stretch);
    }

    [TestMethod]
    public void InvalidSchedulesAreRejected()
    {
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new ProbeScheduler([new ProbeSchedule("a", 1)], 1.0));
        Assert.ThrowsExactly<ArgumentException>(() => new ProbeScheduler([new ProbeSchedule("a", 1, [new ProbeWindow(5, 5)])]));
    }
}
