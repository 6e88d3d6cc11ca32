using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Harness.Host.Matrix;
using Harness.Host.Output;
using Harness.Host.Plugins;
using Harness.Host.Reports;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Harness.Host.Cli;

/// <summary>
/// <c>harness reproduce &lt;paperNNN|all&gt; [--tier quick|full]</c>: runs the paper's experiment files of that tier
/// (experiments/paperNNN-&lt;tier&gt;[-part].yaml) one after another through <see cref="MatrixRunner"/>, as <c>run</c>
/// does, writes each matrix's report and one reproduction page (<see cref="ReproductionPage"/>). Exit code 1 when a
/// claim marked <c>must_pass</c> (an exact toy) does not pass, a run failed, or a file could not be run or reported;
/// network claims may end "fail" or "not enough data" without failing the command.
/// </summary>
public static partial class ReproduceCommand
{
    public static readonly string[] Tiers = ["quick", "full"];

    [GeneratedRegex("^(paper[0-9]{3})-(quick|full)(-[a-z0-9-]+)?\\.yaml$")]
    private static partial Regex ExperimentFile();

    /// <summary>One experiment file of a reproduction.</summary>
    public sealed record Experiment(string Paper, string Tier, string File);

    public static Command Create(Option<string?> plugins, Option<string?> results, Option<int?> threads, Option<bool> inProcess)
    {
        var target = new Argument<string>("paper") { Description = "paper000 … paper004, or all" };
        var tier = new Option<string>("--tier") { Description = "quick (exact toys and the shortest network runs) or full", DefaultValueFactory = _ => "quick" };
        var experiments = new Option<string?>("--experiments") { Description = "folder of the paperNNN-<tier>*.yaml files (default: the first experiments/ folder in the host's folder or a folder above it)" };
        var output = new Option<string?>("--out") { Description = "folder for the reproduction page and its figures (default: <results>/reproductions)" };
        var cmd = new Command("reproduce", "Run a paper's experiment files of a tier (or all papers'), write each matrix's report and one reproduction page with every claim's verdict; exit 1 when a must_pass (exact toy) claim does not pass.")
            { target, tier, experiments, output, plugins, results, threads, inProcess };
        cmd.SetAction((p, ct) => Run(p, p.GetValue(target)!, p.GetValue(tier)!, p.GetValue(experiments), p.GetValue(output), p.GetValue(inProcess), ct));
        return cmd;
    }

    /// <summary>The experiments folder: the first <c>experiments/</c> in <paramref name="start"/> or a folder above it.</summary>
    public static string? FindExperiments(string start)
    {
        for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
            if (Directory.Exists(Path.Combine(d.FullName, "experiments"))) return Path.Combine(d.FullName, "experiments");
        return null;
    }

    /// <summary>The files of <paramref name="target"/> (a paper or "all") and tier in <paramref name="folder"/>, in
    /// paper then name order; an error message instead when the paper or tier is unknown or has no file.</summary>
    public static (IReadOnlyList<Experiment> Files, string? Error) Discover(string folder, string target, string tier)
    {
        if (!Tiers.Contains(tier)) return ([], $"error: unknown tier '{tier}' (one of: {string.Join(", ", Tiers)})");
        var all = Directory.EnumerateFiles(folder, "paper*.yaml")
            .Select(f => (File: f, M: ExperimentFile().Match(Path.GetFileName(f)))).Where(x => x.M.Success)
            .Select(x => new Experiment(x.M.Groups[1].Value, x.M.Groups[2].Value, x.File))
            .OrderBy(e => e.Paper, StringComparer.Ordinal).ThenBy(e => Path.GetFileName(e.File), StringComparer.Ordinal).ToList();
        var papers = all.Select(e => e.Paper).Distinct().ToList();
        if (target != "all" && !papers.Contains(target))
            return ([], $"error: unknown paper '{target}' (one of: {string.Join(", ", papers.Append("all"))}; experiment files are {folder}/paperNNN-quick|full[-part].yaml)");
        var files = all.Where(e => e.Tier == tier && (target == "all" || e.Paper == target)).ToList();
        if (files.Count == 0) return ([], $"error: no {tier}-tier experiment file for {target} in {folder} (expected {(target == "all" ? "paperNNN" : target)}-{tier}[-part].yaml)");
        return (files, null);
    }

    private static async Task<int> Run(ParseResult p, string target, string tier, string? experimentsDir, string? outDir, bool inProcess, CancellationToken outer)
    {
        string? folder = experimentsDir ?? FindExperiments(AppContext.BaseDirectory);
        if (folder is null || !Directory.Exists(folder))
        {
            Console.Error.WriteLine(experimentsDir is null
                ? $"error: no experiments/ folder in {AppContext.BaseDirectory} or any folder above it; pass --experiments <folder>"
                : $"error: experiments folder '{experimentsDir}' does not exist");
            return 2;
        }
        var (files, error) = Discover(folder, target, tier);
        if (error is not null) { Console.Error.WriteLine(error); return 2; }

        HarnessOptions o;
        try { o = HarnessCli.Options(p); }
        catch (OptionsValidationException e) { Console.Error.WriteLine("error: " + e.Message); return 2; }
        o.MetricsUrl = "none";
        var (cts, signals) = HarnessCli.CancelOnSignals(outer);
        using var _ = cts;
        try { return await RunFiles(o, target, tier, files, outDir ?? Path.Combine(o.ResultsDirectory, "reproductions"), inProcess, cts.Token); }
        finally { foreach (var s in signals) s.Dispose(); }
    }

