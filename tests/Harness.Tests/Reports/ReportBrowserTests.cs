using System.Diagnostics;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Harness.Tests.Integration;

namespace Harness.Tests.Reports;

/// <summary>The report page as a real browser (Debian's chromium, headless) renders it: figures present and drawn,
/// the numbers it plots equal to the traces (checked with DuckDB), the claims' verdicts shown.</summary>
[TestClass]
public sealed partial class ReportBrowserTests
{
    private static string Page => Path.Combine(ReportFixture.MatrixDirectory, "report", "report.html");

    public static string Chromium => new[] { "/usr/bin/chromium", "/usr/bin/chromium-browser" }.FirstOrDefault(File.Exists)
        ?? throw new AssertFailedException("chromium is not installed: run scripts/setup.sh --with-browser (apt-get install -y chromium)");

    /// <summary>Runs headless chromium on the page with the given mode (--dump-dom, --screenshot=...), bounded in time.</summary>
    private static string Browse(string mode, string profile)
    {
        var psi = new ProcessStartInfo(Chromium) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--no-first-run", $"--user-data-dir={profile}", "--window-size=1200,2000", mode, new Uri(Page).AbsoluteUri })
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromSeconds(120))) { p.Kill(entireProcessTree: true); Assert.Fail("chromium did not finish in 120 s"); }
        Assert.AreEqual(0, p.ExitCode, stderr.Result);
        return stdout.Result;
    }

    [GeneratedRegex("""<script type="application/json" id="report-data">(.*?)</script>""", RegexOptions.Singleline)]
    private static partial Regex DataBlock();

    [GeneratedRegex("""<figure id="fig-([a-z_]+)"[^>]*>(.*?)</figure>""", RegexOptions.Singleline)]
    private static partial Regex FigureElement();

    [TestMethod]
    public void FiguresAreDrawnAndPlotTheTraces()
    {
        string dom = Browse("--dump-dom", Paths.NewTempDirectory("chromium"));
        var figures = FigureElement().Matches(dom).ToDictionary(m => m.Groups[1].Value, m => m.Groups[2].Value);
        foreach (var id in new[] { "loss", "sharpness", "edge_ratio", "time_to_target", "performance_profile", "probe_cost" })
        {
            Assert.IsTrue(figures.TryGetValue(id, out var fig), $"figure {id} missing; present: {string.Join(", ", figures.Keys)}");
            Assert.IsTrue(fig.Contains("<svg"), $"figure {id} has no inline SVG");
            Assert.IsTrue(Regex.Matches(fig, "<path").Count >= 5, $"figure {id} draws almost nothing");
            Assert.IsTrue(File.Exists(Path.Combine(Path.GetDirectoryName(Page)!, id + ".png")) && new FileInfo(Path.Combine(Path.GetDirectoryName(Page)!, id + ".png")).Length > 5000, $"{id}.png");
            Assert.IsTrue(new FileInfo(Path.Combine(Path.GetDirectoryName(Page)!, id + ".svg")).Length > 2000, $"{id}.svg");
        }
        Assert.IsFalse(figures.ContainsKey("learning_rate"), "no run of this matrix changes its learning rate");

        // The plotted loss of "gd lr=0.5" is, at every step, the median over its three seeds of the traces' train_loss.
        var data = JsonNode.Parse(System.Net.WebUtility.HtmlDecode(DataBlock().Match(dom).Groups[1].Value))!;
        var loss = data["figures"]!.AsArray().First(f => (string?)f!["id"] == "loss")!["series"]!.AsArray()
            .First(s => (string?)s!["name"] == "gd lr=0.5")!;
        var runIds = loss["run_ids"]!.AsArray().Select(x => (string)x!).ToList();
        Assert.AreEqual(3, runIds.Count);
        string traces = DuckDb.Quote(Path.Combine(ReportFixture.MatrixDirectory, "**", "trace.parquet"));
        var expected = DuckDb.Query($"""
            SELECT step, quantile_cont(train_loss, 0.5) AS median, min(train_loss) AS lo, max(train_loss) AS hi FROM read_parquet({traces})
            WHERE run_id IN ({string.Join(", ", runIds.Select(DuckDb.Quote))}) GROUP BY step HAVING count(*) = 3 ORDER BY step
            """);
        var x = loss["x"]!.AsArray().Select(v => (double)v!).ToArray();
        var y = loss["y"]!.AsArray().Select(v => (double)v!).ToArray();
        Assert.AreEqual(expected.Count, x.Length, "one point per step every seed reached");
        for (int i = 0; i < x.Length; i++)
        {
            Assert.AreEqual(DuckDb.Long(expected[i]["step"]), (long)x[i]);
            Assert.AreEqual(DuckDb.Double(expected[i]["median"])!.Value, y[i], 1e-12 * System.Math.Abs(y[i]), $"step {x[i]}");
            // the bootstrap interval of a median of three values lies within their range
            Assert.IsTrue((double)loss["low"]![i]! >= DuckDb.Double(expected[i]["lo"])!.Value && (double)loss["high"]![i]! <= DuckDb.Double(expected[i]["hi"])!.Value);
        }

        // Claims: one passes, one fails, one has no data; the diverged runs are in the status table.
        var claims = data["claims"]!.AsArray().ToDictionary(c => (string)c!["id"]!, c => (string)c!["verdict"]!);
        Assert.AreEqual("pass", claims["gd-stable-below-edge"]);
        Assert.AreEqual("fail", claims["gd-edge-ratio-is-lr"]);
        Assert.AreEqual("not enough data", claims["no-such-column"]);
        Assert.AreEqual(3, Regex.Matches(dom, """<tr class="diverged">""").Count, "the three lr=1.3 runs diverge (lr·λ_max = 2.6 > 2) and are listed");
        StringAssert.Contains(dom, "<table id=\"claims\">");
    }

    [TestMethod]
    public void ScreenshotIsNotBlank()
    {
        var dir = Paths.NewTempDirectory("chromium-shot");
        var png = Path.Combine(dir, "shot.png");
        Browse($"--screenshot={png}", Path.Combine(dir, "profile"));
        Assert.IsTrue(File.Exists(png), "no screenshot written");
        // a blank page compresses to a few kB; the rendered figures and tables do not
        Assert.IsTrue(new FileInfo(png).Length > 30_000, $"screenshot is {new FileInfo(png).Length} bytes");
    }
}
