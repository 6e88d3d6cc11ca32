using System.IO.Compression;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Models;

/// <summary>Reads the Fashion-MNIST IDX files (gzip or raw) from a folder, by default the Debian package's
/// location, and draws seeded class-balanced subsets. Nothing is ever downloaded. Only the labels (60 000 bytes) are
/// kept per process; the images of a subset are read from the file's rows (a gzip file's decompressed copy is kept in
/// a cache folder, so only the first run decompresses it), so a run holds only the examples it uses, in its own
/// dtype.</summary>
public static class FashionMnist
{
    public const string DefaultDirectory = "/usr/share/datasets/fashion-mnist";
    public const string DirectoryVariable = "HARNESS_FASHION_MNIST_DIR";
    public const int Classes = 10;
    public const int Pixels = 784;

    /// <summary>The configured folder (the matrix's data_dir; its "fashion-mnist" subfolder when the files are there
    /// instead, so one data_dir can hold several datasets), else the environment variable, else the Debian location.</summary>
    public static string ResolveDirectory(string? configured)
    {
        if (configured is not null)
        {
            var sub = Path.Combine(configured, "fashion-mnist");
            bool direct = File.Exists(Path.Combine(configured, "train-images-idx3-ubyte.gz")) || File.Exists(Path.Combine(configured, "train-images-idx3-ubyte"));
            bool nested = File.Exists(Path.Combine(sub, "train-images-idx3-ubyte.gz")) || File.Exists(Path.Combine(sub, "train-images-idx3-ubyte"));
            return !direct && nested ? sub : configured;
        }
        return Environment.GetEnvironmentVariable(DirectoryVariable) ?? DefaultDirectory;
    }

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<(string, bool), Lazy<byte[]>> LabelCache = new();

    /// <summary>The labels 0..9 of a split (read once per process and folder; the subset selection needs all of them).</summary>
    public static byte[] ReadLabels(string directory, bool train)
    {
        var key = (Path.GetFullPath(directory), train);
        var lazy = LabelCache.GetOrAdd(key, k => new Lazy<byte[]>(() => ReadLabelsUncached(k.Item1, k.Item2)));
        try { return lazy.Value; }
        catch { LabelCache.TryRemove(new KeyValuePair<(string, bool), Lazy<byte[]>>(key, lazy)); throw; }
    }

    private static string Prefix(bool train) => train ? "train" : "t10k";

    private static byte[] ReadLabelsUncached(string directory, bool train)
    {
        Find(directory, $"{Prefix(train)}-images-idx3-ubyte"); // a missing split is named by its images file
        var path = Find(directory, $"{Prefix(train)}-labels-idx1-ubyte");
        using var s = Open(path);
        var (count, rowLength) = ReadHeader(s, path, 0x00000801);
        var labels = new byte[count];
        ReadExactly(s, labels, path, 8 + (long)count * rowLength);
        ExpectEnd(s, path, 8 + (long)count * rowLength);
        return labels;
    }

    /// <summary>The raw pixels (0..255) of the examples <paramref name="indices"/> of a split, row k = example
    /// indices[k]. An uncompressed file (the raw IDX file, or the decompressed copy of a gzip file kept in
    /// <see cref="CacheDirectory"/>) is checked against its header's length and read row by row where the examples are;
    /// a gzip file without a copy is streamed to its end (so a truncated or oversized file is reported), the rows picked
    /// out on the way, and the copy written for the next run (best effort: an unwritable cache only costs time).</summary>
    public static byte[] ReadImages(string directory, bool train, int[] indices)
    {
        string prefix = Prefix(train);
        var path = Find(directory, $"{prefix}-images-idx3-ubyte");
        int labelCount = ReadLabels(directory, train).Length;
        bool gzip = path.EndsWith(".gz", StringComparison.Ordinal);
        string? copy = gzip ? CachedCopy(path) : null;
        if (copy is not null && File.Exists(copy))
        {
            try { return ReadRows(copy, directory, prefix, labelCount, indices, displayPath: path); }
            catch (InvalidDataException) { TryDelete(copy); }   // a damaged copy: read the original again
        }
        return gzip ? StreamRows(path, directory, prefix, labelCount, indices, copy) : ReadRows(path, directory, prefix, labelCount, indices, path);
    }

    /// <summary>Where decompressed copies of gzip images files are kept: $HARNESS_DATA_CACHE (the value <c>off</c>
    /// disables the cache), else $XDG_CACHE_HOME/harness, else ~/.cache/harness.</summary>
    public static string? CacheDirectory()
    {
        var configured = Environment.GetEnvironmentVariable(CacheVariable);
        if (configured == "off") return null;
        if (!string.IsNullOrEmpty(configured)) return configured;
        var xdg = Environment.GetEnvironmentVariable("XDG_CACHE_HOME");
        if (!string.IsNullOrEmpty(xdg)) return Path.Combine(xdg, "harness");
        var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        return string.IsNullOrEmpty(home) ? null : Path.Combine(home, ".cache", "harness");
    }

