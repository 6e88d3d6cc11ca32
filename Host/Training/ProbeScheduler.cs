namespace Harness.Host.Training;

/// <summary>A dense window of a probe's schedule: measured every <see cref="Every"/> steps (default every step) for
/// <see cref="From"/> ≤ t &lt; <see cref="To"/>.</summary>
public sealed record ProbeWindow(long From, long To, int Every = 1);

/// <summary>Event-triggered bursts: after an event at step t the probe is measured every step for t+1 … t+Steps.
/// Events: an upward crossing (any probe metric named <c>*_crossing</c> reported ≥ 1, e.g. edge_crossing) and a loss
/// spike (training loss &gt; <see cref="LossSpikeFactor"/> × the exponential moving average (decay 0.9) of the earlier
/// training losses).</summary>
public sealed record ProbeBurst(int Steps, bool OnCrossing = true, bool OnLossSpike = true, double LossSpikeFactor = 2.0);

/// <summary>When one probe runs: every <see cref="Every"/> steps, densely in <see cref="Windows"/>, and in bursts.</summary>
public sealed record ProbeSchedule(string Name, int Every, IReadOnlyList<ProbeWindow>? Windows = null, ProbeBurst? Burst = null);

[Flags]
public enum ProbeEvents { None = 0, Crossing = 1, LossSpike = 2 }

/// <summary>Everything a <see cref="ProbeScheduler"/> carries from one step to the next (saved with a run's checkpoint,
/// so a resumed run measures its probes at the steps an uninterrupted run would).</summary>
public sealed record ProbeSchedulerState(
    long?[] Last, long[] BurstUntil, double?[] Cost, long[] Postponed, int[] Measurements,
    double ProbeSeconds, double OtherSeconds, double? OtherPerStep, double? LossEma, ProbeEvents Pending, double Stretch);

/// <summary>
/// Decides which probes run at each step and keeps the probe-time accounting.
/// <para>Schedule. Probe i has a base interval k_i(t): its <c>every</c>, the <c>every</c> of any dense window containing
/// t if smaller, and 1 during a burst. It is due at step t when it never ran, or t − last_i ≥ ⌈k_i(t)·s⌉ where s ≥ 1
/// is the stretch. Without a budget s = 1 and a plain <c>every: k</c> gives exactly the steps 0, k, 2k, …
/// The final step (the extra trace row after the last update) measures every probe.</para>
/// <para>Budget B (fraction of wall time). Wall time is split into probe seconds (reported per measurement) and the
/// rest of each iteration (the step's wall time minus its probe seconds). Two mechanisms keep probe time ≤ B:
/// (1) the stretch s = max(1, R (1 − B)/(B ô)), where R = Σ_i ĉ_i / k_i is the probe seconds per step the base
/// schedule asks for (ĉ_i = moving average of probe i's measured seconds) and ô the moving average of the
/// non-probe seconds per step: the stretched schedule plans a fraction of at most B; (2) a gate on the cumulative
/// account: due probes are taken most overdue first, each only while (probe seconds + its predicted cost) ≤
/// B × (all seconds + its predicted cost); the first that does not fit and everything less overdue waits for the
/// next step (so a cheap probe cannot starve an expensive one). A waiting probe stays due: it runs as soon as the
/// account allows — intervals stretch, no probe is dropped. A probe whose cost is not known yet (its first
/// measurement) is not gated, and the final-step measurement is not gated; both are counted.</para>
/// </summary>
public sealed class ProbeScheduler
{
    /// <summary>Probe metrics whose name ends with this are events; a value ≥ 1 is an upward crossing.</summary>
    public const string CrossingSuffix = "_crossing";
    private const double CostDecay = 0.7;
    private const double LossDecay = 0.9;

    private readonly ProbeSchedule[] _probes;
    private readonly long?[] _last;
    private readonly long[] _burstUntil;
    private readonly double?[] _cost;
    private readonly long[] _postponed;
    private readonly int[] _measurements;
    private double _probeSeconds, _otherSeconds, _probeSecondsThisStep;
    private double? _otherPerStep;
    private double? _lossEma;
    private ProbeEvents _pending;

