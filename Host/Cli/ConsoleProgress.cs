using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Harness.Host.Matrix;
using Harness.Host.Output;
using Harness.Host.Telemetry;
using Harness.Host.Training;
using Microsoft.Extensions.Logging;
using Spectre.Console;

namespace Harness.Host.Cli;

/// <summary>Live progress on an interactive terminal: a bar per run (steps/s, ETA, last loss, sharpness and edge
/// ratio) and one for the matrix, which counts steps (every run's steps + its final row), so it moves while runs train.
/// Runs are labelled by their swept values only (<see cref="SweptParameters"/>).</summary>
public sealed class SpectreProgress(ProgressContext ctx, int runCount) : IRunProgress
{
    private readonly ProgressTask _matrix = ctx.AddTask("[bold]matrix[/]", maxValue: Math.Max(runCount, 1));
    private readonly ConcurrentDictionary<string, (ProgressTask task, Stopwatch clock)> _tasks = new();
    private readonly ConcurrentDictionary<string, double> _lastProbe = new();
    private readonly ConcurrentDictionary<string, long> _counted = new();
    private readonly object _gate = new();
    private bool _sized;

    private static string Label(RunCell cell) => SweptParameters.Of(cell.Matrix).Label(cell);

    /// <summary>The matrix bar (value and maximum in steps).</summary>
    public ProgressTask Matrix => _matrix;

    /// <summary>The bar of a run that started, or null.</summary>
    public ProgressTask? RunTask(RunCell cell) => _tasks.TryGetValue(cell.RunId, out var t) ? t.task : null;

    /// <summary>Every cell of a matrix has the same number of steps, so the matrix total is known from the first one.</summary>
    private void Size(RunCell cell)
    {
        lock (_gate)
        {
            if (_sized) return;
            _matrix.MaxValue = (double)runCount * (cell.Matrix.Training.Steps + 1);
            _matrix.Description = $"[bold]matrix[/] {runCount} run(s) × {cell.Matrix.Training.Steps} steps";
            _sized = true;
        }
    }

    /// <summary>Adds the steps of a run done since the last call (a resumed run counts its checkpointed steps once).</summary>
    private void Count(RunCell cell, long rows)
    {
        long before = _counted.GetOrAdd(cell.RunId, 0);
        if (rows <= before) return;
        _counted[cell.RunId] = rows;
        lock (_gate) _matrix.Increment(rows - before);
    }

    public void RunStarted(RunCell cell, long steps)
    {
        Size(cell);
        _tasks[cell.RunId] = (ctx.AddTask(Markup.Escape(Label(cell)), maxValue: steps + 1), Stopwatch.StartNew());
    }

    public void RunStep(RunCell cell, long step, double loss, IReadOnlyDictionary<string, double> probes)
    {
        if (!_tasks.TryGetValue(cell.RunId, out var t)) return;
        foreach (var (k, v) in probes) _lastProbe[cell.RunId + k] = v;
        t.task.Value = step + 1;
        Count(cell, step + 1);
        double rate = (step + 1) / Math.Max(t.clock.Elapsed.TotalSeconds, 1e-9);
        t.task.Description = Markup.Escape($"{Label(cell)} | {rate:F1} st/s | loss {loss:G4}{Probe(cell, "sharpness", "λ1")}{Probe(cell, "edge_ratio", "λ1/thr")}{Probe(cell, "precond_edge_ratio", "λ̃1/thr")}");
    }

    public void RunEnded(RunCell cell, RunManifest manifest)
    {
        if (_tasks.TryGetValue(cell.RunId, out var t))
        {
            t.task.Description = Markup.Escape($"{Label(cell)} | {manifest.Status.ToString().ToLowerInvariant()}");
            t.task.StopTask();
        }
        // A run that ended early (target reached, diverged, failed) leaves no steps to do.
        Size(cell);
        Count(cell, cell.Matrix.Training.Steps + 1);
    }

    public void RunSkipped(RunCell cell, RunManifest manifest)
    {
        Size(cell);
        Count(cell, cell.Matrix.Training.Steps + 1);
    }

    private string Probe(RunCell cell, string key, string label) =>
        _lastProbe.TryGetValue(cell.RunId + key, out var v) ? $" | {label} {v.ToString("G4", CultureInfo.InvariantCulture)}" : "";
}

/// <summary>Log lines while a live progress display is on screen: written through Spectre.Console (above the live
/// bars, which are redrawn below them) instead of straight to the terminal, where they would tear the display.
/// <see cref="During{T}"/> turns it on; the console logger is filtered off meanwhile (see <c>HarnessCli</c>).</summary>
public sealed class LiveConsoleLoggerProvider : ILoggerProvider
{
    private static volatile bool _active;

    /// <summary>True while a live display runs: the ordinary console logger stays silent, this one writes.</summary>
    public static bool Active => _active;

    /// <summary>Runs <paramref name="live"/> (which shows a live display) with log lines routed through it.</summary>
    public static T During<T>(Func<T> live)
    {
        _active = true;
        try { return live(); }
        finally { _active = false; }
    }

    public ILogger CreateLogger(string categoryName) => new LiveLogger(categoryName);

    public void Dispose() { }

    private sealed class LiveLogger(string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => _active && logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel)) return;
            string level = logLevel switch
            {
                LogLevel.Trace => "trce", LogLevel.Debug => "dbug", LogLevel.Information => "info",
                LogLevel.Warning => "warn", LogLevel.Error => "fail", _ => "crit",
            };
            string color = logLevel switch { LogLevel.Warning => "yellow", >= LogLevel.Error => "red", _ => "grey" };
            string line = $"{DateTime.Now:HH:mm:ss} {level}: {category}[{eventId.Id}] {formatter(state, exception)}"
                + (exception is null ? "" : " " + exception.GetType().Name + ": " + exception.Message);
            AnsiConsole.MarkupLine($"[{color}]{Markup.Escape(line)}[/]");
        }
    }
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
