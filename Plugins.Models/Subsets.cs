namespace Harness.Plugins.Models;

/// <summary>Seeded, class-balanced subsets of a labelled split (shared by every image dataset).</summary>
public static class Subsets
{
    /// <summary>A class-balanced subset: <paramref name="size"/>/<paramref name="classes"/> examples per class (the
    /// remainder spread over the first classes), chosen by a permutation seeded with <paramref name="seed"/>, returned
    /// in shuffled order. The same (labels, size, seed) always gives the same indices.</summary>
    public static int[] Balanced(byte[] labels, int classes, int size, long seed, string what = "dataset")
    {
        if (size < 0) throw new ArgumentOutOfRangeException(nameof(size), $"{what}: negative subset size {size}");
        if (size > labels.Length)
            throw new ArgumentOutOfRangeException(nameof(size), $"{what}: subset of {size} from {labels.Length} examples");
        var rng = new Random(unchecked((int)(seed * 1000003 + 17)));
        var byClass = Enumerable.Range(0, classes).Select(_ => new List<int>()).ToArray();
        foreach (var i in Permute(rng, Enumerable.Range(0, labels.Length).ToArray()))
        {
            if (labels[i] >= classes) throw new InvalidDataException($"{what}: label {labels[i]} of example {i} is not below {classes}");
            byClass[labels[i]].Add(i);
        }
        var chosen = new List<int>(size);
        for (int c = 0; c < classes; c++)
        {
            int take = size / classes + (c < size % classes ? 1 : 0);
            if (take > byClass[c].Count)
                throw new ArgumentOutOfRangeException(nameof(size), $"{what}: class {c} has only {byClass[c].Count} examples, a balanced subset of {size} needs {take}");
            chosen.AddRange(byClass[c].Take(take));
        }
        return Permute(rng, chosen.ToArray());
    }

    internal static int[] Permute(Random rng, int[] a)
    {
        for (int i = a.Length - 1; i > 0; i--) { int j = rng.Next(i + 1); (a[i], a[j]) = (a[j], a[i]); }
        return a;
    }
}
