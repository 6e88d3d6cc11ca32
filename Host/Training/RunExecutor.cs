using System.Diagnostics;
using Harness.Abstractions;
using Harness.Abstractions.Numerics;
using Harness.Host.Matrix;
using Harness.Host.Output;
using Harness.Host.Plugins;
using Harness.Host.Telemetry;
using Microsoft.Extensions.Logging;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Host.Training;

/// <summary>Receives progress of runs (terminal display, logs, the service's run table).</summary>
public interface IRunProgress
{
    void RunStarted(RunCell cell, long steps) { }
    void RunStep(RunCell cell, long step, double loss, IReadOnlyDictionary<string, double> probes) { }
    /// <summary>Everything measured at one step (sent by worker processes to the host, which updates the metrics).</summary>
    void RunStepReport(RunCell cell, StepReport report) { }
    void RunEnded(RunCell cell, RunManifest manifest) { }
    /// <summary>The cell had finished in an earlier invocation and is not run again.</summary>
    void RunSkipped(RunCell cell, RunManifest manifest) { }
}

/// <summary>One step of a run as reported to <see cref="IRunProgress.RunStepReport"/>. StepSeconds is null for the
/// final row (no update); ProbeSeconds holds the wall time of each probe measured at this step.</summary>
public sealed record StepReport(long Step, long Steps, double Loss, double GradNorm, double LearningRate, double Threshold,
    double? StepSeconds, IReadOnlyDictionary<string, double> Probes, IReadOnlyDictionary<string, double> ProbeSeconds);

/// <summary>
/// Executes one cell in this process: builds the model, optimizer and probes from their plugins, trains, measures
/// probes on schedule on the fixed probe set, streams rows to trace.parquet and values to the metrics, and writes
/// manifest.json at start and end. A run that produces NaN/Inf or whose loss exceeds divergence_factor × its
/// initial loss ends as <c>diverged</c>; an exception ends it as <c>failed</c>; neither escapes.
/// </summary>
public sealed class RunExecutor(PluginCatalog plugins, HarnessMetrics metrics, ILogger logger)
{
    /// <summary>Fixed trace columns, before the probe columns (see README, "Parquet schema").</summary>
    public static readonly string[] FixedColumns = ["time_s", "lr", "threshold", "train_loss", "grad_norm", "step_seconds"];

    /// <summary>Called with the name of each start-up phase as it ends ("model and data", "optimizer, probes and
    /// trace"): workers log where their time to the first step goes.</summary>
    public Action<string>? Phase { get; init; }

    // Set by Execute for Train (kept out of Train's signature): the run folder and the checkpoint to resume from.
    private string _runDir = "";
    private RunCheckpoint? _resume;

