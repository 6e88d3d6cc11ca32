using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Harness.Host.Matrix;
using Harness.Host.Output;
using Harness.Host.Training;
using Microsoft.Extensions.Logging;
using Spectre.Console;

namespace Harness.Host.Cli;

/// <summary>Live progress on an interactive terminal: a bar per run (steps/s, ETA, last loss, sharpness and edge
/// ratio) and one for the matrix.</summary>
public sealed class SpectreProgress(ProgressContext ctx, int runCount) : IRunProgress
{
    private readonly ProgressTask _matrix = ctx.AddTask("[bold]matrix[/]", maxValue: runCount);
    private readonly ConcurrentDictionary<string, (ProgressTask task, Stopwatch clock)> _tasks = new();
    private readonly ConcurrentDictionary<string, double> _lastProbe = new();

    public void RunStarted(RunCell cell, long steps) =>
        _tasks[cell.RunId] = (ctx.AddTask(Markup.Escape(cell.Label), maxValue: steps + 1), Stopwatch.StartNew());

    public void RunStep(RunCell cell, long step, double loss, IReadOnlyDictionary<string, double> probes)
    {
        if (!_tasks.TryGetValue(cell.RunId, out var t)) return;
        foreach (var (k, v) in probes) _lastProbe[cell.RunId + k] = v;
        t.task.Value = step + 1;
        double rate = (step + 1) / Math.Max(t.clock.Elapsed.TotalSeconds, 1e-9);
        t.task.Description = Markup.Escape($"{cell.Label} | {rate:F1} st/s | loss {loss:G4}{Probe(cell, "sharpness", "λ1")}{Probe(cell, "edge_ratio", "λ1/thr")}{Probe(cell, "precond_edge_ratio", "λ̃1/thr")}");
    }

    public void RunEnded(RunCell cell, RunManifest manifest)
    {
        if (_tasks.TryGetValue(cell.RunId, out var t))
        {
            t.task.Description = Markup.Escape($"{cell.Label} | {manifest.Status.ToString().ToLowerInvariant()}");
            t.task.StopTask();
        }
        _matrix.Increment(1);
    }

    public void RunSkipped(RunCell cell, RunManifest manifest) => _matrix.Increment(1);

    private string Probe(RunCell cell, string key, string label) =>
        _lastProbe.TryGetValue(cell.RunId + key, out var v) ? $" | {label} {v.ToString("G4", CultureInfo.InvariantCulture)}" : "";
}

/// <summary>Progress as log lines (non-interactive terminals, CI, the service): one line per run every 10 s.</summary>
public sealed class LogProgress(ILogger logger) : IRunProgress
{
    private readonly ConcurrentDictionary<string, (Stopwatch clock, long steps, double lastLog)> _runs = new();

    public void RunStarted(RunCell cell, long steps)
    {
        _runs[cell.RunId] = (Stopwatch.StartNew(), steps, 0);
        logger.LogInformation("run {Run} started: {Label}, {Steps} steps", cell.RunId, cell.Label, steps);
    }

    public void RunStep(RunCell cell, long step, double loss, IReadOnlyDictionary<string, double> probes)
    {
        if (!_runs.TryGetValue(cell.RunId, out var r)) return;
        double now = r.clock.Elapsed.TotalSeconds;
        if (now - r.lastLog < 10 && step != r.steps) return;
        _runs[cell.RunId] = r with { lastLog = now };
        double rate = (step + 1) / Math.Max(now, 1e-9);
        double eta = (r.steps - step) / Math.Max(rate, 1e-9);
        logger.LogInformation("run {Run} step {Step}/{Steps} ({Rate:F1} steps/s, ETA {Eta:F0}s) loss {Loss:G4}{Probes}",
            cell.RunId, step, r.steps, rate, eta, loss,
            string.Concat(probes.Where(p => p.Key is "sharpness" or "edge_ratio" or "precond_sharpness" or "precond_edge_ratio")
                .Select(p => $" {p.Key} {p.Value.ToString("G4", CultureInfo.InvariantCulture)}")));
    }

    public void RunEnded(RunCell cell, RunManifest manifest) =>
        logger.LogInformation("run {Run} {Status} after {Steps} steps in {Wall:F1}s: {Reason}", cell.RunId,
            manifest.Status.ToString().ToLowerInvariant(), manifest.StepsCompleted, manifest.WallSeconds, manifest.Reason);
}

public static class SummaryTable
{
    private static readonly string[] Finals = ["train_loss", "sharpness", "threshold", "edge_ratio", "precond_edge_ratio", "test_accuracy"];

    public static void Print(MatrixOutcome outcome)
    {
        var table = new Table().Border(TableBorder.Rounded).Title("[bold]runs[/]");
        table.AddColumn("run id");
        table.AddColumn("configuration");
        table.AddColumn("status");
        table.AddColumn(new TableColumn("steps").RightAligned());
        table.AddColumn(new TableColumn("wall s").RightAligned());
        var finals = Finals.Where(f => outcome.Runs.Any(r => r.Final.ContainsKey(f))).ToList();
        foreach (var f in finals) table.AddColumn(new TableColumn("final " + f).RightAligned());
        foreach (var r in outcome.Runs)
        {
            string status = r.Status switch
            {
                RunStatus.Completed => "[green]completed[/]",
                RunStatus.Diverged => "[yellow]diverged[/]",
                _ => $"[red]{r.Status.ToString().ToLowerInvariant()}[/]",
            };
            var cells = new List<string> { r.RunId, Markup.Escape(r.Label), status, r.StepsCompleted.ToString(CultureInfo.InvariantCulture), r.WallSeconds.ToString("F1", CultureInfo.InvariantCulture) };
            cells.AddRange(finals.Select(f => r.Final.TryGetValue(f, out var v) ? v.ToString("G4", CultureInfo.InvariantCulture) : "-"));
            table.AddRow(cells.ToArray());
        }
        AnsiConsole.Write(table);
        AnsiConsole.MarkupLine($"[bold]results:[/] {Markup.Escape(outcome.Directory)}  (summary.parquet, <run-id>/trace.parquet, <run-id>/manifest.json)");
        if (outcome.Skipped > 0) AnsiConsole.MarkupLine($"{outcome.Skipped} run(s) had finished before and were skipped.");
        foreach (var r in outcome.Runs.Where(r => r.Status is RunStatus.Failed))
            AnsiConsole.MarkupLine($"[red]{r.RunId} failed:[/] {Markup.Escape(r.Reason ?? "")}");
    }
}
