using System.Globalization;
using System.Net;
using System.Text;
using Harness.Host.Matrix;

namespace Harness.Host.Reports;

/// <summary>
/// The page of one <c>harness reproduce</c>: &lt;target&gt;-&lt;tier&gt;.md and .html in the output folder, with one
/// verdict table over every claim of every file (paper, file, claim, text, verdict, measured value per group,
/// expected), a table of the files (runs, wall time, report) and the figures, copied as PNG into
/// figures/&lt;matrix&gt;/ beside the page so the folder stands alone (e.g. docs/reproductions/).
/// </summary>
public sealed class ReproductionPage(string target, string tier, IReadOnlyList<ReproductionPage.Entry> entries, double seconds, int threads,
    string loadBefore, string loadAfter)
{
    /// <summary>One experiment file: its report (null when it was not run or not reported), wall time and a problem.</summary>
    public sealed record Entry(string Paper, string File, WrittenReport? Report, double Seconds, string? Note);

    /// <summary>One claim's line of the verdict table.</summary>
    public sealed record Row(string Paper, string File, ClaimResult Result)
    {
        public ClaimSpec Claim => Result.Claim;
        public Verdict Verdict => Result.Verdict;
        public string VerdictText => Result.VerdictText;
        public string Reason => Result.Reason;
    }

    public static readonly IReadOnlyDictionary<string, string> PaperTitles = new Dictionary<string, string>
    {
        ["paper000"] = "Cohen et al., Adaptive Gradient Methods at the Edge of Stability",
        ["paper001"] = "Cattaneo, Klusowski, Shigida, On the Implicit Bias of Adam",
        ["paper002"] = "Roulet, Agarwala et al., Stepping on the Edge: Curvature Aware Learning Rate Tuners",
        ["paper003"] = "Jiang, Malik, Li, How Does Adaptive Optimization Impact Local Neural Network Geometry?",
        ["paper004"] = "Extending Stability Analysis to Adaptive Optimization Algorithms Using Loss Surface Geometry",
    };

    public IReadOnlyList<Row> Rows { get; } = entries.Where(e => e.Report is not null)
        .SelectMany(e => e.Report!.Verdicts.Select(v => new Row(e.Paper, e.File, v))).ToList();

    public string BaseName => $"{target}-{tier}";

    /// <summary>Writes the Markdown and HTML pages and the figures; returns the two pages' paths.</summary>
    public (string Markdown, string Html) Write(string outDir)
    {
        Directory.CreateDirectory(outDir);
        var figures = new List<(Entry Entry, string Id, string Title, string RelPath)>();
        foreach (var e in entries.Where(e => e.Report is not null))
        {
            string matrix = e.Report!.Data.Matrix;
            string dir = Path.Combine(outDir, "figures", matrix);
            Directory.CreateDirectory(dir);
            foreach (var f in e.Report.Figures)
            {
                File.WriteAllBytes(Path.Combine(dir, f.Id + ".png"), f.Png);
                figures.Add((e, f.Id, f.Title, $"figures/{matrix}/{f.Id}.png"));
            }
        }
        string md = Path.Combine(outDir, BaseName + ".md"), html = Path.Combine(outDir, BaseName + ".html");
        File.WriteAllText(md, Markdown(outDir, figures));
        File.WriteAllText(html, Html(outDir, figures));
        return (md, html);
    }

    private string Header() =>
        $"Command: `harness reproduce {target} --tier {tier}{(threads > 0 ? $" --threads {threads}" : "")}` · {entries.Count} file(s) in "
        + $"{Duration(seconds)} (wall time; load average before {loadBefore}, after {loadAfter}) · written {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC";

    private string Totals()
    {
        var toys = Rows.Where(r => r.Claim.MustPass).ToList();
        return $"{Rows.Count} claim(s): {Rows.Count(r => r.Verdict == Verdict.Pass)} pass, {Rows.Count(r => r.Verdict == Verdict.Fail)} fail, "
            + $"{Rows.Count(r => r.Verdict == Verdict.NotEnoughData)} not enough data. Must-pass (exact toy) claims: {toys.Count(r => r.Verdict == Verdict.Pass)} of {toys.Count} pass.";
    }

    /// <summary>Measured value per group: "name: value [low, high] (n seeds) ✓/✗/not judged (note)".</summary>
    public static IReadOnlyList<string> Measured(ClaimResult c) => c.Groups.Count == 0 ? [c.Reason] : c.Groups.Select(g =>
        $"{g.Name}: {ClaimEvaluator.Fmt(g.Value)}" + (g.Seeds > 1 ? $" [{ClaimEvaluator.Fmt(g.Low)}, {ClaimEvaluator.Fmt(g.High)}] ({g.Seeds} seeds)" : "")
        + (g.Met is null ? " not judged" : g.Met.Value ? " ✓" : " ✗") + (g.Note is { } n ? $" ({n})" : "")).ToList();

    private static string Duration(double s) => s >= 3600
        ? TimeSpan.FromSeconds(s).ToString(@"h\:mm\:ss", CultureInfo.InvariantCulture)
        : TimeSpan.FromSeconds(s).ToString(@"m\:ss", CultureInfo.InvariantCulture);

    private static string Md(string s) => s.Replace("|", "\\|").Replace("\n", " ");

    private static string Rel(string outDir, string path) => Path.GetRelativePath(outDir, path).Replace('\\', '/');

    private string Markdown(string outDir, List<(Entry Entry, string Id, string Title, string RelPath)> figures)
    {
        var h = new StringBuilder();
        h.Append("# Reproduction: ").Append(target).Append(", ").Append(tier).Append(" tier\n\n").Append(Header()).Append("\n\n").Append(Totals()).Append("\n\n");
        h.Append("## Verdicts\n\n| paper | file | claim | text | verdict | measured (per group) | expected |\n|---|---|---|---|---|---|---|\n");
        foreach (var r in Rows)
            h.Append("| ").Append(r.Paper).Append(" | ").Append(Path.GetFileNameWithoutExtension(r.File)).Append(" | ").Append(Md(r.Claim.Id))
             .Append(r.Claim.MustPass ? " (must pass)" : "").Append(" | ").Append(Md(r.Claim.Text)).Append(" | **").Append(r.VerdictText).Append("** | ")
             .Append(string.Join("<br>", Measured(r.Result).Select(Md))).Append(" | ").Append(Md(r.Result.Expected)).Append(" |\n");
        h.Append("\n## Files\n\nWall time: this command's time on the file; runs: the sum of its runs' own wall times (from their manifests, so it\n"
         + "counts runs that finished in an earlier, resumed invocation too).\n\n| paper | file | runs | wall time | runs' wall time | report (in the results folder) | note |\n|---|---|---|---|---|---|---|\n");
        foreach (var e in entries)
            h.Append("| ").Append(e.Paper).Append(" | ").Append(e.File).Append(" | ").Append(RunCounts(e)).Append(" | ").Append(Duration(e.Seconds)).Append(" | ").Append(RunSeconds(e)).Append(" | ")
             .Append(e.Report is null ? "–" : $"`{Rel(Path.GetDirectoryName(e.Report.Data.Directory)!, e.Report.Page)}`").Append(" | ").Append(Md(e.Note ?? "")).Append(" |\n");
        h.Append("\n## Figures\n");
        foreach (var paper in figures.GroupBy(f => f.Entry.Paper))
        {
            h.Append("\n### ").Append(paper.Key).Append(": ").Append(PaperTitles.GetValueOrDefault(paper.Key, paper.Key)).Append('\n');
            foreach (var file in paper.GroupBy(f => f.Entry.File))
            {
                h.Append("\n").Append(file.Key).Append(":\n\n");
                foreach (var f in file) h.Append("[![").Append(Md(f.Title)).Append("](").Append(f.RelPath).Append(")](").Append(f.RelPath).Append(")\n");
            }
        }
        return h.ToString();
    }

    private static string RunSeconds(Entry e) => e.Report is null ? "–" : Duration(e.Report.Data.Runs.Sum(r => r.Manifest.WallSeconds));

    private static string RunCounts(Entry e) => e.Report is null ? "–"
        : string.Join(", ", e.Report.Data.Runs.GroupBy(r => r.Status).OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => $"{g.Count()} {g.Key}"));

    private string Html(string outDir, List<(Entry Entry, string Id, string Title, string RelPath)> figures)
    {
        static string E(string s) => WebUtility.HtmlEncode(s);
        var h = new StringBuilder();
        h.Append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>").Append(E($"Reproduction: {target}, {tier} tier")).Append("</title>\n<style>")
         .Append("body{font-family:'DejaVu Sans',sans-serif;margin:2em;max-width:1300px}table{border-collapse:collapse;margin:1em 0}")
         .Append("td,th{border:1px solid #bbb;padding:3px 8px;font-size:90%;text-align:left;vertical-align:top}th{background:#eee}")
         .Append(".pass{background:#d8f5d8}.fail{background:#f8d0d0}.nodata{background:#f0f0c8}img{width:440px;margin:4px}</style></head><body>\n");
        h.Append("<h1>").Append(E($"Reproduction: {target}, {tier} tier")).Append("</h1>\n<p>").Append(E(Header().Replace("`", ""))).Append("</p>\n<p>").Append(E(Totals())).Append("</p>\n");
        h.Append("<h2>Verdicts</h2>\n<table id=\"verdicts\"><tr><th>paper</th><th>file</th><th>claim</th><th>text</th><th>verdict</th><th>measured (per group)</th><th>expected</th></tr>\n");
        foreach (var r in Rows)
        {
            string cls = r.Verdict switch { Verdict.Pass => "pass", Verdict.Fail => "fail", _ => "nodata" };
            h.Append("<tr class=\"").Append(cls).Append("\" data-claim=\"").Append(E(r.Claim.Id)).Append("\" data-must-pass=\"").Append(r.Claim.MustPass ? "true" : "false")
             .Append("\"><td>").Append(E(r.Paper)).Append("</td><td>").Append(E(Path.GetFileNameWithoutExtension(r.File))).Append("</td><td>").Append(E(r.Claim.Id))
             .Append(r.Claim.MustPass ? "<br><small>must pass</small>" : "").Append("</td><td>").Append(E(r.Claim.Text));
            if (r.Claim.Source is { } s) h.Append("<br><small>").Append(E(s)).Append("</small>");
            h.Append("</td><td>").Append(E(r.VerdictText)).Append("<br><small>").Append(E(r.Reason)).Append("</small></td><td>")
             .Append(string.Join("<br>", Measured(r.Result).Select(E))).Append("</td><td>").Append(E(r.Result.Expected)).Append("</td></tr>\n");
        }
        h.Append("</table>\n<h2>Files</h2>\n<table id=\"files\"><tr><th>paper</th><th>file</th><th>runs</th><th>wall time</th><th>runs' wall time</th><th>report</th><th>note</th></tr>\n");
        foreach (var e in entries)
        {
            h.Append("<tr><td>").Append(E(e.Paper)).Append("</td><td>").Append(E(e.File)).Append("</td><td>").Append(E(RunCounts(e))).Append("</td><td>")
             .Append(Duration(e.Seconds)).Append("</td><td>").Append(RunSeconds(e)).Append("</td><td>");
            if (e.Report is not null) h.Append("<a href=\"").Append(E(Rel(outDir, e.Report.Page))).Append("\">report</a>");
            h.Append("</td><td>").Append(E(e.Note ?? "")).Append("</td></tr>\n");
        }
        h.Append("</table>\n<h2>Figures</h2>\n");
        foreach (var paper in figures.GroupBy(f => f.Entry.Paper))
        {
            h.Append("<h3>").Append(E($"{paper.Key}: {PaperTitles.GetValueOrDefault(paper.Key, paper.Key)}")).Append("</h3>\n");
            foreach (var file in paper.GroupBy(f => f.Entry.File))
            {
                h.Append("<p>").Append(E(file.Key)).Append("</p>\n");
                foreach (var f in file) h.Append("<a href=\"").Append(E(f.RelPath)).Append("\"><img src=\"").Append(E(f.RelPath)).Append("\" alt=\"").Append(E(f.Title)).Append("\" title=\"").Append(E(f.Title)).Append("\"></a>\n");
            }
        }
        h.Append("</body></html>\n");
        return h.ToString();
    }

    /// <summary>The verdict table for the terminal: one line per claim.</summary>
    public string ConsoleTable()
    {
        var h = new StringBuilder();
        foreach (var r in Rows)
            h.Append(r.VerdictText.PadRight(16)).Append(r.Claim.MustPass ? "toy " : "    ").Append(Path.GetFileNameWithoutExtension(r.File)).Append(':').Append(r.Claim.Id)
             .Append("  ").Append(string.Join("; ", Measured(r.Result).Take(4))).Append(r.Result.Groups.Count > 4 ? $"; … ({r.Result.Groups.Count} groups)" : "")
             .Append("  expected ").Append(r.Result.Expected).Append('\n');
        return h.ToString();
    }
}