    private static async Task<int> RunFiles(HarnessOptions o, string target, string tier, IReadOnlyList<Experiment> files, string outDir, bool inProcess, CancellationToken ct)
    {
        await using var app = HarnessCli.BuildWebHost(o, serve: false);
        var log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("reproduce");
        var catalog = app.Services.GetRequiredService<PluginCatalog>();
        var runner = app.Services.GetRequiredService<MatrixRunner>();
        foreach (var e in catalog.Errors) log.LogWarning("plugin {File} was not loaded: {Reason}", e.File, e.Reason);
        // One worker process serves every run of every file in turn (it reads each run's matrix file itself).
        using var session = new Workers.WorkerSession();
        var clock = Stopwatch.StartNew();
        string loadBefore = LoadAverage();
        var entries = new List<ReproductionPage.Entry>();
        bool problems = false;
        for (int i = 0; i < files.Count; i++)
        {
            var f = files[i];
            string name = Path.GetFileName(f.File);
            log.LogInformation("[{N}/{Total}] {Paper} {File} (elapsed {Elapsed})", i + 1, files.Count, f.Paper, name, Elapsed(clock.Elapsed));
            var fileClock = Stopwatch.StartNew();
            MatrixSpec spec;
            try { spec = MatrixParser.ParseFile(f.File, catalog, o.TrustedPolicy()); MatrixExpander.Expand(spec); }
            catch (MatrixValidationException e)
            {
                Console.Error.WriteLine(e.Message);
                entries.Add(new ReproductionPage.Entry(f.Paper, name, null, 0, "not run: the file is not a valid matrix"));
                problems = true;
                continue;
            }
            var execute = inProcess ? HarnessCli.InProcessExecute(catalog, app, log) : HarnessCli.WorkerExecute(app, catalog, f.File, session);
            var outcome = runner.Run(spec, new LogProgress(log), ct, null, execute);
            if (ct.IsCancellationRequested) { Console.Error.WriteLine("interrupted: unfinished runs are marked 'interrupted' and run again next time"); return 130; }
            WrittenReport? report = null;
            string? note = null;
            try { report = ReportWriter.WriteReport(outcome.Directory, spec.Claims, spec.SourceFile); }
            catch (Exception e) { note = $"the report could not be written: {e.Message}"; problems = true; }   // whatever a figure throws, the runs stay done
            int failedRuns = outcome.Runs.Count(r => r.Status == RunStatus.Failed);
            if (failedRuns > 0) { problems = true; note = (note is null ? "" : note + "; ") + $"{failedRuns} run(s) failed"; }
            var entry = new ReproductionPage.Entry(f.Paper, name, report, fileClock.Elapsed.TotalSeconds, note);
            entries.Add(entry);
            log.LogInformation("[{N}/{Total}] {File} done in {Seconds}: {Verdicts}{Note}", i + 1, files.Count, name, Elapsed(fileClock.Elapsed),
                report is null ? "no verdicts" : string.Join(", ", report.Verdicts.GroupBy(v => v.VerdictText).Select(g => $"{g.Count()} {g.Key}")),
                note is null ? "" : $" ({note})");
        }
        var page = new ReproductionPage(target, tier, entries, clock.Elapsed.TotalSeconds, o.Threads, loadBefore, LoadAverage());
        var (md, html) = page.Write(outDir);
        // Log lines are written asynchronously; the table goes after them.
        await Task.Delay(200, CancellationToken.None);
        Console.WriteLine(page.ConsoleTable());
        Console.WriteLine($"reproduction page: {md} and {html}");
        var toys = page.Rows.Where(r => r.Claim.MustPass).ToList();
        var notPassed = toys.Where(r => r.Verdict != Verdict.Pass).ToList();
        Console.WriteLine($"{tier} tier of {target}: {files.Count} file(s) in {Elapsed(clock.Elapsed)}; must-pass claims: {toys.Count - notPassed.Count} of {toys.Count} pass; "
            + $"other claims: {page.Rows.Count(r => !r.Claim.MustPass && r.Verdict == Verdict.Pass)} pass, {page.Rows.Count(r => !r.Claim.MustPass && r.Verdict == Verdict.Fail)} fail, "
            + $"{page.Rows.Count(r => !r.Claim.MustPass && r.Verdict == Verdict.NotEnoughData)} not enough data");
        foreach (var r in notPassed) Console.Error.WriteLine($"error: must-pass claim {r.File}:{r.Claim.Id} is '{r.VerdictText}': {r.Reason}");
        foreach (var e in entries.Where(e => e.Note is not null)) Console.Error.WriteLine($"error: {e.File}: {e.Note}");
        return notPassed.Count > 0 || problems ? 1 : 0;
    }

    public static string Elapsed(TimeSpan t) => t.TotalHours >= 1
        ? t.ToString(@"h\:mm\:ss", CultureInfo.InvariantCulture) : t.ToString(@"m\:ss", CultureInfo.InvariantCulture);

    /// <summary>The 1-, 5- and 15-minute load averages (Linux), to read a shared machine's wall times by.</summary>
    private static string LoadAverage()
    {
        try { return string.Join(" ", File.ReadAllText("/proc/loadavg").Split(' ').Take(3)); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return "unknown"; }
    }
}
