using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Harness.Host.Matrix;

namespace Harness.Host.Telemetry;

/// <summary>
/// The OpenTelemetry instruments of the harness (Meter "Harness"), exported in Prometheus format at /metrics.
/// Gauges are observable: they report the latest value of every run this process knows (running or finished
/// in this process), labelled with bounded sets — matrix, run (one per cell), optimizer, model.
/// Every probe metric becomes its own gauge <c>harness_&lt;metric&gt;</c> (e.g. harness_sharpness).
/// </summary>
public sealed class HarnessMetrics : IDisposable
{
    public const string MeterName = "Harness";

    private readonly object _gate = new();
    private readonly ConcurrentDictionary<(string Matrix, string Run), RunGauges> _runs = new();
    private readonly ConcurrentDictionary<string, byte> _probeMetrics = new();
    private readonly Timer _pruner;
    private Generation _current;
    private bool _expiredSinceRotation;
    private bool _disposed;

    /// <summary>Bucket bounds of the duration histograms, in seconds. Without them OpenTelemetry's defaults (0, 5, 10, 25 …
    /// 10000, meant for milliseconds) put every step of a typical run into the first bucket.</summary>
    private static readonly InstrumentAdvice<double> SecondsBuckets = new()
    {
        HistogramBucketBoundaries = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
    };

    /// <summary>Names of the fixed (non-probe) gauges, as instruments; Prometheus adds nothing to them.</summary>
    public static readonly IReadOnlyDictionary<string, string> FixedGauges = new Dictionary<string, string>
    {
        ["harness.train_loss"] = "training loss on the step's batch, before the update",
        ["harness.grad_norm"] = "‖g‖₂ on the step's batch",
        ["harness.learning_rate"] = "current learning rate η_t",
        ["harness.stability_threshold"] = "the optimizer's stability threshold at η_t",
        ["harness.run_progress"] = "fraction of the run's steps done (0..1)",
        ["harness.run_status"] = "1 for the run's current status label (running, completed, diverged, failed, interrupted)",
        ["harness.run_info"] = "1, labelled with the run's swept hyperparameters and seeds and a short label 'config' (e.g. adam lr=0.0003)",
    };

    /// <param name="endedRunRetention">How long an ended run keeps its series (a few scrapes), so a long-lived service's
    /// series stay bounded by the running runs plus the runs that ended in the last one or two retention periods.</param>
    public HarnessMetrics(TimeSpan? endedRunRetention = null)
    {
        EndedRunRetention = endedRunRetention ?? DefaultRetention;
        if (EndedRunRetention < TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(endedRunRetention), "the retention must be >= 0");
        _current = new Generation(this, 0);
        var period = TimeSpan.FromTicks(Math.Clamp(EndedRunRetention.Ticks / 2, TimeSpan.FromMilliseconds(250).Ticks, TimeSpan.FromSeconds(30).Ticks));
        _pruner = new Timer(_ => Prune(), null, period, period);
    }

    public static readonly TimeSpan DefaultRetention = TimeSpan.FromMinutes(10);

    /// <summary>How long an ended run keeps reporting its last values.</summary>
    public TimeSpan EndedRunRetention { get; }

    /// <summary>Makes the exporting SDK collect (MeterProvider.ForceFlush), so it drops the streams of a disposed meter.</summary>
    public Action? CollectRetired { get; set; }

    /// <summary>Runs whose series /metrics shows now (running, and ended within the retention).</summary>
    public int ReportedRuns => _runs.Count;

    /// <summary>Starts reporting a run; <paramref name="probeMetrics"/> are the probe metric names it will emit. A run is
    /// keyed by matrix and run id: two matrices with the same configuration share run ids.</summary>
    public RunGauges StartRun(RunCell cell, IEnumerable<string> probeMetrics)
    {
        var gauges = new RunGauges(cell);
        _runs[(cell.MatrixName, cell.RunId)] = gauges;
        foreach (var metric in probeMetrics)
            if (_probeMetrics.TryAdd(metric, 0))
                lock (_gate) _current.AddProbeGauge(metric);
        return gauges;
    }

    public void RecordStep(RunGauges run, double seconds)
    {
        Interlocked.Increment(ref run.Steps);
        _current.StepDuration.Record(seconds, run.Tags);
    }

    public void RecordProbe(RunGauges run, string probe, double seconds)
    {
        var tags = new KeyValuePair<string, object?>[run.Tags.Length + 1];
        run.Tags.CopyTo(tags, 0);
        tags[^1] = new("probe", probe);
        _current.ProbeDuration.Record(seconds, tags);
    }

    public void EndRun(RunGauges run, string status)
    {
        run.Status = status;
        run.EndedUtc = DateTime.UtcNow;
    }

    /// <summary>Drops the runs that ended more than the retention ago. OpenTelemetry keeps every series it has seen for
    /// as long as its instrument lives (cumulative temporality), so once runs were dropped the instruments are
    /// replaced by new ones: the observable ones report from the runs' state again at once; the duration histograms of
    /// the runs still reported restart from zero (a counter reset, which rate() and histogram_quantile() handle).</summary>
    public void Prune()
    {
        var cutoff = DateTime.UtcNow - EndedRunRetention;
        foreach (var (key, run) in _runs)
            if (run.EndedUtc is { } ended && ended <= cutoff && _runs.TryRemove(new KeyValuePair<(string, string), RunGauges>(key, run)))
                _expiredSinceRotation = true;
        lock (_gate)
        {
            if (!_expiredSinceRotation || _disposed) return;
            _expiredSinceRotation = false;
            var old = _current;
            old.Meter.Dispose();
            // The SDK forgets a disposed meter's streams at its next collection; a new instrument of the same meter
            // name, version and instrument name would join the old stream instead (and keep all its series). So every
            // generation has its own meter version (otel_scope_version 1.0.0, 1.0.1, …).
            try { CollectRetired?.Invoke(); } catch (Exception) { /* an exporter failing here loses nothing but this rotation */ }
            _current = new Generation(this, old.Number + 1);
        }
    }

