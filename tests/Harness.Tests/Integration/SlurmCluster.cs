using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;

namespace Harness.Tests.Integration;

/// <summary>A real single-node Slurm cluster on this machine (Debian's slurm-wlm and munge): munged with its own key
/// and socket, slurmctld and slurmd on 127.0.0.1 with a slurm.conf written into a temporary folder (2 CPUs,
/// job completions logged to a file so <c>sacct -c</c> works without slurmdbd). The machine's /etc/slurm and
/// /etc/munge are not used. Disposing cancels the jobs it submitted and stops the three daemons it started.</summary>
public sealed class SlurmCluster : IDisposable
{
    private readonly List<Process> _daemons = [];
    private readonly List<string> _jobs = [];

    public string Root { get; }
    public string Config => Path.Combine(Root, "slurm.conf");
    public string JobCompletions => Path.Combine(Root, "jobcomp.txt");
    public string Node { get; } = Environment.MachineName.Split('.')[0];

    /// <summary>Installs slurm-wlm and munge when missing (scripts/setup.sh --with-slurm, idempotent; needs root).</summary>
    public static void EnsureInstalled()
    {
        if (Installed()) return;
        var (code, stdout, stderr) = Exec.Run("bash", [Path.Combine(Paths.RepoRoot, "scripts", "setup.sh"), "--with-slurm"], TimeSpan.FromMinutes(20));
        Assert.AreEqual(0, code, "scripts/setup.sh --with-slurm could not install slurm-wlm and munge:\n" + stdout + stderr);
        Assert.IsTrue(Installed(), "slurm-wlm and munge are installed, but slurmctld, slurmd, munged or sbatch is still missing");
    }

    private static bool Installed() =>
        File.Exists("/usr/sbin/slurmctld") && File.Exists("/usr/sbin/slurmd") && File.Exists("/usr/sbin/munged") && File.Exists("/usr/bin/sbatch");