    public RunManifest Execute(RunCell cell, string runDir, IRunProgress progress, CancellationToken ct)
    {
        Directory.CreateDirectory(runDir);
        string manifestPath = Path.Combine(runDir, "manifest.json");
        string tracePath = Path.Combine(runDir, "trace.parquet");
        _runDir = runDir;
        // Parts a killed attempt left become its trace.parquet first (kept aside below like any previous attempt).
        try { TraceWriter.Recover(tracePath); }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
        {
            logger.LogWarning("run {Run}: the previous attempt's trace parts in {Parts} could not be compacted ({Message}); they are kept aside",
                cell.RunId, TraceWriter.PartsFolder(tracePath), e.Message);
            KeepPartsAside(runDir, tracePath);
        }
        _resume = RunCheckpoint.TryLoad(runDir, out var discarded);
        if (discarded is not null) logger.LogWarning("run {Run}: checkpoint discarded, the run starts over: {Reason}", cell.RunId, discarded);
        KeepPreviousAttempt(runDir, tracePath);

        var spec = cell.Matrix;
        var device = ResolveDevice(spec.Device);
        var dtype = spec.DType == "float64" ? ScalarType.Float64 : ScalarType.Float32;
        var optPlugin = plugins.Optimizers[cell.Optimizer];
        var modelPlugin = plugins.Models[cell.Model];
        var manifest = new RunManifest
        {
            RunId = cell.RunId, Matrix = cell.MatrixName, Label = cell.Label, Optimizer = cell.Optimizer, Model = cell.Model,
            InitSeed = cell.InitSeed, DataSeed = cell.DataSeed, Configuration = cell.Configuration(),
            Device = device.type.ToString().ToLowerInvariant(), DType = spec.DType, Threads = torch.get_num_threads(),
            TorchSharpVersion = typeof(torch).Assembly.GetName().Version?.ToString() ?? "",
            LibTorchVersion = LibTorchVersion(),
            Plugins =
            [
                Use("optimizer", cell.Optimizer, optPlugin.Origin),
                Use("model", cell.Model, modelPlugin.Origin),
                .. cell.Probes.Select(p => p.Name).Distinct().Select(n => Use("probe", n, plugins.Probes[n].Origin)),
                .. cell.Tuner is { } tunerName ? [Use("tuner", tunerName, plugins.Tuners[tunerName].Origin)] : Array.Empty<PluginUse>(),
            ],
        };
        manifest.Save(manifestPath);
        progress.RunStarted(cell, spec.Training.Steps);
        var clock = Stopwatch.StartNew();
        RunGauges? gauges = null;
        try
        {
            using var model = modelPlugin.Plugin.Create(new ModelContext(
                new HyperparameterValues(modelPlugin.Plugin.Hyperparameters, cell.ModelHyperparameters),
                cell.InitSeed, cell.DataSeed, dtype, device, spec.DataDirectory));
            manifest.ParameterCount = model.Parameters.Sum(p => p.Tensor.numel());
            Phase?.Invoke("model and data");
            using var optimizer = WithTuner(cell, optPlugin.Plugin.Create(model.Parameters.Select(p => p.Tensor).ToList(),
                new HyperparameterValues(optPlugin.Plugin.Hyperparameters, cell.OptimizerHyperparameters)), out var tunerColumns);
            if (cell.PreconditionerFrom is { } source) ImportPreconditioner(optimizer, model, source, runDir);
            manifest.RecordThresholdRule(optimizer);
            var probes = cell.Probes.Select(p =>
            {
                var plugin = plugins.Probes[p.Name].Plugin;
                var values = new HyperparameterValues(plugin.Hyperparameters, p.Hyperparameters);
                // A second instance of a probe (probes[i].as) writes its metrics as <as>_<metric>.
                var declared = plugin.MetricsFor(values, model.Parameters).Select(m => m with { Name = p.Column(m.Name) }).ToList();
                return (spec: p, metrics: (IReadOnlyList<MetricSpec>)declared, probe: plugin.Create(values));
            }).ToList();
            try
            {
                var costColumns = ProbeCostColumns(probes.Select(p => p.spec.Id)).ToList();
                var columns = FixedColumns
                    .Concat(probes.SelectMany(p => p.metrics.Select(m => m.Name)))
                    .Concat(costColumns)
                    .Concat(tunerColumns.Select(m => m.Name))
                    .ToList();
                gauges = metrics.StartRun(cell, probes.SelectMany(p => p.metrics.Where(m => !m.TraceOnly).Select(m => m.Name)).Concat(costColumns)
                    .Concat(tunerColumns.Where(m => !m.TraceOnly).Select(m => m.Name)));
                var types = probes.SelectMany(p => p.metrics).Concat(tunerColumns).ToDictionary(m => m.Name, m => m.Type, StringComparer.Ordinal);
                using var trace = new TraceWriter(tracePath, new TraceSchema(cell.MatrixName, cell.RunId,
                    columns.Select(c => new TraceColumn(c, types.TryGetValue(c, out var t) ? t : ProbeCostType(c))).ToList()));
                // Resume from a checkpoint: the new trace starts with the old rows of the steps before it.
                if (_resume is { } cp && !CopyPreviousRows(cell, runDir, trace, cp.Step, manifest))
                {
                    logger.LogWarning("run {Run}: checkpoint at step {Step} unusable (no earlier attempt's trace holds its rows); starting over", cell.RunId, cp.Step);
                    _resume = null;
                    RunCheckpoint.Delete(runDir);
                }
                Phase?.Invoke("optimizer, probes and trace");
                Train(cell, model, optimizer, probes, trace, columns, manifest, manifestPath, gauges, progress, clock, ct);
            }
            finally
            {
                foreach (var p in probes) p.probe.Dispose();
            }
        }
        catch (OperationCanceledException)
        {
            manifest.Status = RunStatus.Interrupted;
            manifest.Reason = $"interrupted at step {manifest.StepsCompleted} (signal or cancellation); running the matrix again restarts this run";
        }
        catch (Exception e)
        {
            manifest.Status = RunStatus.Failed;
            manifest.Reason = $"{e.GetType().Name}: {e.Message}";
            logger.LogError(e, "run {Run} ({Label}) failed", cell.RunId, cell.Label);
        }
        if (manifest.IsFinished) RunCheckpoint.Delete(runDir);
        manifest.FinishedUtc = DateTime.UtcNow;
        manifest.WallSeconds = clock.Elapsed.TotalSeconds;
        manifest.Save(manifestPath);
        if (gauges is not null) metrics.EndRun(gauges, manifest.Status.ToString().ToLowerInvariant());
        progress.RunEnded(cell, manifest);
        return manifest;
    }

