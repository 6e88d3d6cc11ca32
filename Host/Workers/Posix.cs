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
    /// glibc's defaults each of them comes from fresh pages (mmap/munmap, heap trimming), about 900 minor page faults
    /// per step of the demo network. Chunks up to 32 MiB then come from the heap and the heap top is trimmed only
    /// beyond 512 MiB free, so the resident set stays at its working-set peak (the high-water mark does not grow).
    /// No effect where glibc is not the allocator.</summary>
    public static void RetainFreedMemory()
    {
        if (!OperatingSystem.IsLinux()) return;
        try
        {
            MallOpt(M_MMAP_THRESHOLD, 32 << 20);
            MallOpt(M_TRIM_THRESHOLD, 512 << 20);
        }
        catch (EntryPointNotFoundException) { }
        catch (DllNotFoundException) { }
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
