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

    private readonly Meter _meter = new(MeterName, "1.0.0");
    private readonly ConcurrentDictionary<string, RunGauges> _runs = new();
    private readonly ConcurrentDictionary<string, ObservableGauge<double>> _probeGauges = new();
    private readonly Counter<long> _steps;
    private readonly Histogram<double> _stepDuration;
    private readonly Histogram<double> _probeDuration;
    private readonly Counter<long> _runsEnded;

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

    public HarnessMetrics()
    {
        _meter.CreateObservableGauge("harness.train_loss", () => Observe(r => r.Loss), description: FixedGauges["harness.train_loss"]);
        _meter.CreateObservableGauge("harness.grad_norm", () => Observe(r => r.GradNorm), description: FixedGauges["harness.grad_norm"]);
        _meter.CreateObservableGauge("harness.learning_rate", () => Observe(r => r.LearningRate), description: FixedGauges["harness.learning_rate"]);
        _meter.CreateObservableGauge("harness.stability_threshold", () => Observe(r => r.Threshold), description: FixedGauges["harness.stability_threshold"]);
        _meter.CreateObservableGauge("harness.run_progress", () => Observe(r => r.Progress), description: FixedGauges["harness.run_progress"]);
        _meter.CreateObservableGauge("harness.run_status", ObserveStatus, description: FixedGauges["harness.run_status"]);
        _meter.CreateObservableGauge("harness.run_info", () => Reported().Select(r => new Measurement<double>(1, r.InfoTags)),
            description: FixedGauges["harness.run_info"]);
        _steps = _meter.CreateCounter<long>("harness.steps", description: "optimizer steps taken");
        _runsEnded = _meter.CreateCounter<long>("harness.runs_ended", description: "runs that ended, by status");
        _stepDuration = _meter.CreateHistogram<double>("harness.step.duration", unit: "s", description: "wall time of one optimizer step (gradient + update)",
            tags: null, advice: SecondsBuckets);
        _probeDuration = _meter.CreateHistogram<double>("harness.probe.duration", unit: "s", description: "wall time of one probe measurement",
            tags: null, advice: SecondsBuckets);
    }

    /// <summary>Starts reporting a run; <paramref name="probeMetrics"/> are the probe metric names it will emit.</summary>
    public RunGauges StartRun(RunCell cell, IEnumerable<string> probeMetrics)
    {
        var gauges = new RunGauges(cell);
        _runs[cell.RunId] = gauges;
        foreach (var metric in probeMetrics)
            _probeGauges.GetOrAdd(metric, m => _meter.CreateObservableGauge("harness." + m,
                () => Observe(r => r.Probe.TryGetValue(m, out var v) ? v : double.NaN), description: $"probe metric {m}"));
        return gauges;
    }

    public void RecordStep(RunGauges run, double seconds)
    {
        _steps.Add(1, run.Tags);
        _stepDuration.Record(seconds, run.Tags);
    }

    public void RecordProbe(RunGauges run, string probe, double seconds)
    {
        var tags = new KeyValuePair<string, object?>[run.Tags.Length + 1];
        run.Tags.CopyTo(tags, 0);
        tags[^1] = new("probe", probe);
        _probeDuration.Record(seconds, tags);
    }

    /// <summary>How long an ended run keeps reporting its last values (a few scrapes), so a long-lived service's
    /// series stay bounded by the runs of the last minutes plus the running ones.</summary>
    public TimeSpan EndedRunRetention { get; init; } = TimeSpan.FromMinutes(10);

    public void EndRun(RunGauges run, string status)
    {
        run.Status = status;
        run.EndedUtc = DateTime.UtcNow;
        _runsEnded.Add(1, run.Tags.Append(new("status", status)).ToArray());
    }

    private IEnumerable<RunGauges> Reported()
    {
        var cutoff = DateTime.UtcNow - EndedRunRetention;
        foreach (var (id, run) in _runs)
        {
            if (run.EndedUtc is { } ended && ended < cutoff) { _runs.TryRemove(id, out _); continue; }
            yield return run;
        }
    }

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

    public void Dispose() => _meter.Dispose();
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