    public SlurmCluster()
    {
        Root = Paths.NewTempDirectory("slurm");
        var munge = Path.Combine(Root, "munge");     // socket, pid, log: must be reachable by everyone (munged checks)
        var key = Path.Combine(Root, "munge-key");   // the key: root only
        foreach (var d in new[] { munge, key, Path.Combine(Root, "state"), Path.Combine(Root, "spool"), Path.Combine(Root, "log") })
            Directory.CreateDirectory(d);
        File.SetUnixFileMode(Root, (UnixFileMode)0b111_101_101);
        File.SetUnixFileMode(munge, (UnixFileMode)0b111_101_101);
        File.SetUnixFileMode(key, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var keyFile = Path.Combine(key, "munge.key");
        File.WriteAllBytes(keyFile, RandomNumberGenerator.GetBytes(1024));
        File.SetUnixFileMode(keyFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var socket = Path.Combine(munge, "munge.socket");

        int ctldPort = HarnessProcess.FreePort(), slurmdPort = HarnessProcess.FreePort();
        while (slurmdPort == ctldPort) slurmdPort = HarnessProcess.FreePort();
        File.WriteAllText(Config, $"""
            ClusterName=harnesstest
            SlurmctldHost={Node}(127.0.0.1)
            SlurmctldPort={ctldPort}
            SlurmdPort={slurmdPort}
            CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
            SlurmUser=root
            SlurmdUser=root
            AuthType=auth/munge
            CredType=cred/munge
            AuthInfo=socket={socket}
            StateSaveLocation={Root}/state
            SlurmdSpoolDir={Root}/spool
            SlurmctldPidFile={Root}/slurmctld.pid
            SlurmdPidFile={Root}/slurmd.pid
            SlurmctldLogFile={Root}/log/slurmctld.log
            SlurmdLogFile={Root}/log/slurmd.log
            ProctrackType=proctrack/linuxproc
            TaskPlugin=task/none
            SelectType=select/cons_tres
            SelectTypeParameters=CR_CPU
            SchedulerType=sched/backfill
            ReturnToService=2
            MpiDefault=none
            MailProg=/bin/true
            JobCompType=jobcomp/filetxt
            JobCompLoc={JobCompletions}
            AccountingStorageType=accounting_storage/none
            JobAcctGatherType=jobacct_gather/none
            KillWait=10
            NodeName={Node} NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN
            PartitionName=harness Nodes={Node} Default=YES MaxTime=INFINITE State=UP
            """ + "\n");
        try
        {
            StartDaemon("/usr/sbin/munged", "-F", $"--key-file={keyFile}", $"--socket={socket}", $"--pid-file={munge}/munged.pid",
                $"--log-file={munge}/munged.log", $"--seed-file={munge}/munged.seed");
            Until(() => File.Exists(socket), TimeSpan.FromSeconds(30), "munged's socket");
            StartDaemon("/usr/sbin/slurmctld", "-D", "-f", Config);
            Until(() => Slurm("sinfo", "-h", "-o", "%P").code == 0, TimeSpan.FromSeconds(60), "slurmctld to answer sinfo");
            StartDaemon("/usr/sbin/slurmd", "-D", "-f", Config);
            Until(() => Slurm("sinfo", "-h", "-N", "-o", "%T").stdout.Trim() == "idle", TimeSpan.FromSeconds(60), "the node to be idle");
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    private void StartDaemon(string exe, params string[] args)
    {
        var psi = new ProcessStartInfo(exe) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["SLURM_CONF"] = Config;
        var p = Process.Start(psi)!;
        var log = new StringBuilder();
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.AppendLine(e.Data); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (log) log.AppendLine(e.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        _daemons.Add(p);
        _logs[p] = log;
    }

    private readonly Dictionary<Process, StringBuilder> _logs = [];

    /// <summary>What the daemons printed, for failure messages.</summary>
    public string DaemonLogs() => string.Join("\n", _logs.Select(kv =>
    {
        lock (kv.Value) return $"--- {Path.GetFileName(SafeName(kv.Key))}:\n{kv.Value}";
    }));

    private static string SafeName(Process p) { try { return p.StartInfo.FileName; } catch (InvalidOperationException) { return "?"; } }

    /// <summary>Runs a Slurm client command against this cluster (SLURM_CONF set).</summary>
    public (int code, string stdout, string stderr) Slurm(string command, params string[] args) =>
        Exec.Run(command, args, TimeSpan.FromSeconds(60), new() { ["SLURM_CONF"] = Config });

    /// <summary>Submits with sbatch from <paramref name="workingDirectory"/> and returns the job id.</summary>
    public string Submit(string workingDirectory, IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        var env = new Dictionary<string, string>(environment) { ["SLURM_CONF"] = Config };
        var (code, stdout, stderr) = Exec.Run("sbatch", ["--parsable", .. args], TimeSpan.FromSeconds(60), env, workingDirectory);
        Assert.AreEqual(0, code, "sbatch failed:\n" + stdout + stderr + DaemonLogs());
        string id = stdout.Trim().Split(';')[0];
        Assert.IsTrue(id.Length > 0 && id.All(char.IsAsciiDigit), $"sbatch --parsable printed a job id: '{stdout}'");
        _jobs.Add(id);
        return id;
    }

    /// <summary>True while any task of the job is pending or running.</summary>
    public bool Active(string job)
    {
        var (code, stdout, _) = Slurm("squeue", "-h", "-j", job, "-o", "%i %T");
        return code == 0 && stdout.Trim().Length > 0;
    }

    public void WaitForJob(string job, TimeSpan timeout) =>
        Until(() => !Active(job), timeout, $"job {job} to finish");

    public void Until(Func<bool> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            foreach (var d in _daemons)
                if (d.HasExited) Assert.Fail($"{SafeName(d)} exited (code {d.ExitCode}) before {what}\n{DaemonLogs()}");
            if (DateTime.UtcNow > deadline) Assert.Fail($"timed out after {timeout.TotalSeconds:0}s waiting for {what}\n{DaemonLogs()}");
            Thread.Sleep(200);
        }
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int signal);

    public void Dispose()
    {
        foreach (var job in _jobs)
            if (Active(job)) Slurm("scancel", job);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (_jobs.Any(Active) && DateTime.UtcNow < deadline) Thread.Sleep(200);
        // Stop in reverse order of start (slurmd, slurmctld, munged): SIGTERM, then SIGKILL after 15 s.
        foreach (var d in Enumerable.Reverse(_daemons))
        {
            try
            {
                if (!d.HasExited) kill(d.Id, 15);
                if (!d.WaitForExit(15_000)) { d.Kill(); d.WaitForExit(5_000); }
            }
            catch (InvalidOperationException) { }
            d.Dispose();
        }
        _daemons.Clear();
        try { Directory.Delete(Root, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