    public ProbeScheduler(IReadOnlyList<ProbeSchedule> probes, double? budget = null)
    {
        if (budget is { } b && !(b > 0 && b < 1)) throw new ArgumentOutOfRangeException(nameof(budget), "the probe budget is a fraction in (0, 1)");
        foreach (var p in probes)
        {
            if (p.Every < 1) throw new ArgumentException($"probe {p.Name}: every must be ≥ 1");
            foreach (var w in p.Windows ?? [])
                if (w.Every < 1 || w.To <= w.From) throw new ArgumentException($"probe {p.Name}: window [{w.From}, {w.To}) every {w.Every} is empty or invalid");
            if (p.Burst is { Steps: < 1 }) throw new ArgumentException($"probe {p.Name}: burst steps must be ≥ 1");
        }
        _probes = probes.ToArray();
        _last = new long?[_probes.Length];
        _burstUntil = Enumerable.Repeat(-1L, _probes.Length).ToArray();
        _cost = new double?[_probes.Length];
        _postponed = new long[_probes.Length];
        _measurements = new int[_probes.Length];
        Budget = budget;
    }

    public IReadOnlyList<ProbeSchedule> Probes => _probes;
    public double? Budget { get; }
    /// <summary>Current stretch factor s ≥ 1 applied to every base interval (1 without a budget).</summary>
    public double Stretch { get; private set; } = 1;
    /// <summary>Seconds spent in probes so far (as reported to <see cref="Measured"/>).</summary>
    public double ProbeSeconds => _probeSeconds;
    /// <summary>All accounted wall seconds: probe seconds plus the rest of every ended step.</summary>
    public double TotalSeconds => _probeSeconds + _otherSeconds;
    /// <summary>Probe seconds / all accounted seconds (0 before anything was accounted).</summary>
    public double Fraction => TotalSeconds > 0 ? _probeSeconds / TotalSeconds : 0;
    /// <summary>Steps on which probe i was due but waited for the budget.</summary>
    public long Postponed(int i) => _postponed[i];
    public int Measurements(int i) => _measurements[i];
    public long? LastMeasured(int i) => _last[i];
    /// <summary>The moving-average seconds of one measurement of probe i, or null before its first.</summary>
    public double? EstimatedCost(int i) => _cost[i];

    /// <summary>The unstretched interval of probe i at step t (every, dense window, burst).</summary>
    public int BaseInterval(int i, long t)
    {
        var p = _probes[i];
        int k = p.Every;
        foreach (var w in p.Windows ?? [])
            if (t >= w.From && t < w.To) k = Math.Min(k, w.Every);
        if (t <= _burstUntil[i]) k = 1;
        return k;
    }

    /// <summary>The interval probe i is held to at step t: ⌈base × stretch⌉.</summary>
    public long Interval(int i, long t)
    {
        int k = BaseInterval(i, t);
        return Stretch <= 1 ? k : (long)Math.Ceiling(k * Stretch - 1e-9);
    }

    public bool InBurst(int i, long t) => t <= _burstUntil[i];

    public ProbeSchedulerState ExportState() => new(
        (long?[])_last.Clone(), (long[])_burstUntil.Clone(), (double?[])_cost.Clone(), (long[])_postponed.Clone(), (int[])_measurements.Clone(),
        _probeSeconds, _otherSeconds, _otherPerStep, _lossEma, _pending, Stretch);

    /// <summary>Restores a state exported by a scheduler of the same probes.</summary>
    public void ImportState(ProbeSchedulerState state)
    {
        int n = _probes.Length;
        if (state.Last.Length != n || state.BurstUntil.Length != n || state.Cost.Length != n || state.Postponed.Length != n || state.Measurements.Length != n)
            throw new ArgumentException($"the scheduler state is for {state.Last.Length} probes, this scheduler has {n}");
        state.Last.CopyTo(_last, 0);
        state.BurstUntil.CopyTo(_burstUntil, 0);
        state.Cost.CopyTo(_cost, 0);
        state.Postponed.CopyTo(_postponed, 0);
        state.Measurements.CopyTo(_measurements, 0);
        _probeSeconds = state.ProbeSeconds;
        _otherSeconds = state.OtherSeconds;
        _probeSecondsThisStep = 0;
        _otherPerStep = state.OtherPerStep;
        _lossEma = state.LossEma;
        _pending = state.Pending;
        Stretch = state.Stretch;
    }

