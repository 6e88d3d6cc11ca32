using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace Harness.Host.Matrix;

/// <summary>
/// What a matrix may ask for, and how much of it. <see cref="Confined"/> is for matrices submitted to the service
/// (API and inbox): every path is resolved with its symlinks and must lie under one of <see cref="FileRoots"/>
/// (files) or <see cref="DataRoots"/> (data_dir), and a refused path gets one message that does not tell whether
/// it exists. <c>run</c> and <c>validate</c> use the configured limits without confinement (the local user's own
/// files; errors name them), see <see cref="HarnessOptions.TrustedPolicy"/>; <see cref="Trusted"/> (no limits but
/// nesting) is for workers re-reading a matrix their supervisor validated. All read only regular files, without
/// blocking, and bound the nesting depth before the YAML is built.
/// </summary>
public sealed record InputPolicy
{
    /// <summary>Deepest nesting of lists and mappings accepted (the demo needs 4).</summary>
    public int MaxNesting { get; init; } = 64;
    /// <summary>Most runs (cells) one matrix may expand to.</summary>
    public long MaxRuns { get; init; } = 10_000;
    /// <summary>Largest matrix file read, in bytes.</summary>
    public long MaxMatrixBytes { get; init; } = 1 << 20;
    /// <summary>Largest optimizer state file (preconditioner_from.file) read, in bytes.</summary>
    public long MaxStateFileBytes { get; init; } = 256L << 20;

    /// <summary>Null: paths are not confined (trusted input).</summary>
    public IReadOnlyList<string>? FileRoots { get; init; }
    public IReadOnlyList<string>? DataRoots { get; init; }
    /// <summary>When confined: the service's results root; relative paths of a matrix resolve against its folder
    /// there (results/&lt;name&gt;/, where the service keeps the copy its workers read), so the service and its
    /// workers read the same file.</summary>
    public string? ResultsRoot { get; init; }

    public bool IsConfined => FileRoots is not null;

    /// <summary>Deepest nesting any policy may allow: YamlDotNet builds nodes recursively, and this stays far
    /// from a thread's stack limit.</summary>
    public const int NestingCeiling = 512;

    /// <summary>No limits but the nesting ceiling and the file rules: for a file already validated by whoever
    /// configured the limits (a worker re-reading its supervisor's matrix copy) and for library callers.</summary>
    public static InputPolicy Trusted { get; } = new()
    {
        MaxNesting = NestingCeiling, MaxRuns = long.MaxValue, MaxMatrixBytes = long.MaxValue, MaxStateFileBytes = long.MaxValue,
    };

    public static InputPolicy Confined(string workingDirectory, string resultsRoot, IEnumerable<string> dataRoots) => new()
    {
        ResultsRoot = Path.GetFullPath(resultsRoot),
        FileRoots = [Path.GetFullPath(workingDirectory), Path.GetFullPath(resultsRoot)],
        DataRoots = [.. dataRoots.Select(d => Path.GetFullPath(d, workingDirectory)), Path.GetFullPath(workingDirectory)],
    };

    /// <summary>The one message for a path the service will not touch: it says nothing about the path itself.</summary>
    public const string RefusedMessage = "path not allowed: it must name an existing regular file under the service's working directory, results root or data roots (symlinks are followed and must stay inside them)";
    public const string RefusedDirectoryMessage = "path not allowed: it must name an existing folder under the service's data roots or working directory (symlinks are followed and must stay inside them)";
}

/// <summary>The outcome of opening a path: the bytes, or why not (null = the path is refused without detail).</summary>
public readonly record struct FileRead(byte[]? Bytes, string? Problem);

/// <summary>
/// Reads files named by untrusted input. The path is canonicalised with realpath(3) (every symlink of every component
/// resolved), checked against the roots, opened with O_NOFOLLOW|O_NONBLOCK (a FIFO can never block the caller; a
/// symlink swapped in afterwards is refused), and the opened descriptor must be a regular file (fstat, via statx) no
/// larger than the limit.
/// </summary>
public static class UntrustedFile
{
    private const int AT_EMPTY_PATH = 0x1000, AT_SYMLINK_NOFOLLOW = 0x100, AT_FDCWD = -100;
    private const uint STATX_TYPE = 0x1, STATX_SIZE = 0x200;
    private const int S_IFMT = 0xF000, S_IFREG = 0x8000, S_IFDIR = 0x4000;
    private const int O_RDONLY = 0, O_NONBLOCK = 0x800, O_CLOEXEC = 0x80000;
    private static readonly int O_NOFOLLOW = RuntimeInformation.ProcessArchitecture is Architecture.Arm64 or Architecture.Arm ? 0x8000 : 0x20000;