    /// <summary>Column of η_t·λ1 of a tuned run, at steps where the sharpness probe measured λ1 (published on the
    /// blackboard as <see cref="ProbeBlackboard.HessianSpectrum"/>) at θ_t.</summary>
    public const string TunerEtaLambda1 = "tuner_eta_lambda1";
    /// <summary>Column of η_t·λ1(P^-1/2 H P^-1/2) of a tuned run, at steps where the precond_sharpness probe ran
    /// (<see cref="ProbeBlackboard.PreconditionedSpectrum"/>; P is the base's P of its most recent update).</summary>
    public const string TunerEtaPrecondLambda1 = "tuner_eta_precond_lambda1";

    /// <summary>Wraps the optimizer in a <see cref="TunedOptimizer"/> when the cell names a tuner; the tuner's internals
    /// become trace columns tuner_&lt;metric&gt; (plus <see cref="TunerEtaLambda1"/>).</summary>
    private IOptimizer WithTuner(RunCell cell, IOptimizer optimizer, out IReadOnlyList<MetricSpec> columns)
    {
        columns = [];
        if (cell.Tuner is not { } name) return optimizer;
        if (optimizer is not IDirectionalOptimizer directional)
        {
            optimizer.Dispose();
            throw new InvalidOperationException($"optimizer '{cell.Optimizer}' does not implement IDirectionalOptimizer, so tuner '{name}' cannot wrap it");
        }
        var plugin = plugins.Tuners[name].Plugin;
        var values = new HyperparameterValues(plugin.Hyperparameters, cell.TunerHyperparameters);
        columns = [.. plugin.MetricsFor(values).Select(m => m with { Name = "tuner_" + m.Name }),
                   new MetricSpec(TunerEtaLambda1, "η_t·λ1(H) at steps where the sharpness probe ran"),
                   new MetricSpec(TunerEtaPrecondLambda1, "η_t·λ1(P^-1/2 H P^-1/2) at steps where the precond_sharpness probe ran")];
        return new TunedOptimizer(directional, plugin.Create(values));
    }

    /// <summary>Per probe: seconds, Hessian-vector products, gradient evaluations of its measurement and the interval
    /// the scheduler held it to; per run: the probe share of wall time so far, the stretch, and events
    /// (1 upward crossing, 2 loss spike, 3 both). Written to the trace and exported as gauges.</summary>
    public static IEnumerable<string> ProbeCostColumns(IEnumerable<string> probeNames)
    {
        bool any = false;
        foreach (var name in probeNames)
        {
            any = true;
            yield return $"probe_{name}_seconds";
            yield return $"probe_{name}_hvps";
            yield return $"probe_{name}_grad_evals";
            yield return $"probe_{name}_interval";
        }
        if (!any) yield break;
        yield return "probe_time_fraction";
        yield return "probe_stretch";
        yield return "probe_event";
    }

