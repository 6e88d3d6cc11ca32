using System.Globalization;

namespace Harness.Host.Matrix;

/// <summary>
/// One of N deterministic slices of a matrix: a cell belongs to shard (first 8 hex digits of its run-id hash) mod N,
/// so the assignment depends only on the cell's own configuration (adding cells to a matrix never moves others).
/// All shards write into one results tree; `harness summary` rebuilds the summary from whatever finished.
/// </summary>
public readonly record struct Shard(int Index, int Count)
{
    public static readonly Shard All = new(0, 1);

    /// <summary>A cell that takes its preconditioner from another run goes with that run (its run id decides), so the
    /// source finishes first in the same shard; chains of such dependencies follow their first link only.</summary>
    public bool Contains(RunCell cell) =>
        Count <= 1 || (int)(uint.Parse(Key(cell)[^12..^4], NumberStyles.HexNumber, CultureInfo.InvariantCulture) % (uint)Count) == Index;

    private static string Key(RunCell cell) => cell.PreconditionerFrom is { RunId: { } source } ? source : cell.RunId;

    public override string ToString() => $"{Index}/{Count}";

    /// <summary>Parses "i/N" with 0 ≤ i &lt; N.</summary>
    public static Shard Parse(string text)
    {
        var parts = text.Split('/');
        if (parts.Length == 2 && int.TryParse(parts[0], out int i) && int.TryParse(parts[1], out int n) && n >= 1 && i >= 0 && i < n)
            return new Shard(i, n);
        throw new FormatException($"--shard '{text}': expected i/N with 0 <= i < N, e.g. 0/4");
    }

    /// <summary>The shard from the environment of a cluster job, or null: Slurm job arrays
    /// (SLURM_ARRAY_TASK_ID − SLURM_ARRAY_TASK_MIN of SLURM_ARRAY_TASK_COUNT) or Kubernetes indexed Jobs
    /// (JOB_COMPLETION_INDEX of HARNESS_SHARD_COUNT, which the Job sets to its completions).</summary>
    public static Shard? FromEnvironment(Func<string, string?>? env = null)
    {
        env ??= Environment.GetEnvironmentVariable;
        static int? Int(string? s) => int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : null;
        if (Int(env("SLURM_ARRAY_TASK_ID")) is { } id && Int(env("SLURM_ARRAY_TASK_COUNT")) is { } count)
        {
            int min = Int(env("SLURM_ARRAY_TASK_MIN")) ?? 0;
            return Check(id - min, count, "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT");
        }
        if (Int(env("JOB_COMPLETION_INDEX")) is { } index)
        {
            var n = Int(env("HARNESS_SHARD_COUNT"))
                ?? throw new FormatException("JOB_COMPLETION_INDEX is set but HARNESS_SHARD_COUNT is not: set it to the Job's completions");
            return Check(index, n, "JOB_COMPLETION_INDEX/HARNESS_SHARD_COUNT");
        }
        return null;
    }

    private static Shard Check(int i, int n, string source) =>
        n >= 1 && i >= 0 && i < n ? new Shard(i, n) : throw new FormatException($"{source} give shard {i} of {n}: out of range");
}
