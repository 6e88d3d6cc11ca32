using Harness.Abstractions;
using Harness.Host.Plugins;
using Parquet;
using Parquet.Schema;

namespace Harness.Host.Output;

/// <summary>
/// results/&lt;matrix&gt;/summary.parquet: one row per run, rebuilt from every manifest.json (and trace.parquet) under
/// the matrix folder (so it is correct whatever ran where: shards, restarts). Fixed columns; one typed column per
/// hyperparameter (<see cref="RunLabels"/>: <c>optimizer.lr</c>, <c>model.width</c>, …); the target columns;
/// <c>final_&lt;column&gt;</c> for every trace column any run reported and <c>best_&lt;column&gt;</c> for its loss
/// (minimum) and accuracy (maximum) columns. The column list is documented in docs/parquet.md (checked by a test).
/// </summary>
public static class SummaryWriter
{
    public static readonly string[] StringColumns = ["run_id", "matrix", "label", "optimizer", "model", "tuner", "status", "reason", "optimizer_hyperparameters", "model_hyperparameters"];
    public static readonly string[] LongColumns = ["init_seed", "data_seed", "steps_completed"];
    public static readonly string[] TargetColumns = ["target_loss", "steps_to_target", "seconds_to_target"];

    public static IReadOnlyList<RunManifest> LoadManifests(string matrixDir) => LoadManifests(matrixDir, null);

    /// <summary>Every readable run manifest of the matrix folder; each manifest.json that exists but cannot be read
    /// (truncated, not JSON, no permission) is added to <paramref name="unreadable"/> as "path: reason".</summary>
    public static IReadOnlyList<RunManifest> LoadManifests(string matrixDir, ICollection<string>? unreadable)
    {
        if (!Directory.Exists(matrixDir)) return [];
        var runs = new List<RunManifest>();
        foreach (var dir in Directory.GetDirectories(matrixDir).Order(StringComparer.Ordinal))
        {
            var path = Path.Combine(dir, "manifest.json");
            if (!File.Exists(path)) continue;
            RunManifest? m = null;
            string? why = null;
            try { m = RunManifest.TryLoad(path); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException) { why = e.Message; }
            if (m is not null) runs.Add(m);
            else unreadable?.Add($"{path}: {why ?? "not a readable run manifest (truncated or not JSON)"}");
        }
        return runs.OrderBy(m => m.RunId, StringComparer.Ordinal).ToList();
    }

    /// <summary>The declared kinds of every hyperparameter of the loaded plugins, keyed by summary column name and
    /// plugin (<c>optimizer.lr</c> of <c>adam</c>), so integer hyperparameters become BIGINT columns. Without it
    /// (see <see cref="Write"/>) every number is DOUBLE.</summary>
    public static Func<string, string, HyperparameterKind?> KindsFrom(PluginCatalog plugins)
    {
        var kinds = new Dictionary<(string, string), HyperparameterKind>();
        void Add(string prefix, string plugin, IEnumerable<HyperparameterSpec> specs)
        {
            foreach (var s in specs) kinds[(prefix + s.Name, plugin)] = s.Kind;
        }
        foreach (var (n, p) in plugins.Optimizers) Add("optimizer.", n, p.Plugin.Hyperparameters);
        foreach (var (n, p) in plugins.Models) Add("model.", n, p.Plugin.Hyperparameters);
        foreach (var (n, p) in plugins.Tuners) Add("tuner.", n, p.Plugin.Hyperparameters);
        foreach (var (n, p) in plugins.Probes) Add($"probe.{n}.", n, p.Plugin.Hyperparameters);
        return (column, plugin) => kinds.TryGetValue((column, plugin), out var k) ? k : null;
    }

    /// <summary>One row of the summary, before it is written (also what the report reads).</summary>
    public sealed record Row(RunManifest Run, SortedDictionary<string, object> Labels, double? TargetLoss, long? StepsToTarget,
        double? SecondsToTarget, IReadOnlyDictionary<string, double> Best);

