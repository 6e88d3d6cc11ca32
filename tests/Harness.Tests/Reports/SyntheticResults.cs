using System.Text.Json.Nodes;
using Harness.Abstractions;
using Harness.Host.Output;

namespace Harness.Tests.Reports;

/// <summary>A matrix folder written with the host's own TraceWriter and manifests, holding traces whose values are
/// chosen by the test (so claim verdicts and statistics have known answers).</summary>
public sealed class SyntheticResults
{
    public string Directory { get; } = Paths.NewTempDirectory("synthetic-results");
    private int _count;

    /// <summary>Adds a run of <paramref name="optimizer"/> at learning rate <paramref name="lr"/> with init seed
    /// <paramref name="seed"/>: steps 0..<paramref name="steps"/>, column <c>metric</c> = f(step) (null = not measured).</summary>
    public string Add(string optimizer, double lr, long seed, Func<long, double?> metric, long steps = 100, RunStatus status = RunStatus.Completed,
        string model = "quadratic", double width = 10)
    {
        string runId = $"{optimizer}-{++_count:D12}";
        string dir = Path.Combine(Directory, runId);
        System.IO.Directory.CreateDirectory(dir);
        using (var trace = new TraceWriter(Path.Combine(dir, "trace.parquet"), new TraceSchema("synthetic", runId,
                   [new TraceColumn("train_loss"), new TraceColumn("metric"), new TraceColumn("flag", MetricType.Boolean)])))
            for (long t = 0; t <= steps; t++)
            {
                var m = metric(t);
                trace.Append(t, [1.0 / (t + 1), m, m is { } v ? (v > 0 ? 1 : 0) : null]);
            }
        new RunManifest
        {
            RunId = runId, Matrix = "synthetic", Label = $"{optimizer} lr={lr} | {model} | seeds {seed}/0", Optimizer = optimizer, Model = model,
            InitSeed = seed, DataSeed = 0, Status = status, StepsCompleted = steps,
            Configuration = new JsonObject
            {
                ["model"] = new JsonObject { ["name"] = model, ["hyperparameters"] = new JsonObject { ["width"] = width } },
                ["optimizer"] = new JsonObject { ["name"] = optimizer, ["hyperparameters"] = new JsonObject { ["lr"] = lr } },
                ["init_seed"] = seed, ["data_seed"] = 0,
                ["training"] = new JsonObject { ["steps"] = steps, ["target_loss"] = 0.05 },
                ["probes"] = new JsonArray(),
            },
        }.Save(Path.Combine(dir, "manifest.json"));
        return runId;
    }
}