    /// <summary>The probes to measure at step t, in the order they were given. <paramref name="last"/> = the final
    /// row of the run (every probe is measured).</summary>
    public IReadOnlyList<int> Due(long t, bool last = false)
    {
        var candidates = new List<int>();
        for (int i = 0; i < _probes.Length; i++)
            if (last || _last[i] is not { } l || t - l >= Interval(i, t)) candidates.Add(i);
        if (last || Budget is not { } budget || candidates.Count == 0) return candidates;

        double Overdue(int i) => _last[i] is { } l ? (double)(t - l) / Interval(i, t) : double.PositiveInfinity;
        var ordered = candidates.OrderByDescending(Overdue).ThenBy(i => i).ToList();
        var admitted = new List<int>();
        double planned = 0;
        for (int n = 0; n < ordered.Count; n++)
        {
            int i = ordered[n];
            if (_cost[i] is not { } c) { admitted.Add(i); continue; }
            double probe = _probeSeconds + planned + c;
            if (probe <= budget * (TotalSeconds + planned + c)) { admitted.Add(i); planned += c; continue; }
            for (int m = n; m < ordered.Count; m++)
                if (_cost[ordered[m]] is not null) _postponed[ordered[m]]++;
                else admitted.Add(ordered[m]);
            break;
        }
        admitted.Sort();
        return admitted;
    }

    /// <summary>Accounts one measurement of probe i at step t that took <paramref name="seconds"/>; metrics named
    /// <c>*_crossing</c> with a value ≥ 1 raise a crossing event.</summary>
    public void Measured(int i, long t, double seconds, IReadOnlyDictionary<string, double>? values = null)
    {
        if (seconds < 0 || double.IsNaN(seconds)) throw new ArgumentOutOfRangeException(nameof(seconds));
        _last[i] = t;
        _measurements[i]++;
        _probeSeconds += seconds;
        _probeSecondsThisStep += seconds;
        _cost[i] = _cost[i] is { } c ? CostDecay * c + (1 - CostDecay) * seconds : seconds;
        if (values is null) return;
        foreach (var (name, value) in values)
            if (name.EndsWith(CrossingSuffix, StringComparison.Ordinal) && value >= 1) _pending |= ProbeEvents.Crossing;
    }

    /// <summary>Ends step t: <paramref name="wallSeconds"/> is the wall time of the whole iteration including its
    /// probes; <paramref name="loss"/> the training loss of the step (for loss-spike events). Starts the bursts the
    /// step's events trigger, updates the stretch, and returns the events.</summary>
    public ProbeEvents StepEnded(long t, double wallSeconds, double loss)
    {
        double other = Math.Max(0, wallSeconds - _probeSecondsThisStep);
        _probeSecondsThisStep = 0;
        _otherSeconds += other;
        _otherPerStep = _otherPerStep is { } o ? CostDecay * o + (1 - CostDecay) * other : other;

        var events = _pending;
        _pending = ProbeEvents.None;
        for (int i = 0; i < _probes.Length; i++)
        {
            if (_probes[i].Burst is not { } burst) continue;
            bool spike = burst.OnLossSpike && _lossEma is { } ema && double.IsFinite(loss) && loss > burst.LossSpikeFactor * ema;
            if (spike) events |= ProbeEvents.LossSpike;
            if (spike || (burst.OnCrossing && events.HasFlag(ProbeEvents.Crossing)))
                _burstUntil[i] = Math.Max(_burstUntil[i], t + burst.Steps);
        }
        if (double.IsFinite(loss)) _lossEma = _lossEma is { } e ? LossDecay * e + (1 - LossDecay) * loss : loss;

        if (Budget is { } b && _otherPerStep is { } per && per > 0)
        {
            double demand = 0;
            for (int i = 0; i < _probes.Length; i++)
                if (_cost[i] is { } c) demand += c / BaseInterval(i, t + 1);
            Stretch = Math.Max(1, demand * (1 - b) / (b * per));
        }
        return events;
    }
}