    /// <summary>Counts (HVPs, gradient evaluations, the interval, the event bitmask) are integers; the rest doubles.</summary>
    public static MetricType ProbeCostType(string column) =>
        column == "probe_event" || column.EndsWith("_hvps", StringComparison.Ordinal) || column.EndsWith("_grad_evals", StringComparison.Ordinal)
        || (column.StartsWith("probe_", StringComparison.Ordinal) && column.EndsWith("_interval", StringComparison.Ordinal))
            ? MetricType.Int64 : MetricType.Double;

    private void Train(RunCell cell, IModel model, IOptimizer optimizer,
        List<(ProbeSpec spec, IReadOnlyList<MetricSpec> metrics, IProbe probe)> probes, TraceWriter trace,
        IReadOnlyList<string> columns, RunManifest manifest, string manifestPath, RunGauges gauges, IRunProgress progress,
        Stopwatch clock, CancellationToken ct)
    {
        var spec = cell.Matrix;
        var index = columns.Select((c, i) => (c, i)).ToDictionary(x => x.c, x => x.i);
        var traceOnly = probes.SelectMany(p => p.metrics.Where(m => m.TraceOnly).Select(m => m.Name)).ToHashSet(StringComparer.Ordinal);
        var probeSet = ProbeSet(model.Train, spec.ProbeSetSize, spec.ProbeSetSeed);
        var batches = new BatchSampler(model.Train, spec.Training.BatchSize, cell.DataSeed);
        double? initialLoss = null;
        long steps = spec.Training.Steps;
        var schedule = cell.EffectiveSchedule;
        double baseLr = optimizer.LearningRate;
        var initial = model.Parameters.Select(p => p.Tensor.detach().clone().DetachFromDisposeScope()).ToList();
        List<Tensor>? previousUpdate = null, updateBeforePrevious = null;
        var shared = new Dictionary<string, object>(StringComparer.Ordinal);
        var tuned = optimizer as TunedOptimizer;
        if (tuned is not null) tuned.Shared = shared;
        var scheduler = new ProbeScheduler(probes.Select(p => new ProbeSchedule(p.spec.Id, p.spec.Every, p.spec.Windows, p.spec.Burst)).ToList(),
            spec.Training.ProbeBudget);
        double iterationMark = clock.Elapsed.TotalSeconds;
        // θ_t − θ_{t−1} (and the update before it) only for their consumers: probes and checkpoints.
        bool trackUpdates = probes.Count > 0 || spec.Training.CheckpointEvery > 0;
        using var updates = new UpdateBuffers();
        try
        {
        // Status stays "running" in every periodic save; only the end of the loop decides it.
        var status = RunStatus.Completed;
        string reason = $"ran all {steps} steps";

        long start = 0;
        if (_resume is { } checkpoint)
        {
            previousUpdate = checkpoint.Restore(_runDir, model, optimizer, initial, out updateBeforePrevious);
            if (checkpoint.Scheduler is { } schedulerState) scheduler.ImportState(schedulerState);
            if (checkpoint.ProbeStates(_runDir) is { } probeStates && probeStates.Count == probes.Count)
                for (int i = 0; i < probes.Count; i++)
                {
                    if (probeStates[i] is not { } state) continue;
                    var device = initial[0].device;
                    foreach (var key in state.Tensors.Keys.ToList())
                        if (state.Tensors[key].device != device)
                        {
                            var moved = state.Tensors[key].to(device).DetachFromDisposeScope();
                            state.Tensors[key].Dispose();
                            state.Tensors[key] = moved;
                        }
                    try { if (probes[i].probe is ICheckpointedProbe p) p.ImportState(state, shared); }
                    finally { foreach (var t in state.Tensors.Values) t.Dispose(); }
                }
            initialLoss = checkpoint.InitialLoss;
            start = checkpoint.Step;
            manifest.StepsCompleted = start;
            logger.LogInformation("run {Run}: resuming from the checkpoint at step {Step}", cell.RunId, start);
        }

        // Step t measures at θ_t (before the update of step t); the extra row t = steps holds the final point.
        for (long t = start; t <= steps; t++)
        {
            ct.ThrowIfCancellationRequested();
            bool last = t == steps;
            optimizer.LearningRate = baseLr * schedule.Factor(Math.Min(t, steps - 1));
            using var scope = NewDisposeScope();
            if (cell.SaveStateAt is { } saveAt && saveAt.Contains(t))
                OptimizerStateFile.Capture(cell.Optimizer, optimizer, model.Parameters.Select(p => p.Tensor).ToList(), t, cell.RunId,
                        (System.Text.Json.Nodes.JsonObject?)cell.Configuration()["optimizer"]?["hyperparameters"]?.DeepClone())
                    .Save(Path.Combine(Path.GetDirectoryName(manifestPath)!, RunCell.StateFileName(t)));
            var row = new double?[columns.Count];
            var probeValues = new Dictionary<string, double>();
            var probeSeconds = new Dictionary<string, double>();
            foreach (int pi in scheduler.Due(t, last))
            {
                var (ps, _, probe) = probes[pi];
                var objective = new TorchObjective(model, probeSet);
                var watch = Stopwatch.StartNew();
                IReadOnlyDictionary<string, double> values;
                try
                {
                    values = probe.Measure(new ProbeContext(objective, optimizer, model, t, initial, previousUpdate, shared)
                        { UpdateBeforePrevious = updateBeforePrevious });
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    logger.LogWarning("run {Run}: probe {Probe} failed at step {Step}: {Message}", cell.RunId, ps.Id, t, e.Message);
                    values = new Dictionary<string, double>();
                }
                double seconds = watch.Elapsed.TotalSeconds;
                scheduler.Measured(pi, t, seconds, values);
                foreach (var (column, value) in new[]
                         {
                             ($"probe_{ps.Id}_seconds", seconds), ($"probe_{ps.Id}_hvps", (double)objective.HessianProducts),
                             ($"probe_{ps.Id}_grad_evals", (double)objective.GradientEvaluations), ($"probe_{ps.Id}_interval", (double)scheduler.Interval(pi, t)),
                         })
                {
                    row[index[column]] = value;
                    gauges.Probe[column] = value;
                }
                metrics.RecordProbe(gauges, ps.Id, seconds);
                probeSeconds[ps.Id] = seconds;
                foreach (var (metric, value) in values)
                {
                    string name = ps.Column(metric);
                    if (!index.TryGetValue(name, out int col)) continue;
                    row[col] = value;
                    probeValues[name] = value;
                    if (!traceOnly.Contains(name)) gauges.Probe[name] = value;
                }
            }

            var stepObjective = new TorchObjective(model, last ? model.Train : batches.At(t));
            var stepWatch = Stopwatch.StartNew();
            var eval = stepObjective.Evaluate();
            double gradNorm = ParameterVectors.Norm(eval.Gradient);
            double lr = optimizer.LearningRate;
            double? threshold = StabilityThreshold.Of(optimizer);   // null: no linear threshold (ThresholdRule.None)
            if (!last)
            {
                if (trackUpdates) updates.Snapshot(model);
                optimizer.Step(stepObjective);
                if (tuned is not null) RecordTuner(tuned, t, shared, row, index, gauges, ref lr, ref threshold);
                if (trackUpdates) (previousUpdate, updateBeforePrevious) = updates.Rotate(model, previousUpdate, updateBeforePrevious);
            }
            double stepSeconds = stepWatch.Elapsed.TotalSeconds;

            row[index["time_s"]] = clock.Elapsed.TotalSeconds;
            row[index["lr"]] = lr;
            row[index["threshold"]] = threshold;
            row[index["train_loss"]] = eval.Loss;
            row[index["grad_norm"]] = gradNorm;
            row[index["step_seconds"]] = last ? null : stepSeconds;
            if (probes.Count > 0)
            {
                double now = clock.Elapsed.TotalSeconds;
                var events = scheduler.StepEnded(t, now - iterationMark, eval.Loss);
                iterationMark = now;
                row[index["probe_time_fraction"]] = gauges.Probe["probe_time_fraction"] = scheduler.Fraction;
                row[index["probe_stretch"]] = gauges.Probe["probe_stretch"] = scheduler.Stretch;
                gauges.Probe["probe_event"] = (double)events;
                if (events != ProbeEvents.None) row[index["probe_event"]] = (double)events;
            }
            trace.Append(t, row);
            for (int c = 0; c < columns.Count; c++)
                if (row[c] is { } v && double.IsFinite(v)) manifest.Final[columns[c]] = v;

            gauges.Loss = eval.Loss; gauges.GradNorm = gradNorm; gauges.LearningRate = lr; gauges.Threshold = threshold ?? double.NaN;
            gauges.Progress = (double)t / steps;
            if (!last) metrics.RecordStep(gauges, stepSeconds);
            progress.RunStep(cell, t, eval.Loss, probeValues);
            progress.RunStepReport(cell, new StepReport(t, steps, eval.Loss, gradNorm, lr, threshold ?? double.NaN, last ? null : stepSeconds, probeValues, probeSeconds));

            initialLoss ??= eval.Loss;
            if (!double.IsFinite(eval.Loss) || !double.IsFinite(gradNorm))
            {
                status = RunStatus.Diverged;
                reason = $"non-finite {(double.IsFinite(eval.Loss) ? "gradient norm" : "loss")} at step {t}";
                manifest.StepsCompleted = t;
                manifest.StoppingStepUpdateApplied = !last;
                break;
            }
            if (eval.Loss > spec.Training.DivergenceFactor * Math.Max(initialLoss.Value, 1e-12))
            {
                status = RunStatus.Diverged;
                reason = $"loss {eval.Loss:G4} at step {t} exceeds divergence_factor {spec.Training.DivergenceFactor:G4} × initial loss {initialLoss:G4}";
                manifest.StepsCompleted = t;
                manifest.StoppingStepUpdateApplied = !last;
                break;
            }
            if (!last && spec.Training.TargetLoss is { } target && eval.Loss <= target)
            {
                reason = $"reached target loss {target:G4} at step {t}";
                manifest.StepsCompleted = t;
                manifest.StoppingStepUpdateApplied = true;
                break;
            }
            manifest.StepsCompleted = last ? steps : t + 1;
            if (last) manifest.StoppingStepUpdateApplied = false;
            if (t % 200 == 0) manifest.Save(manifestPath);
            if (!last && spec.Training.CheckpointEvery > 0 && (t + 1) % spec.Training.CheckpointEvery == 0 && t + 1 < steps)
            {
                trace.Flush(); // every row before the checkpoint is on disk before the checkpoint is
                RunCheckpoint.Save(_runDir, t + 1, model, optimizer, initial, previousUpdate, initialLoss, updateBeforePrevious, scheduler.ExportState(),
                    probes.Select(p => (p.probe as ICheckpointedProbe)?.ExportState()).ToList());
                manifest.Save(manifestPath);
            }
        }
        trace.Flush();
        manifest.Status = status;
        manifest.Reason = reason;
        }
        finally
        {
            foreach (var x in initial) x.Dispose();
            foreach (var u in previousUpdate ?? []) u.Dispose();
            foreach (var u in updateBeforePrevious ?? []) u.Dispose();
        }
    }

