namespace Harness.Plugins.Models;

/// <summary>Reads the binary versions of CIFAR-10 and CIFAR-100 that a user supplies (never downloaded).
/// CIFAR-10 ("cifar-10-batches-bin"): data_batch_1.bin … data_batch_5.bin and test_batch.bin, records of
/// 1 label byte + 3072 pixel bytes. CIFAR-100 ("cifar-100-binary"): train.bin and test.bin, records of 1 coarse label
/// byte + 1 fine label byte + 3072 pixel bytes (the fine label, 0..99, is used). Pixels are stored as three 32×32
/// planes (R, G, B) row-major, i.e. already in C×H×W order.</summary>
public static class Cifar
{
    public const int Pixels = 3 * 32 * 32;
    public const string Cifar10Variable = "HARNESS_CIFAR10_DIR";
    public const string Cifar100Variable = "HARNESS_CIFAR100_DIR";
    /// <summary>The folder names inside the official archives; a configured data_dir may point at their parent.</summary>
    public const string Cifar10Subfolder = "cifar-10-batches-bin";
    public const string Cifar100Subfolder = "cifar-100-binary";

    public static int Classes(bool hundred) => hundred ? 100 : 10;
    public static int RecordSize(bool hundred) => (hundred ? 2 : 1) + Pixels;

    public static IReadOnlyList<string> Files(bool hundred, bool train) => (hundred, train) switch
    {
        (false, true) => ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"],
        (false, false) => ["test_batch.bin"],
        (true, true) => ["train.bin"],
        (true, false) => ["test.bin"],
    };

    private static string Label(bool hundred) => hundred ? "CIFAR-100" : "CIFAR-10";

    /// <summary>The folder holding the binary files: <paramref name="configured"/> (the matrix's data_dir) or its
    /// standard subfolder, else the environment variable. Throws naming every folder tried and the expected files.</summary>
    public static string ResolveDirectory(string? configured, bool hundred)
    {
        string variable = hundred ? Cifar100Variable : Cifar10Variable;
        string sub = hundred ? Cifar100Subfolder : Cifar10Subfolder;
        var candidates = new List<string>();
        foreach (var root in new[] { configured, Environment.GetEnvironmentVariable(variable) })
        {
            if (string.IsNullOrEmpty(root)) continue;
            candidates.Add(root);
            candidates.Add(Path.Combine(root, sub));
        }
        string first = Files(hundred, train: true)[0];
        foreach (var c in candidates)
            if (File.Exists(Path.Combine(c, first))) return c;
        string expected = string.Join(", ", Files(hundred, true).Concat(Files(hundred, false)));
        string where = candidates.Count == 0
            ? "no folder is configured"
            : "not found in " + string.Join(" or ", candidates.Select(c => $"'{c}'"));
        throw new DirectoryNotFoundException(
            $"{Label(hundred)} binary files ({expected}) {(candidates.Count == 0 ? "cannot be located: " : "")}{where}. " +
            $"CIFAR is never downloaded by the harness: download the binary version yourself, unpack it, and set the matrix's " +
            $"data_dir (the folder or its parent holding '{sub}') or {variable}.");
    }

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<(string, bool, bool), Lazy<(byte[], byte[], int)>> Cache = new();

    /// <summary>Pixel bytes (count × 3072, C×H×W per record) and labels of one split (read once per process and folder).</summary>
    public static (byte[] pixels, byte[] labels, int count) Read(string directory, bool hundred, bool train)
    {
        var key = (Path.GetFullPath(directory), hundred, train);
        var lazy = Cache.GetOrAdd(key, k => new Lazy<(byte[], byte[], int)>(() => ReadUncached(k.Item1, k.Item2, k.Item3)));
        try { return lazy.Value; }
        catch { Cache.TryRemove(new KeyValuePair<(string, bool, bool), Lazy<(byte[], byte[], int)>>(key, lazy)); throw; }
    }

    private static (byte[] pixels, byte[] labels, int count) ReadUncached(string directory, bool hundred, bool train)
    {
        int record = RecordSize(hundred), classes = Classes(hundred);
        var parts = new List<byte[]>();
        foreach (var name in Files(hundred, train))
        {
            var path = Path.Combine(directory, name);
            if (!File.Exists(path))
                throw new FileNotFoundException(
                    $"{Label(hundred)} file '{name}' not found in '{directory}' (expected {string.Join(", ", Files(hundred, train))}).", path);
            var bytes = File.ReadAllBytes(path);
            if (bytes.Length == 0 || bytes.Length % record != 0)
                throw new InvalidDataException(
                    $"{path}: truncated or corrupt {Label(hundred)} batch ({bytes.Length} bytes is not a positive multiple of the {record}-byte record)");
            parts.Add(bytes);
        }
        int count = parts.Sum(p => p.Length / record);
        var pixels = new byte[(long)count * Pixels];
        var labels = new byte[count];
        int n = 0;
        for (int f = 0; f < parts.Count; f++)
        {
            var bytes = parts[f];
            for (int r = 0; r < bytes.Length / record; r++, n++)
            {
                int o = r * record;
                byte label = hundred ? bytes[o + 1] : bytes[o];
                if (label >= classes)
                    throw new InvalidDataException(
                        $"{Path.Combine(directory, Files(hundred, train)[f])}: record {r} has label {label}, expected 0..{classes - 1} (corrupt file?)");
                labels[n] = label;
                Array.Copy(bytes, o + record - Pixels, pixels, (long)n * Pixels, Pixels);
            }
        }
        return (pixels, labels, count);
    }
}