    public const string CacheVariable = "HARNESS_DATA_CACHE";

    /// <summary>The copy's path, keyed by the source's full path, length and modification time (a replaced source
    /// gets a new copy).</summary>
    private static string? CachedCopy(string gzPath)
    {
        if (CacheDirectory() is not { } root) return null;
        var info = new FileInfo(gzPath);
        var key = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(
            System.Text.Encoding.UTF8.GetBytes($"{info.FullName}|{info.Length}|{info.LastWriteTimeUtc.Ticks}")))[..16];
        return Path.Combine(root, "idx", key, Path.GetFileNameWithoutExtension(gzPath));
    }

    private static (int n, long expected) CheckHeader(Stream s, string path, string directory, string prefix, int labelCount)
    {
        var (n, rowLen) = ReadHeader(s, path, 0x00000803);
        if (n != labelCount)
            throw new InvalidDataException($"{directory}: {prefix} images ({n}) and labels ({labelCount}) differ in count");
        if (rowLen != Pixels)
            throw new InvalidDataException($"{directory}: {prefix} images are {rowLen} pixels, expected {Pixels}");
        return (n, 16 + (long)n * rowLen);
    }

    private static void CheckIndices(int[] indices, int n, string path)
    {
        foreach (int i in indices)
            if ((uint)i >= (uint)n) throw new ArgumentOutOfRangeException(nameof(indices), $"{path}: example {i} does not exist ({n} images)");
    }

    /// <summary>An uncompressed IDX file: its length must be the header's; the rows are read where they are.</summary>
    private static byte[] ReadRows(string file, string directory, string prefix, int labelCount, int[] indices, string displayPath)
    {
        using var s = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 12, FileOptions.RandomAccess);
        var (n, expected) = CheckHeader(s, displayPath, directory, prefix, labelCount);
        if (s.Length < expected) throw new InvalidDataException($"{displayPath}: truncated or corrupt IDX file (it ends before the {expected} bytes its header says)");
        if (s.Length > expected) throw new InvalidDataException($"{displayPath}: corrupt IDX file (longer than the {expected} bytes its header says)");
        CheckIndices(indices, n, displayPath);
        var output = new byte[(long)indices.Length * Pixels];
        var order = Enumerable.Range(0, indices.Length).OrderBy(k => indices[k]).ToArray();   // forward reads
        for (int j = 0; j < order.Length; j++)
        {
            int k = order[j];
            if (j > 0 && indices[order[j - 1]] == indices[k])
            {
                Array.Copy(output, (long)order[j - 1] * Pixels, output, (long)k * Pixels, Pixels);
                continue;
            }
            s.Position = 16 + (long)indices[k] * Pixels;
            s.ReadExactly(output, k * Pixels, Pixels);
        }
        return output;
    }

    /// <summary>A gzip file streamed to its end; the rows of <paramref name="indices"/> picked out on the way and, when
    /// <paramref name="copy"/> is set, the decompressed file written there (renamed into place once complete).</summary>
    private static byte[] StreamRows(string path, string directory, string prefix, int labelCount, int[] indices, string? copy)
    {
        using var s = Open(path);
        var (n, expected) = CheckHeader(s, path, directory, prefix, labelCount);
        CheckIndices(indices, n, path);
        // Example i goes to the rows first[i], next[first[i]], ... (an index may be asked for more than once).
        var first = new int[n];
        Array.Fill(first, -1);
        var next = new int[indices.Length];
        for (int k = indices.Length - 1; k >= 0; k--)
        {
            next[k] = first[indices[k]];
            first[indices[k]] = k;
        }
        FileStream? cache = null;
        string? tmp = null;
        if (copy is not null)
        {
            try
            {
                Directory.CreateDirectory(Path.GetDirectoryName(copy)!);
                tmp = $"{copy}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
                cache = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16);
                WriteHeader(cache, n);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { cache?.Dispose(); cache = null; TryDelete(tmp); tmp = null; }
        }
        try
        {
            var output = new byte[(long)indices.Length * Pixels];
            var row = new byte[Pixels];
            for (int i = 0; i < n; i++)
            {
                ReadExactly(s, row, path, expected);
                for (int k = first[i]; k >= 0; k = next[k]) row.CopyTo(output, (long)k * Pixels);
                if (cache is not null)
                {
                    try { cache.Write(row); }
                    catch (Exception e) when (e is IOException or UnauthorizedAccessException) { cache.Dispose(); cache = null; TryDelete(tmp); tmp = null; }
                }
            }
            ExpectEnd(s, path, expected);
            if (cache is not null)
            {
                try
                {
                    cache.Dispose();
                    cache = null;
                    File.Move(tmp!, copy!, overwrite: true);
                    tmp = null;
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
            }
            return output;
        }
        finally
        {
            cache?.Dispose();
            TryDelete(tmp);
        }
    }

    private static void WriteHeader(Stream s, int n)
    {
        Span<byte> h = stackalloc byte[16];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(h, 0x00000803);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(h[4..], n);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(h[8..], 28);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(h[12..], 28);
        s.Write(h);
    }

    private static void TryDelete(string? path)
    {
        if (path is null) return;
        try { File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    private static Stream Open(string path)
    {
        var file = File.OpenRead(path);
        return path.EndsWith(".gz", StringComparison.Ordinal) ? new BufferedStream(new GZipStream(file, CompressionMode.Decompress), 1 << 16) : new BufferedStream(file, 1 << 16);
    }

    private static (int count, int rowLength) ReadHeader(Stream s, string path, int magic)
    {
        var head = new byte[4];
        ReadExactly(s, head, path, null);
        if (BigEndian(head, 0) != magic)
            throw new InvalidDataException($"{path}: not an IDX file of the expected type (bad magic number)");
        int dims = head[3];
        var sizes = new byte[4 * dims];
        ReadExactly(s, sizes, path, null);
        int count = BigEndian(sizes, 0), rowLength = 1;
        for (int d = 1; d < dims; d++) rowLength *= BigEndian(sizes, 4 * d);
        return (count, rowLength);
    }

    private static void ReadExactly(Stream s, byte[] buffer, string path, long? expected)
    {
        try
        {
            int read = s.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false);
            if (read < buffer.Length)
                throw new InvalidDataException(expected is { } e
                    ? $"{path}: truncated or corrupt IDX file (it ends before the {e} bytes its header says)"
                    : $"{path}: truncated or corrupt IDX file (it ends inside the header)");
        }
        catch (InvalidDataException e) when (!e.Message.StartsWith(path, StringComparison.Ordinal))
        {
            throw new InvalidDataException($"{path}: unreadable ({e.Message})", e);
        }
    }

    private static void ExpectEnd(Stream s, string path, long expected)
    {
        try
        {
            if (s.ReadByte() >= 0)
                throw new InvalidDataException($"{path}: corrupt IDX file (longer than the {expected} bytes its header says)");
        }
        catch (InvalidDataException e) when (!e.Message.StartsWith(path, StringComparison.Ordinal))
        {
            throw new InvalidDataException($"{path}: unreadable ({e.Message})", e);
        }
    }

    private static string Find(string directory, string stem)
    {
        foreach (var name in new[] { stem + ".gz", stem })
        {
            var path = Path.Combine(directory, name);
            if (File.Exists(path)) return path;
        }
        throw new FileNotFoundException(
            $"Fashion-MNIST file '{stem}.gz' not found in '{directory}'. Install the Debian package " +
            $"'dataset-fashion-mnist' (scripts/setup.sh does) or set {DirectoryVariable} / the model's data_dir.",
            Path.Combine(directory, stem + ".gz"));
    }

    private static int BigEndian(byte[] b, int o) => (b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3];

    /// <summary>A class-balanced subset (see <see cref="Subsets.Balanced"/>).</summary>
    public static int[] BalancedSubset(byte[] labels, int size, long seed) => Subsets.Balanced(labels, Classes, size, seed, "Fashion-MNIST");

    /// <summary>Mean and standard deviation of the Fashion-MNIST training pixels (in [0,1]): inputs are standardised
    /// with them, as the edge-of-stability papers centre and scale their inputs.</summary>
    public const double PixelMean = 0.2860, PixelStd = 0.3530;

    /// <summary>Standardised input (N×784, in <paramref name="dtype"/>) and int64 label tensors of the examples
    /// <paramref name="indices"/> of a split. Each pixel is (b/255 − mean)/std computed in float64 and rounded once to
    /// the dtype, the same values as a float64 tensor converted to it.</summary>
    public static (Tensor inputs, Tensor labels) Tensors(string directory, bool train, int[] indices, ScalarType dtype, Device device)
    {
        var labels = ReadLabels(directory, train);
        var raw = ReadImages(directory, train, indices);
        var level = new double[256];
        for (int b = 0; b < 256; b++) level[b] = (b / 255.0 - PixelMean) / PixelStd;
        var y = new long[indices.Length];
        for (int k = 0; k < indices.Length; k++) y[k] = labels[indices[k]];
        long[] shape = [indices.Length, Pixels];
        Tensor x;
        if (dtype == ScalarType.Float32)
        {
            var f = new float[raw.Length];
            for (long i = 0; i < raw.Length; i++) f[i] = (float)level[raw[i]];
            x = tensor(f, shape, dtype: ScalarType.Float32);
        }
        else
        {
            var d = new double[raw.Length];
            for (long i = 0; i < raw.Length; i++) d[i] = level[raw[i]];
            x = tensor(d, shape, dtype: ScalarType.Float64);
        }
        if (x.dtype != dtype || device.type != DeviceType.CPU) x = x.to(dtype, device);
        return (x, tensor(y, dtype: ScalarType.Int64).to(device));
    }
}