    /// <summary>A tuned step's η_t and threshold (known only after the tuner chose), its internals and η_t·λ1.</summary>
    private static void RecordTuner(TunedOptimizer tuned, long t, Dictionary<string, object> shared, double?[] row,
        Dictionary<string, int> index, RunGauges gauges, ref double lr, ref double? threshold)
    {
        lr = tuned.LearningRate;
        threshold = StabilityThreshold.Of(tuned);
        foreach (var (name, value) in tuned.Tuner.Internals)
            if (index.TryGetValue("tuner_" + name, out int col))
            {
                row[col] = value;
                gauges.Probe["tuner_" + name] = value;
            }
        if (shared.TryGetValue(ProbeBlackboard.HessianSpectrum, out var o) && o is SpectrumEstimate { Top.Count: > 0 } s && s.Step == t)
            row[index[TunerEtaLambda1]] = gauges.Probe[TunerEtaLambda1] = lr * s.Top[0];
        if (shared.TryGetValue(ProbeBlackboard.PreconditionedSpectrum, out var po) && po is SpectrumEstimate { Top.Count: > 0 } ps && ps.Step == t)
            row[index[TunerEtaPrecondLambda1]] = gauges.Probe[TunerEtaPrecondLambda1] = lr * ps.Top[0];
    }