    public static Row RowOf(RunManifest run, TraceFile? trace)
    {
        var labels = RunLabels.Of(run);
        double? target = run.Configuration["training"]?["target_loss"] is { } t ? RunLabels.Value(t) as double? : null;
        long? stepsTo = null;
        double? secondsTo = null;
        var best = new Dictionary<string, double>(StringComparer.Ordinal);
        if (trace is not null)
        {
            if (target is { } goal && trace.Column("train_loss") is { } loss)
                for (int i = 0; i < loss.Length; i++)
                    if (loss[i] is { } l && l <= goal)
                    {
                        stepsTo = trace.Steps[i];
                        secondsTo = trace.Column("time_s")?[i];
                        break;
                    }
            foreach (var (name, values) in trace.Columns)
            {
                bool isLoss = name.EndsWith("loss", StringComparison.Ordinal), isAccuracy = name.EndsWith("accuracy", StringComparison.Ordinal);
                if (!isLoss && !isAccuracy) continue;
                var finite = values.Where(v => v is { } x && double.IsFinite(x)).Select(v => v!.Value).ToList();
                if (finite.Count > 0) best[name] = isLoss ? finite.Min() : finite.Max();
            }
        }
        return new Row(run, labels, target, stepsTo, secondsTo, best);
    }

    public static IReadOnlyList<Row> Rows(string matrixDir, ICollection<string>? unreadable = null) =>
        LoadManifests(matrixDir, unreadable).Select(m => RowOf(m, TraceFile.TryRead(Path.Combine(matrixDir, m.RunId, m.TraceFile)))).ToList();

    /// <summary>The Parquet type of each hyperparameter column: BOOLEAN when every value is a bool, VARCHAR when any
    /// is a string, BIGINT when every run's plugin declares it Integer, else DOUBLE.</summary>
    private static Type ColumnType(string column, IReadOnlyList<Row> rows, Func<string, string, HyperparameterKind?>? kinds)
    {
        var values = rows.Where(r => r.Labels.ContainsKey(column)).ToList();
        if (values.All(r => r.Labels[column] is bool)) return typeof(bool);
        if (values.Any(r => r.Labels[column] is string)) return typeof(string);
        if (kinds is not null && values.All(r => kinds(column, PluginOf(column, r)) == HyperparameterKind.Integer)) return typeof(long);
        return typeof(double);
    }

    private static string PluginOf(string column, Row r) =>
        column.StartsWith("optimizer.", StringComparison.Ordinal) ? r.Run.Optimizer
        : column.StartsWith("model.", StringComparison.Ordinal) ? r.Run.Model
        : column.StartsWith("tuner.", StringComparison.Ordinal) ? (r.Labels.GetValueOrDefault("tuner") as string ?? "")
        : column.Split('.')[1];

    /// <summary>The hyperparameter label columns (not the plugin names, which are string columns already).</summary>
    public static IEnumerable<string> HyperparameterColumns(IEnumerable<Row> rows) =>
        rows.SelectMany(r => r.Labels.Keys).Where(k => k.Contains('.')).Distinct().Order(StringComparer.Ordinal);

