using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Harness.Host.Reports;

/// <summary>
/// The self-contained report page: every figure inline as SVG (no external file, script or style is loaded), the
/// tables (status, time to target, probe cost, claims) and a JSON block <c>&lt;script type="application/json"
/// id="report-data"&gt;</c> holding the numbers every figure plots, for checking and re-plotting.
/// </summary>
public static class ReportHtml
{
    public static string Render(ReportData data, IReadOnlyList<Figure> figures, IReadOnlyList<ClaimResult> claims)
    {
        var h = new StringBuilder();
        h.Append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>").Append(E($"Report: {data.Matrix}")).Append("</title>\n<style>")
         .Append("body{font-family:'DejaVu Sans',sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;margin:1em 0}")
         .Append("td,th{border:1px solid #bbb;padding:3px 8px;font-size:90%;text-align:left}th{background:#eee}")
         .Append(".pass{background:#d8f5d8}.fail{background:#f8d0d0}.nodata{background:#f0f0c8}.diverged,.failed{background:#f8d0d0}")
         .Append("figure{margin:1.5em 0}figcaption{font-size:90%;color:#444}</style></head><body>\n");
        h.Append("<h1>").Append(E(data.Matrix)).Append("</h1>\n<p>").Append(data.Runs.Count).Append(" run(s) in ")
         .Append(data.Configurations().Count).Append(" configuration(s); ")
         .Append(string.Join(", ", data.Runs.GroupBy(r => r.Status).OrderBy(g => g.Key).Select(g => $"{g.Count()} {g.Key}"))).Append(".</p>\n");

        if (claims.Count > 0) Claims(h, claims);
        foreach (var f in figures)
        {
            h.Append("<figure id=\"fig-").Append(E(f.Id)).Append("\" data-figure=\"").Append(E(f.Id)).Append("\">\n").Append(f.Svg).Append('\n')
             .Append("<figcaption>").Append(E(f.Title)).Append(": ").Append(E(f.Caption))
             .Append(" (<a href=\"").Append(E(f.Id)).Append(".png\">PNG</a>, <a href=\"").Append(E(f.Id)).Append(".svg\">SVG</a>)</figcaption></figure>\n");
        }
        Status(h, data);
        if (data.Runs.Any(r => r.Summary.TargetLoss is not null)) Target(h, data);
        ProbeCost(h, data);
        h.Append("<script type=\"application/json\" id=\"report-data\">").Append(Json(data, figures, claims)).Append("</script>\n</body></html>\n");
        return h.ToString();
    }

    private static void Claims(StringBuilder h, IReadOnlyList<ClaimResult> claims)
    {
        h.Append("<h2>Claims</h2>\n<table id=\"claims\"><tr><th>claim</th><th>text</th><th>measured (median [90 % interval] over seeds, per group)</th><th>expected</th><th>verdict</th><th>runs used / excluded</th></tr>\n");
        foreach (var c in claims)
        {
            string cls = c.Verdict switch { Verdict.Pass => "pass", Verdict.Fail => "fail", _ => "nodata" };
            h.Append("<tr class=\"").Append(cls).Append("\"><td>").Append(E(c.Claim.Id)).Append(c.Claim.MustPass ? "<br><small>must pass</small>" : "").Append("</td><td>").Append(E(c.Claim.Text));
            if (c.Claim.Source is { } s) h.Append("<br><small>").Append(E(s)).Append("</small>");
            h.Append("<br><small>").Append(E($"{c.Claim.Statistic.ToString().ToLowerInvariant()} of {c.Claim.Metric}, {c.Claim.Window}, per {(c.Claim.PerRun ? "run" : "configuration")}")).Append("</small></td><td>");
            foreach (var g in c.Groups)
                h.Append(E($"{g.Name}: {ClaimEvaluator.Fmt(g.Value)}" + (g.Seeds > 1 ? $" [{ClaimEvaluator.Fmt(g.Low)}, {ClaimEvaluator.Fmt(g.High)}] ({g.Seeds} seeds)" : "")
                    + (g.Met is null ? " — not judged" : g.Met.Value ? " ✓" : " ✗") + (g.Note is { } n ? $" ({n})" : ""))).Append("<br>");
            h.Append("</td><td>").Append(E(c.Expected)).Append("</td><td>").Append(E(c.VerdictText)).Append("<br><small>").Append(E(c.Reason)).Append("</small></td><td>")
             .Append(c.RunsUsed).Append(" / ").Append(c.RunsExcluded).Append("</td></tr>\n");
        }
        h.Append("</table>\n");
    }

    private static void Status(StringBuilder h, ReportData data)
    {
        h.Append("<h2>Runs</h2>\n<table id=\"status\"><tr><th>run id</th><th>configuration</th><th>seeds (init/data)</th><th>status</th><th>reason</th><th>steps</th><th>final train loss</th><th>wall s</th></tr>\n");
        foreach (var r in data.Runs)
            h.Append("<tr class=\"").Append(E(r.Status)).Append("\"><td>").Append(E(r.RunId)).Append("</td><td>").Append(E(data.ConfigurationName(r))).Append("</td><td>")
             .Append(r.InitSeed).Append('/').Append(r.DataSeed).Append("</td><td>").Append(E(r.Status)).Append("</td><td>").Append(E(r.Manifest.Reason ?? ""))
             .Append("</td><td>").Append(r.Manifest.StepsCompleted).Append("</td><td>")
             .Append(r.Manifest.Final.TryGetValue("train_loss", out var l) ? ClaimEvaluator.Fmt(l) : "–").Append("</td><td>")
             .Append(r.Manifest.WallSeconds.ToString("F1", CultureInfo.InvariantCulture)).Append("</td></tr>\n");
        h.Append("</table>\n");
    }