    /// <summary>Gives a preconditioned optimizer the P of another run's saved state (<c>preconditioner_from</c>).</summary>
    private static void ImportPreconditioner(IOptimizer optimizer, IModel model, PreconditionerSource source, string runDir)
    {
        string path = source.StatePath(runDir);
        if (!File.Exists(path))
        {
            string why = "";
            if (source.RunId is not null && RunManifest.TryLoad(Path.Combine(Path.GetDirectoryName(path)!, "manifest.json")) is { } m)
                why = $" (that run is {m.Status.ToString().ToLowerInvariant()}: {m.Reason})";
            throw new InvalidOperationException($"preconditioner_from: no saved state {path}{why}");
        }
        if (source.Sha256 is { } sha)
        {
            using var stream = File.OpenRead(path);
            if (Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(stream)) != sha)
                throw new InvalidOperationException($"preconditioner_from: {path} changed since the matrix was validated");
        }
        var file = OptimizerStateFile.Load(path);
        optimizer.ImportState(file.PreconditionerState(model.Parameters.Select(p => p.Tensor).ToList(), optimizer.LearningRate, path));
    }

    /// <summary>A fixed subset of the training data (seeded by the matrix's probe_set.seed, so every run of a matrix
    /// that shares a data subset probes the same examples).</summary>
    public static Dataset ProbeSet(Dataset train, int size, long seed)
    {
        if (train.Inputs is null || size >= train.Count) return train;
        var gen = new torch.Generator((ulong)seed);
        using var perm = randperm(train.Count, generator: gen);
        using var idx = perm.narrow(0, 0, size).sort().Values;
        var subset = train.Select(idx);
        subset.Inputs?.DetachFromDisposeScope();
        subset.Targets?.DetachFromDisposeScope();
        return subset;
    }

    private static string? KeepPreviousAttempt(string runDir, string tracePath)
    {
        if (!File.Exists(tracePath)) return null;
        var aside = Path.Combine(runDir, "attempts");
        Directory.CreateDirectory(aside);
        var target = Path.Combine(aside, $"trace.{DateTime.UtcNow:yyyyMMddTHHmmssfff}.parquet");
        File.Move(tracePath, target);
        return target;
    }

    private static void KeepPartsAside(string runDir, string tracePath)
    {
        var parts = TraceWriter.PartsFolder(tracePath);
        var aside = Path.Combine(runDir, "attempts");
        Directory.CreateDirectory(aside);
        Directory.Move(parts, Path.Combine(aside, $"trace.{DateTime.UtcNow:yyyyMMddTHHmmssfff}.parts"));
    }

    /// <summary>Copies the rows before <paramref name="step"/> from the newest earlier attempt whose trace holds them
    /// all. Every attempt is kept in attempts/, so a process killed while copying (the old trace already moved there,
    /// the new one incomplete) loses nothing: the next attempt finds the complete one again.</summary>
    private bool CopyPreviousRows(RunCell cell, string runDir, TraceWriter trace, long step, RunManifest manifest)
    {
        var aside = Path.Combine(runDir, "attempts");
        if (!Directory.Exists(aside)) return false;
        foreach (var previous in Directory.GetFiles(aside, "trace.*.parquet").OrderDescending(StringComparer.Ordinal))
        {
            try
            {
                if (RunCheckpoint.CopyRows(previous, trace, step, manifest) == step) return true;
            }
            catch (InvalidDataException e)
            {
                logger.LogWarning("run {Run}: {Message}", cell.RunId, e.Message);
            }
        }
        return false;
    }

    private static PluginUse Use(string kind, string name, PluginOrigin o) => new(kind, name, o.File, o.Sha256, o.AssemblyName, o.AssemblyVersion);

    public static Device ResolveDevice(string device) => device switch
    {
        "cuda" => torch.cuda.is_available() ? CUDA : throw new InvalidOperationException("device 'cuda' requested but CUDA is not available (this build uses the CPU libtorch unless built with -p:TorchBackend=cuda)"),
        "auto" => torch.cuda.is_available() ? CUDA : CPU,
        _ => CPU,
    };

    private static string LibTorchVersion()
    {
        try { return torch.__version__; } catch { return "unknown"; }
    }
}

