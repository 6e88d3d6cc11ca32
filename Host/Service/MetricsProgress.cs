using System.Collections.Concurrent;
using Harness.Abstractions;
using Harness.Host.Matrix;
using Harness.Host.Output;
using Harness.Host.Plugins;
using Harness.Host.Telemetry;
using Harness.Host.Training;

namespace Harness.Host.Service;

/// <summary>Turns run events (from worker processes) into the host's <see cref="HarnessMetrics"/>, so /metrics
/// shows every run the host supervises exactly as if it ran in-process.</summary>
public sealed class MetricsProgress(HarnessMetrics metrics, Func<PluginCatalog> catalog) : IRunProgress
{
    private readonly ConcurrentDictionary<(string Matrix, string Run), RunGauges> _gauges = new();

    public void RunStarted(RunCell cell, long steps)
    {
        var names = new List<string>();
        foreach (var p in cell.Probes)
        {
            try
            {
                if (catalog().Probes.TryGetValue(p.Name, out var probe))
                    names.AddRange(probe.Plugin.MetricsFor(new HyperparameterValues(probe.Plugin.Hyperparameters, p.Hyperparameters)).Select(m => p.Column(m.Name)));
            }
            catch (Exception) { /* a probe gauge missing from /metrics is not worth failing the run */ }
        }
        _gauges[(cell.MatrixName, cell.RunId)] = metrics.StartRun(cell, names);
    }

    public void RunStepReport(RunCell cell, StepReport r)
    {
        if (!_gauges.TryGetValue((cell.MatrixName, cell.RunId), out var g)) return;
        g.Loss = r.Loss; g.GradNorm = r.GradNorm; g.LearningRate = r.LearningRate; g.Threshold = r.Threshold;
        g.Progress = r.Steps > 0 ? (double)r.Step / r.Steps : 0;
        foreach (var (k, v) in r.Probes) g.Probe[k] = v;
        foreach (var (k, v) in r.ProbeSeconds) metrics.RecordProbe(g, k, v);
        if (r.StepSeconds is { } s) metrics.RecordStep(g, s);
    }

    public void RunEnded(RunCell cell, RunManifest manifest)
    {
        if (_gauges.TryRemove((cell.MatrixName, cell.RunId), out var g)) metrics.EndRun(g, manifest.Status.ToString().ToLowerInvariant());
    }
}