    [DllImport("libc", EntryPoint = "realpath", SetLastError = true)]
    private static extern IntPtr RealPath(byte[] path, IntPtr resolved);
    [DllImport("libc", EntryPoint = "free")]
    private static extern void Free(IntPtr p);
    [DllImport("libc", EntryPoint = "open", SetLastError = true)]
    private static extern int Open(byte[] path, int flags);
    [DllImport("libc", EntryPoint = "statx", SetLastError = true)]
    private static extern int Statx(int dirfd, byte[] path, int flags, uint mask, byte[] buffer);

    private static byte[] C(string s) => Encoding.UTF8.GetBytes(s + "\0");

    /// <summary>The path with every symlink resolved, or null (missing, a NUL byte, unreadable component).</summary>
    public static string? Canonical(string path)
    {
        if (path.Length == 0 || path.Contains('\0')) return null;
        IntPtr p = RealPath(C(path), IntPtr.Zero);
        if (p == IntPtr.Zero) return null;
        try { return Marshal.PtrToStringUTF8(p); }
        finally { Free(p); }
    }

    /// <summary>True when <paramref name="canonical"/> is one of <paramref name="roots"/> or inside one (roots are
    /// canonicalised too; a root that does not exist contains nothing).</summary>
    public static bool Inside(string canonical, IEnumerable<string> roots) =>
        roots.Select(Canonical).Any(r => r is not null && (canonical == r || canonical.StartsWith(r.TrimEnd('/') + "/", StringComparison.Ordinal)));

    /// <summary>Lexical full path of <paramref name="path"/> against <paramref name="baseDirectory"/>, or null for a
    /// path .NET cannot represent (NUL bytes and the like).</summary>
    public static string? Full(string path, string baseDirectory)
    {
        if (path.Length == 0 || path.Contains('\0')) return null;
        try { return Path.GetFullPath(path, baseDirectory); }
        catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException) { return null; }
    }

    /// <summary>File type and size of a path without following a final symlink, or null when it cannot be stat'ed.</summary>
    private static (int Type, long Size)? Stat(int fd, string? path)
    {
        var buffer = new byte[256];
        int rc = fd >= 0 ? Statx(fd, C(""), AT_EMPTY_PATH, STATX_TYPE | STATX_SIZE, buffer)
            : Statx(AT_FDCWD, C(path!), AT_SYMLINK_NOFOLLOW, STATX_TYPE | STATX_SIZE, buffer);
        if (rc != 0) return null;
        int mode = BitConverter.ToUInt16(buffer, 0x1C);
        long size = (long)BitConverter.ToUInt64(buffer, 0x28);
        return (mode & S_IFMT, size);
    }

    /// <summary>True when the path itself (not a symlink's target) is a regular file.</summary>
    public static bool IsRegularFile(string path) => Stat(-1, path) is { Type: S_IFREG };

    /// <summary>Reads a regular file of at most <paramref name="maxBytes"/>. <paramref name="roots"/> null = any
    /// path (trusted); else the canonical path must be inside a root, and every refusal has no detail
    /// (<see cref="FileRead.Problem"/> null, <see cref="FileRead.Bytes"/> null).</summary>
    public static FileRead Read(string fullPath, long maxBytes, IEnumerable<string>? roots)
    {
        string? canonical = Canonical(fullPath);
        if (canonical is null) return new(null, roots is null ? "not found" : null);
        if (roots is not null && !Inside(canonical, roots)) return new(null, null);
        int fd = Open(C(canonical), O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) return new(null, roots is null ? $"cannot be opened (errno {Marshal.GetLastPInvokeError()})" : null);
        using var handle = new SafeFileHandle(fd, ownsHandle: true);
        var st = Stat(fd, null);
        if (st is not { Type: S_IFREG } regular) return new(null, roots is null ? "is not a regular file (a FIFO, device, socket or folder)" : null);
        if (regular.Size > maxBytes) return new(null, $"is larger than the limit of {maxBytes} bytes");
        using var stream = new FileStream(handle, FileAccess.Read, bufferSize: 0);
        var bytes = new byte[regular.Size];
        int total = 0, n;
        while (total < bytes.Length && (n = stream.Read(bytes, total, bytes.Length - total)) > 0) total += n;
        // A file that grew after the stat is read up to the size seen; one that shrank is read as it is now.
        return new(total == bytes.Length ? bytes : bytes[..total], null);
    }

    /// <summary>The canonical folder for a data_dir, or null when it is refused (missing, not a folder, outside).</summary>
    public static string? Directory(string fullPath, IEnumerable<string>? roots)
    {
        string? canonical = Canonical(fullPath);
        if (canonical is null || Stat(-1, canonical) is not { Type: S_IFDIR }) return null;
        if (roots is not null && !Inside(canonical, roots)) return null;
        return canonical;
    }
}
