using Harness.Host.Matrix;
using Harness.Host.Output;
using Harness.Host.Plugins;
using Harness.Host.Telemetry;
using Harness.Host.Training;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Harness.Host;

public sealed record MatrixOutcome(string Directory, IReadOnlyList<RunManifest> Runs, int Skipped);

/// <summary>Runs every cell of a matrix that has not finished yet (found by run id in the results tree), one at a
/// time, and rewrites summary.parquet after each run so the summary is current even if the process dies.</summary>
public sealed class MatrixRunner(PluginCatalog plugins, HarnessMetrics metrics, IOptions<HarnessOptions> options, ILogger<MatrixRunner> logger)
{
    public MatrixSpec Parse(string path) => MatrixParser.ParseFile(path, plugins);

    public string MatrixDirectory(MatrixSpec spec) =>
        Path.GetFullPath(Path.Combine(spec.OutputRoot ?? options.Value.ResultsDirectory, spec.Name));

    /// <param name="execute">how to execute one cell (cell, run folder, progress, token): default in this process
    /// with <see cref="RunExecutor"/>; <c>run</c> passes one that uses a worker process.</param>
    public MatrixOutcome Run(MatrixSpec spec, IRunProgress progress, CancellationToken ct, Shard? shard = null,
        Func<RunCell, string, IRunProgress, CancellationToken, RunManifest>? execute = null)
    {
        var slice = shard ?? Shard.All;
        var cells = MatrixExpander.Expand(spec).Where(slice.Contains).ToList();
        string dir = MatrixDirectory(spec);
        Directory.CreateDirectory(dir);
        var executor = new RunExecutor(plugins, metrics, logger);
        var results = new List<RunManifest>();
        int skipped = 0;
        logger.LogInformation("matrix {Matrix}: {Count} run(s){Shard} into {Dir}", spec.Name, cells.Count,
            slice.Count > 1 ? $" (shard {slice})" : "", dir);
        foreach (var cell in cells)
        {
            if (ct.IsCancellationRequested) break;
            string runDir = Path.Combine(dir, cell.RunId);
            if (RunManifest.TryLoad(Path.Combine(runDir, "manifest.json")) is { IsFinished: true } done && StatesPresent(cell, runDir, done))
            {
                logger.LogInformation("run {Run} ({Label}) already {Status}: skipped", cell.RunId, cell.Label, done.Status.ToString().ToLowerInvariant());
                results.Add(done);
                skipped++;
                progress.RunSkipped(cell, done);
                continue;
            }
            results.Add(execute is null ? executor.Execute(cell, runDir, progress, ct) : execute(cell, runDir, progress, ct));
            SummaryWriter.Write(dir, SummaryWriter.KindsFrom(plugins));
        }
        SummaryWriter.Write(dir, SummaryWriter.KindsFrom(plugins));
        return new MatrixOutcome(dir, results, skipped);
    }

    /// <summary>A finished run is only skipped when the optimizer states it must save (training.save_state_at, or for a
    /// dependent cell's preconditioner_from) are there, or it ended before reaching them.</summary>
    private static bool StatesPresent(RunCell cell, string runDir, RunManifest done) =>
        (cell.SaveStateAt ?? []).All(s => s > done.StepsCompleted || File.Exists(Path.Combine(runDir, RunCell.StateFileName(s))));
}
