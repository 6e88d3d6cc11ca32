using System.IO.Compression;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Plugins.Models;

/// <summary>Reads the Fashion-MNIST IDX files (gzip or raw) from a folder, by default the Debian package's
/// location, and draws seeded class-balanced subsets. Nothing is ever downloaded.</summary>
public static class FashionMnist
{
    public const string DefaultDirectory = "/usr/share/datasets/fashion-mnist";
    public const string DirectoryVariable = "HARNESS_FASHION_MNIST_DIR";
    public const int Classes = 10;

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

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<(string, bool), Lazy<(double[], byte[], int)>> Cache = new();

    /// <summary>Images as float64 in [0,1], shape N×784, and labels 0..9 (read once per process and folder).</summary>
    public static (double[] images, byte[] labels, int count) Read(string directory, bool train)
    {
        var lazy = Cache.GetOrAdd((Path.GetFullPath(directory), train), k => new Lazy<(double[], byte[], int)>(() => ReadUncached(k.Item1, k.Item2)));
        try { return lazy.Value; }
        catch { Cache.TryRemove(new KeyValuePair<(string, bool), Lazy<(double[], byte[], int)>>((Path.GetFullPath(directory), train), lazy)); throw; }
    }

    private static (double[] images, byte[] labels, int count) ReadUncached(string directory, bool train)
    {
        string prefix = train ? "train" : "t10k";
        var images = ReadIdx(Find(directory, $"{prefix}-images-idx3-ubyte"), 0x00000803, out int n, out int rowLen);
        var labels = ReadIdx(Find(directory, $"{prefix}-labels-idx1-ubyte"), 0x00000801, out int nl, out _);
        if (n != nl)
            throw new InvalidDataException($"{directory}: {prefix} images ({n}) and labels ({nl}) differ in count");
        if (rowLen != 784)
            throw new InvalidDataException($"{directory}: {prefix} images are {rowLen} pixels, expected 784");
        var pixels = new double[images.Length];
        for (int i = 0; i < images.Length; i++) pixels[i] = images[i] / 255.0;
        return (pixels, labels, n);
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

    private static byte[] ReadIdx(string path, int magic, out int count, out int rowLength)
    {
        try
        {
            using var file = File.OpenRead(path);
            using Stream s = path.EndsWith(".gz", StringComparison.Ordinal) ? new GZipStream(file, CompressionMode.Decompress) : file;
            using var ms = new MemoryStream();
            s.CopyTo(ms);
            var bytes = ms.ToArray();
            if (bytes.Length < 8 || BigEndian(bytes, 0) != magic)
                throw new InvalidDataException($"{path}: not an IDX file of the expected type (bad magic number)");
            int dims = bytes[3];
            count = BigEndian(bytes, 4);
            rowLength = 1;
            for (int d = 1; d < dims; d++) rowLength *= BigEndian(bytes, 4 + 4 * d);
            int header = 4 + 4 * dims;
            long expected = header + (long)count * rowLength;
            if (bytes.Length != expected)
                throw new InvalidDataException($"{path}: truncated or corrupt IDX file ({bytes.Length} bytes, header says {expected})");
            return bytes[header..];
        }
        catch (InvalidDataException e) when (!e.Message.StartsWith(path, StringComparison.Ordinal))
        {
            throw new InvalidDataException($"{path}: unreadable ({e.Message})", e);
        }
    }

    private static int BigEndian(byte[] b, int o) => (b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3];

    /// <summary>A class-balanced subset (see <see cref="Subsets.Balanced"/>).</summary>
    public static int[] BalancedSubset(byte[] labels, int size, long seed) => Subsets.Balanced(labels, Classes, size, seed, "Fashion-MNIST");

    /// <summary>Mean and standard deviation of the Fashion-MNIST training pixels (in [0,1]): inputs are standardised
    /// with them, as the edge-of-stability papers centre and scale their inputs.</summary>
    public const double PixelMean = 0.2860, PixelStd = 0.3530;

    /// <summary>Builds standardised input (N×784) and label tensors for the given example indices.</summary>
    public static (Tensor inputs, Tensor labels) Tensors(double[] pixels, byte[] labels, int[] indices, ScalarType dtype, Device device)
    {
        var x = new double[indices.Length * 784];
        var y = new long[indices.Length];
        for (int k = 0; k < indices.Length; k++)
        {
            for (int j = 0; j < 784; j++) x[k * 784 + j] = (pixels[(long)indices[k] * 784 + j] - PixelMean) / PixelStd;
            y[k] = labels[indices[k]];
        }
        return (tensor(x, [indices.Length, 784], dtype: ScalarType.Float64).to(dtype, device), tensor(y, dtype: ScalarType.Int64).to(device));
    }
}