    private IEnumerable<RunGauges> Reported() => _runs.Values;

    private IEnumerable<Measurement<double>> Observe(Func<RunGauges, double> value)
    {
        foreach (var run in Reported())
        {
            double v = value(run);
            if (!double.IsNaN(v)) yield return new Measurement<double>(v, run.Tags);
        }
    }

    private IEnumerable<Measurement<double>> ObserveStatus()
    {
        foreach (var run in Reported())
            yield return new Measurement<double>(1, run.Tags.Append(new("status", run.Status)).ToArray());
    }

    private IEnumerable<Measurement<long>> ObserveSteps()
    {
        foreach (var run in Reported())
            yield return new Measurement<long>(Interlocked.Read(ref run.Steps), run.Tags);
    }

    private IEnumerable<Measurement<long>> ObserveEnded()
    {
        foreach (var run in Reported())
            if (run.EndedUtc is not null) yield return new Measurement<long>(1, run.Tags.Append(new("status", run.Status)).ToArray());
    }

    public void Dispose()
    {
        _pruner.Dispose();
        lock (_gate) { _disposed = true; _current.Meter.Dispose(); }
    }

    /// <summary>One set of instruments on one Meter; replaced as a whole by <see cref="Prune"/>.</summary>
    private sealed class Generation
    {
        private readonly HarnessMetrics _owner;
        public int Number { get; }
        public Meter Meter { get; }
        public Histogram<double> StepDuration { get; }
        public Histogram<double> ProbeDuration { get; }

        public Generation(HarnessMetrics owner, int number)
        {
            _owner = owner;
            Number = number;
            Meter = new Meter(MeterName, $"1.0.{number}");
            var m = Meter;
            m.CreateObservableGauge("harness.train_loss", () => owner.Observe(r => r.Loss), description: FixedGauges["harness.train_loss"]);
            m.CreateObservableGauge("harness.grad_norm", () => owner.Observe(r => r.GradNorm), description: FixedGauges["harness.grad_norm"]);
            m.CreateObservableGauge("harness.learning_rate", () => owner.Observe(r => r.LearningRate), description: FixedGauges["harness.learning_rate"]);
            m.CreateObservableGauge("harness.stability_threshold", () => owner.Observe(r => r.Threshold), description: FixedGauges["harness.stability_threshold"]);
            m.CreateObservableGauge("harness.run_progress", () => owner.Observe(r => r.Progress), description: FixedGauges["harness.run_progress"]);
            m.CreateObservableGauge("harness.run_status", owner.ObserveStatus, description: FixedGauges["harness.run_status"]);
            m.CreateObservableGauge("harness.run_info", () => owner.Reported().Select(r => new Measurement<double>(1, r.InfoTags)),
                description: FixedGauges["harness.run_info"]);
            m.CreateObservableCounter("harness.steps", owner.ObserveSteps, description: "optimizer steps taken");
            m.CreateObservableCounter("harness.runs_ended", owner.ObserveEnded, description: "runs that ended, by status");
            StepDuration = m.CreateHistogram<double>("harness.step.duration", unit: "s", description: "wall time of one optimizer step (gradient + update)",
                tags: null, advice: SecondsBuckets);
            ProbeDuration = m.CreateHistogram<double>("harness.probe.duration", unit: "s", description: "wall time of one probe measurement",
                tags: null, advice: SecondsBuckets);
            foreach (var metric in owner._probeMetrics.Keys) AddProbeGauge(metric);
        }

        private readonly HashSet<string> _probes = [];

        public void AddProbeGauge(string metric)
        {
            if (_probes.Add(metric))
                Meter.CreateObservableGauge("harness." + metric,
                () => _owner.Observe(r => r.Probe.TryGetValue(metric, out var v) ? v : double.NaN), description: $"probe metric {metric}");
        }
    }
}

/// <summary>The latest values of one run, read by the observable gauges (written by the run's thread).</summary>
public sealed class RunGauges(RunCell cell)
{
    public KeyValuePair<string, object?>[] Tags { get; } =
    [
        new("matrix", cell.MatrixName), new("run", cell.RunId), new("optimizer", cell.Optimizer), new("model", cell.Model),
    ];
    /// <summary>The tags of harness_run_info: <see cref="Tags"/>, <c>config</c> (the swept-values label) and one label per
    /// swept hyperparameter or seed of the matrix (optimizer_lr, model_width, tuner_sigma, seed_init, …).</summary>
    public KeyValuePair<string, object?>[] InfoTags { get; } = RunInfo(cell);
    public volatile string Status = "running";
    public DateTime? EndedUtc;
    public long Steps;
    public double Loss = double.NaN, GradNorm = double.NaN, LearningRate = double.NaN, Threshold = double.NaN, Progress;
    public readonly ConcurrentDictionary<string, double> Probe = new();

    private static KeyValuePair<string, object?>[] RunInfo(RunCell cell)
    {
        var swept = SweptParameters.Of(cell.Matrix);
        return
        [
            new("matrix", cell.MatrixName), new("run", cell.RunId), new("optimizer", cell.Optimizer), new("model", cell.Model),
            new("config", swept.Label(cell)),
            .. swept.For(cell).Select(kv => new KeyValuePair<string, object?>(SweptParameters.LabelName(kv.Key), kv.Value)),
        ];
    }
}