    private static void Target(StringBuilder h, ReportData data)
    {
        h.Append("<h2>Time to target</h2>\n<table id=\"target\"><tr><th>configuration</th><th>target loss</th><th>seeds that reached it</th><th>steps (median)</th><th>seconds (median; shared machine, noisy)</th></tr>\n");
        foreach (var c in data.Configurations())
        {
            var reached = c.Where(r => r.Summary.StepsToTarget is not null).ToList();
            h.Append("<tr><td>").Append(E(data.ConfigurationName(c.First()))).Append("</td><td>").Append(ClaimEvaluator.Fmt(c.First().Summary.TargetLoss ?? double.NaN))
             .Append("</td><td>").Append(reached.Count).Append(" of ").Append(c.Count()).Append("</td><td>")
             .Append(reached.Count == 0 ? "not reached" : ClaimEvaluator.Fmt(Bootstrap.Median(reached.Select(r => (double)r.Summary.StepsToTarget!.Value).ToList())))
             .Append("</td><td>").Append(reached.Count == 0 ? "–" : ClaimEvaluator.Fmt(Bootstrap.Median(reached.Select(r => r.Summary.SecondsToTarget ?? double.NaN).ToList())))
             .Append("</td></tr>\n");
        }
        h.Append("</table>\n");
    }

    private static void ProbeCost(StringBuilder h, ReportData data)
    {
        var probes = data.Runs.Where(r => r.Trace is not null).SelectMany(r => r.Trace!.Columns.Keys)
            .Where(c => c.StartsWith("probe_", StringComparison.Ordinal) && c.EndsWith("_hvps", StringComparison.Ordinal))
            .Select(c => c["probe_".Length..^"_hvps".Length]).Distinct().Order(StringComparer.Ordinal).ToList();
        if (probes.Count == 0) return;
        h.Append("<h2>Probe cost</h2>\n<table id=\"probe-cost\"><tr><th>probe</th><th>measurements per run (median)</th><th>HVPs per run (median)</th><th>gradient evaluations per run (median)</th><th>seconds per run (median; noisy)</th></tr>\n");
        foreach (var p in probes)
        {
            double Med(string column, bool count) => Bootstrap.Median(data.Runs.Where(r => r.Trace?.Column(column) is not null)
                .Select(r => count ? r.Trace!.Column(column)!.Count(v => v is not null) : r.Trace!.Column(column)!.Sum(v => v ?? 0)).ToList());
            h.Append("<tr><td>").Append(E(p)).Append("</td><td>").Append(ClaimEvaluator.Fmt(Med($"probe_{p}_seconds", true))).Append("</td><td>")
             .Append(ClaimEvaluator.Fmt(Med($"probe_{p}_hvps", false))).Append("</td><td>").Append(ClaimEvaluator.Fmt(Med($"probe_{p}_grad_evals", false)))
             .Append("</td><td>").Append(ClaimEvaluator.Fmt(Med($"probe_{p}_seconds", false))).Append("</td></tr>\n");
        }
        h.Append("</table>\n");
    }

    /// <summary>The embedded data: per figure its series (x, y = median, low, high; null where not a number).</summary>
    public static string Json(ReportData data, IReadOnlyList<Figure> figures, IReadOnlyList<ClaimResult> claims)
    {
        static JsonArray Numbers(double[] v) => new(v.Select(x => double.IsFinite(x) ? (JsonNode?)JsonValue.Create(x) : null).ToArray());
        var o = new JsonObject
        {
            ["matrix"] = data.Matrix,
            ["figures"] = new JsonArray(figures.Select(f => (JsonNode)new JsonObject
            {
                ["id"] = f.Id, ["title"] = f.Title, ["log_y"] = f.LogY,
                ["series"] = new JsonArray(f.Series.Select(s => (JsonNode)new JsonObject
                {
                    ["name"] = s.Name, ["column"] = s.Column, ["run_ids"] = new JsonArray(s.RunIds.Select(id => (JsonNode)JsonValue.Create(id)).ToArray()),
                    ["x"] = Numbers(s.X), ["y"] = Numbers(s.Y), ["low"] = Numbers(s.Low), ["high"] = Numbers(s.High),
                }).ToArray()),
            }).ToArray()),
            ["claims"] = new JsonArray(claims.Select(c => (JsonNode)new JsonObject
            {
                ["id"] = c.Claim.Id, ["verdict"] = c.VerdictText, ["expected"] = c.Expected, ["reason"] = c.Reason,
                ["runs_used"] = c.RunsUsed, ["runs_excluded"] = c.RunsExcluded,
                ["groups"] = new JsonArray(c.Groups.Select(g => (JsonNode)new JsonObject
                {
                    ["name"] = g.Name, ["value"] = double.IsFinite(g.Value) ? g.Value : null, ["low"] = double.IsFinite(g.Low) ? g.Low : null,
                    ["high"] = double.IsFinite(g.High) ? g.High : null, ["seeds"] = g.Seeds, ["met"] = g.Met, ["note"] = g.Note,
                }).ToArray()),
            }).ToArray()),
        };
        // The default encoder escapes '<', '>' and '&', so the block cannot close the script element early.
        return o.ToJsonString(new JsonSerializerOptions { WriteIndented = false });
    }

    private static string E(string s) => WebUtility.HtmlEncode(s);
}
