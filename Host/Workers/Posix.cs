using System.Runtime.InteropServices;

namespace Harness.Host.Workers;

/// <summary>The few POSIX calls the supervisor needs that .NET does not expose (SIGTERM to a child).</summary>
internal static class Posix
{
    public const int SIGTERM = 15;

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int sig);

    public static bool Terminate(int pid) => Kill(pid, SIGTERM) == 0;

    [DllImport("libc", EntryPoint = "mallopt")]
    private static extern int MallOpt(int param, int value);

    private const int M_TRIM_THRESHOLD = -1, M_MMAP_THRESHOLD = -3;

    /// <summary>Keeps freed native memory in the process instead of returning it to the kernel at every free. A
    /// training step frees and allocates the same activation and gradient buffers (hundreds of KB to MB each); with
    /// glibc's defaults they come from fresh pages (mmap/munmap, heap trimming): ~930 minor page faults per step of
    /// the demo network. Chunks up to 32 MiB now come from the heap, and its top is trimmed only beyond 32 MiB free:
    /// ~65 faults per step, and a lower peak RSS at width 1000 than glibc's defaults (576 against 592 MB; keeping
    /// 512 MiB untrimmed gave 688 MB). No effect where glibc is not the allocator.</summary>
    /// <remarks>HARNESS_MALLOC_MMAP_THRESHOLD / HARNESS_MALLOC_TRIM_THRESHOLD (bytes) override the two values; "default"
    /// keeps glibc's.</remarks>
    public static void RetainFreedMemory()
    {
        if (!OperatingSystem.IsLinux()) return;
        try
        {
            Set(M_MMAP_THRESHOLD, "HARNESS_MALLOC_MMAP_THRESHOLD", 32 << 20);
            Set(M_TRIM_THRESHOLD, "HARNESS_MALLOC_TRIM_THRESHOLD", 32 << 20);
        }
        catch (EntryPointNotFoundException) { }
        catch (DllNotFoundException) { }
    }

    private static void Set(int param, string variable, int value)
    {
        var v = Environment.GetEnvironmentVariable(variable);
        if (v == "default") return;
        MallOpt(param, int.TryParse(v, out int n) && n > 0 ? n : value);
    }

    /// <summary>Human reading of a child's exit code (.NET reports death by signal N as 128 + N).</summary>
    public static string DescribeExit(int code) => code switch
    {
        134 => "SIGABRT (native abort, e.g. a libtorch or plugin assertion, or a .NET stack overflow)",
        137 => "SIGKILL (killed, e.g. by the out-of-memory killer)",
        139 => "SIGSEGV (segmentation fault in native code)",
        136 => "SIGFPE",
        135 => "SIGBUS",
        143 => "SIGTERM",
        > 128 and < 160 => $"signal {code - 128}",
        _ => $"exit code {code}",
    };

    /// <summary>Resident set size of a process in bytes from /proc/&lt;pid&gt;/status (null when unavailable).</summary>
    public static long? ResidentBytes(int pid)
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                {
                    var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    return long.Parse(parts[1]) * 1024;
                }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return null;
    }
}
