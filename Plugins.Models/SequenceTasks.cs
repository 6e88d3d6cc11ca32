namespace Harness.Plugins.Models;

/// <summary>Synthetic sequence-to-sequence tasks for the tiny transformer, generated from a seed (nothing to download).
/// Each example is a sequence of <c>length</c> tokens drawn uniformly from 0..vocab−1 and a target token per position:
/// <list type="bullet">
/// <item>reverse: target[t] = x[length−1−t]</item>
/// <item>sort: target = x sorted ascending</item>
/// <item>prefix_sum: target[t] = (x[0] + … + x[t]) mod vocab</item>
/// </list></summary>
public static class SequenceTasks
{
    public const string Reverse = "reverse";
    public const string Sort = "sort";
    public const string PrefixSum = "prefix_sum";
    public static readonly string[] All = [Reverse, Sort, PrefixSum];

    /// <summary>Row-major count×length arrays of input tokens and target tokens. The same arguments always give the
    /// same sequences (System.Random with an explicit seed is stable across .NET versions).</summary>
    public static (long[] inputs, long[] targets) Generate(string task, int count, int length, int vocab, long seed)
    {
        if (!All.Contains(task)) throw new ArgumentException($"unknown sequence task '{task}'; one of {string.Join(", ", All)}");
        if (vocab < 2 || length < 1 || count < 0) throw new ArgumentOutOfRangeException(nameof(vocab), "need vocab ≥ 2, length ≥ 1, count ≥ 0");
        var rng = new Random(unchecked((int)(seed * 7919 + 1_000_003)));
        var x = new long[(long)count * length];
        var y = new long[x.Length];
        var row = new long[length];
        for (int n = 0; n < count; n++)
        {
            for (int t = 0; t < length; t++) row[t] = rng.Next(vocab);
            Array.Copy(row, 0, x, (long)n * length, length);
            Target(task, row, vocab).CopyTo(y, (long)n * length);
        }
        return (x, y);
    }

    /// <summary>The target sequence of one input sequence.</summary>
    public static long[] Target(string task, IReadOnlyList<long> input, int vocab)
    {
        int length = input.Count;
        var y = new long[length];
        switch (task)
        {
            case Reverse:
                for (int t = 0; t < length; t++) y[t] = input[length - 1 - t];
                break;
            case Sort:
                for (int t = 0; t < length; t++) y[t] = input[t];
                Array.Sort(y);
                break;
            case PrefixSum:
                long s = 0;
                for (int t = 0; t < length; t++) { s = (s + input[t]) % vocab; y[t] = s; }
                break;
            default: throw new ArgumentException($"unknown sequence task '{task}'");
        }
        return y;
    }
}
