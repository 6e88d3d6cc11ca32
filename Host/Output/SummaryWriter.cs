using Parquet;
using Parquet.Schema;

namespace Harness.Host.Output;

/// <summary>
/// results/&lt;matrix&gt;/summary.parquet: one row per run, rebuilt from every manifest.json under the matrix folder
/// (so it is correct whatever ran where: shards, restarts). Fixed columns plus <c>final_&lt;column&gt;</c> for every
/// trace column any run reported.
/// </summary>
public static class SummaryWriter
{
    public static readonly string[] StringColumns = ["run_id", "matrix", "label", "optimizer", "model", "status", "reason", "optimizer_hyperparameters", "model_hyperparameters"];

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

    public static int Write(string matrixDir) => Write(matrixDir, null);

    /// <summary>Rebuilds summary.parquet; returns the number of runs in it. Manifests that could not be read are left
    /// out and listed in <paramref name="unreadable"/>.</summary>
    public static int Write(string matrixDir, ICollection<string>? unreadable)
    {
        var runs = LoadManifests(matrixDir, unreadable);
        var finals = runs.SelectMany(r => r.Final.Keys).Distinct().Order(StringComparer.Ordinal).ToList();
        var strings = StringColumns.Select(c => new DataField<string>(c, true)).ToArray();
        var initSeed = new DataField<long>("init_seed");
        var dataSeed = new DataField<long>("data_seed");
        var steps = new DataField<long>("steps_completed");
        var wall = new DataField<double>("wall_seconds");
        var finalFields = finals.Select(f => new DataField<double?>("final_" + f)).ToArray();
        var schema = new ParquetSchema(strings.Cast<Field>().Concat([initSeed, dataSeed, steps, wall]).Concat(finalFields));

        string path = Path.Combine(matrixDir, "summary.parquet");
        // Unique temp name: several shard processes may rebuild the same summary at once.
        string tmp = $"{path}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
        using (var stream = File.Create(tmp))
        {
            var writer = ParquetWriter.CreateAsync(schema, stream).GetAwaiter().GetResult();
            try
            {
                using var rg = writer.CreateRowGroup();
                string?[][] text =
                [
                    runs.Select(r => (string?)r.RunId).ToArray(), runs.Select(r => (string?)r.Matrix).ToArray(),
                    runs.Select(r => (string?)r.Label).ToArray(), runs.Select(r => (string?)r.Optimizer).ToArray(),
                    runs.Select(r => (string?)r.Model).ToArray(),
                    runs.Select(r => (string?)r.Status.ToString().ToLowerInvariant()).ToArray(),
                    runs.Select(r => r.Reason).ToArray(),
                    runs.Select(r => r.Configuration["optimizer"]?["hyperparameters"]?.ToJsonString()).ToArray(),
                    runs.Select(r => r.Configuration["model"]?["hyperparameters"]?.ToJsonString()).ToArray(),
                ];
                for (int i = 0; i < strings.Length; i++)
                    rg.WriteAsync(strings[i], text[i]!).GetAwaiter().GetResult();
                rg.WriteAsync<long>(initSeed, runs.Select(r => r.InitSeed).ToArray().AsMemory()).GetAwaiter().GetResult();
                rg.WriteAsync<long>(dataSeed, runs.Select(r => r.DataSeed).ToArray().AsMemory()).GetAwaiter().GetResult();
                rg.WriteAsync<long>(steps, runs.Select(r => r.StepsCompleted).ToArray().AsMemory()).GetAwaiter().GetResult();
                rg.WriteAsync<double>(wall, runs.Select(r => r.WallSeconds).ToArray().AsMemory()).GetAwaiter().GetResult();
                for (int i = 0; i < finals.Count; i++)
                    rg.WriteAsync<double>(finalFields[i], runs.Select(r => r.Final.TryGetValue(finals[i], out var v) ? v : (double?)null).ToArray().AsMemory()).GetAwaiter().GetResult();
            }
            finally { writer.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
        }
        File.Move(tmp, path, overwrite: true);
        return runs.Count;
    }
}