/// <summary>The last two updates θ_t − θ_{t−1} in buffers that are reused from step to step (no allocation per step
/// after the first two): <see cref="Snapshot"/> copies θ before the optimizer step, <see cref="Rotate"/> writes the
/// new update into the buffer of the oldest one.</summary>
internal sealed class UpdateBuffers : IDisposable
{
    private List<Tensor>? _before;

    public void Snapshot(IModel model)
    {
        using var _ = no_grad();
        _before ??= model.Parameters.Select(p => empty_like(p.Tensor).DetachFromDisposeScope()).ToList();
        for (int i = 0; i < _before.Count; i++) _before[i].copy_(model.Parameters[i].Tensor);
    }

    /// <returns>(the new previous update, the update before it)</returns>
    public (List<Tensor>, List<Tensor>?) Rotate(IModel model, List<Tensor>? previous, List<Tensor>? beforePrevious)
    {
        using var _ = no_grad();
        var target = beforePrevious ?? model.Parameters.Select(p => empty_like(p.Tensor).DetachFromDisposeScope()).ToList();
        for (int i = 0; i < target.Count; i++) target[i].copy_(model.Parameters[i].Tensor).sub_(_before![i]);
        return (target, previous);
    }

    public void Dispose()
    {
        foreach (var t in _before ?? []) t.Dispose();
    }
}

/// <summary>Full batch, or mini-batches drawn without replacement from a permutation per epoch (seeded by data_seed).
/// The batch of step t is a pure function of t (epoch = t / batches_per_epoch), so a run resumed from a checkpoint
/// sees exactly the batches it would have seen.</summary>
public sealed class BatchSampler(Dataset train, int? batchSize, long seed)
{
    private Tensor? _perm;
    private long _permEpoch = -1;
    private long _next;

    /// <summary>The batch of the next step (steps counted from 0 by this sampler).</summary>
    public Dataset Next() => At(_next++);

    /// <summary>The batch of step <paramref name="step"/>.</summary>
    public Dataset At(long step)
    {
        if (batchSize is not { } b || b >= train.Count || train.Inputs is null) return train;
        long perEpoch = train.Count / b;
        long epoch = step / perEpoch;
        if (_perm is null || _permEpoch != epoch)
        {
            _perm?.Dispose();
            _perm = randperm(train.Count, generator: new torch.Generator((ulong)(seed * 1_000_003 + epoch))).DetachFromDisposeScope();
            _permEpoch = epoch;
        }
        _next = step + 1;
        var idx = _perm.narrow(0, (step % perEpoch) * b, b);
        return train.Select(idx);
    }
}