    /// <summary>Rebuilds summary.parquet; returns the number of runs in it. Manifests that could not be read are left
    /// out and listed in <paramref name="unreadable"/>.</summary>
    public static int Write(string matrixDir, Func<string, string, HyperparameterKind?>? kinds = null, ICollection<string>? unreadable = null)
    {
        var rows = Rows(matrixDir, unreadable);
        var finals = rows.SelectMany(r => r.Run.Final.Keys).Distinct().Order(StringComparer.Ordinal).ToList();
        var bests = rows.SelectMany(r => r.Best.Keys).Distinct().Order(StringComparer.Ordinal).ToList();
        var hps = HyperparameterColumns(rows).Select(c => (name: c, type: ColumnType(c, rows, kinds))).ToList();

        var strings = StringColumns.Select(c => new DataField<string>(c, true)).ToArray();
        var longs = LongColumns.Select(c => new DataField<long>(c)).ToArray();
        var wall = new DataField<double>("wall_seconds");
        var targetLoss = new DataField<double?>("target_loss");
        var stepsTo = new DataField<long?>("steps_to_target");
        var secondsTo = new DataField<double?>("seconds_to_target");
        var hpFields = hps.Select(h => h.type == typeof(string) ? (DataField)new DataField<string>(h.name, true)
            : h.type == typeof(bool) ? new DataField<bool?>(h.name) : h.type == typeof(long) ? new DataField<long?>(h.name) : new DataField<double?>(h.name)).ToArray();
        var finalFields = finals.Select(f => new DataField<double?>("final_" + f)).ToArray();
        var bestFields = bests.Select(f => new DataField<double?>("best_" + f)).ToArray();
        var schema = new ParquetSchema(strings.Cast<Field>().Concat(longs).Concat([wall, targetLoss, stepsTo, secondsTo])
            .Concat(hpFields).Concat(finalFields).Concat(bestFields));

        string path = Path.Combine(matrixDir, "summary.parquet");
        // Unique temp name: several shard processes may rebuild the same summary at once.
        string tmp = $"{path}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
        using (var stream = File.Create(tmp))
        {
            var writer = ParquetWriter.CreateAsync(schema, stream).GetAwaiter().GetResult();
            try
            {
                using var rg = writer.CreateRowGroup();
                var runs = rows.Select(r => r.Run).ToList();
                string?[][] text =
                [
                    runs.Select(r => (string?)r.RunId).ToArray(), runs.Select(r => (string?)r.Matrix).ToArray(),
                    runs.Select(r => (string?)r.Label).ToArray(), runs.Select(r => (string?)r.Optimizer).ToArray(),
                    runs.Select(r => (string?)r.Model).ToArray(),
                    rows.Select(r => r.Labels.GetValueOrDefault("tuner") as string).ToArray(),
                    runs.Select(r => (string?)r.Status.ToString().ToLowerInvariant()).ToArray(),
                    runs.Select(r => r.Reason).ToArray(),
                    runs.Select(r => r.Configuration["optimizer"]?["hyperparameters"]?.ToJsonString()).ToArray(),
                    runs.Select(r => r.Configuration["model"]?["hyperparameters"]?.ToJsonString()).ToArray(),
                ];
                for (int i = 0; i < strings.Length; i++) Wait(rg.WriteAsync(strings[i], text[i]!));
                long[][] ints = [runs.Select(r => r.InitSeed).ToArray(), runs.Select(r => r.DataSeed).ToArray(), runs.Select(r => r.StepsCompleted).ToArray()];
                for (int i = 0; i < longs.Length; i++) Wait(rg.WriteAsync<long>(longs[i], ints[i].AsMemory()));
                Wait(rg.WriteAsync<double>(wall, runs.Select(r => r.WallSeconds).ToArray().AsMemory()));
                Wait(rg.WriteAsync<double>(targetLoss, rows.Select(r => r.TargetLoss).ToArray().AsMemory()));
                Wait(rg.WriteAsync<long>(stepsTo, rows.Select(r => r.StepsToTarget).ToArray().AsMemory()));
                Wait(rg.WriteAsync<double>(secondsTo, rows.Select(r => r.SecondsToTarget).ToArray().AsMemory()));
                for (int i = 0; i < hps.Count; i++)
                {
                    var (name, type) = hps[i];
                    var values = rows.Select(r => r.Labels.GetValueOrDefault(name)).ToArray();
                    if (type == typeof(string)) Wait(rg.WriteAsync(hpFields[i], values.Select(v => v is null ? null : RunLabels.Format(v)).ToArray()!));
                    else if (type == typeof(bool)) Wait(rg.WriteAsync<bool>(hpFields[i], values.Select(v => v as bool?).ToArray().AsMemory()));
                    else if (type == typeof(long)) Wait(rg.WriteAsync<long>(hpFields[i], values.Select(v => v is double d ? (long?)Math.Round(d) : null).ToArray().AsMemory()));
                    else Wait(rg.WriteAsync<double>(hpFields[i], values.Select(v => v as double?).ToArray().AsMemory()));
                }
                for (int i = 0; i < finals.Count; i++)
                    Wait(rg.WriteAsync<double>(finalFields[i], runs.Select(r => r.Final.TryGetValue(finals[i], out var v) ? v : (double?)null).ToArray().AsMemory()));
                for (int i = 0; i < bests.Count; i++)
                    Wait(rg.WriteAsync<double>(bestFields[i], rows.Select(r => r.Best.TryGetValue(bests[i], out var v) ? v : (double?)null).ToArray().AsMemory()));
            }
            finally { writer.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
        }
        File.Move(tmp, path, overwrite: true);
        return rows.Count;
    }

    private static void Wait(Task t) => t.GetAwaiter().GetResult();
}
