using Harness.Host.Matrix;

namespace Harness.Host.Reports;

/// <summary>Writes results/&lt;matrix&gt;/report/: report.html (self-contained) and every figure as &lt;id&gt;.png and
/// &lt;id&gt;.svg; and, when given, a copy of the matrix file the claims came from (matrix.yaml), so the report can
/// be rebuilt on demand with the same claims.</summary>
public static class ReportWriter
{
    public const string Folder = "report", Page = "report.html", MatrixCopy = "matrix.yaml";

    public static string Write(string matrixDir, IReadOnlyList<ClaimSpec> claims, string? matrixFile = null) =>
        WriteReport(matrixDir, claims, matrixFile).Page;

    /// <summary>As <see cref="Write"/>, returning the figures and verdicts too (for <c>harness reproduce</c>).</summary>
    public static WrittenReport WriteReport(string matrixDir, IReadOnlyList<ClaimSpec> claims, string? matrixFile = null)
    {
        var data = ReportData.Load(matrixDir);
        var figures = ReportFigures.Draw(data);
        var verdicts = ClaimEvaluator.Evaluate(claims, data);
        string dir = Path.Combine(data.Directory, Folder);
        Directory.CreateDirectory(dir);
        foreach (var f in figures)
        {
            Atomic(Path.Combine(dir, f.Id + ".png"), p => File.WriteAllBytes(p, f.Png));
            Atomic(Path.Combine(dir, f.Id + ".svg"), p => File.WriteAllText(p, f.Svg));
        }
        if (matrixFile is not null && File.Exists(matrixFile) && Path.GetFullPath(matrixFile) != Path.GetFullPath(Path.Combine(dir, MatrixCopy)))
            Atomic(Path.Combine(dir, MatrixCopy), p => File.Copy(matrixFile, p, overwrite: true));
        string page = Path.Combine(dir, Page);
        Atomic(page, p => File.WriteAllText(p, ReportHtml.Render(data, figures, verdicts)));
        return new WrittenReport(page, figures, verdicts, data);
    }

    /// <summary>The matrix file to take claims from when the report is rebuilt on demand: the copy in report/, else
    /// the service's matrix.yaml in the matrix folder; null when neither exists.</summary>
    public static string? ClaimsSource(string matrixDir) =>
        new[] { Path.Combine(matrixDir, Folder, MatrixCopy), Path.Combine(matrixDir, "matrix.yaml") }.FirstOrDefault(File.Exists);

    private static void Atomic(string path, Action<string> write)
    {
        string tmp = $"{path}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
        write(tmp);
        File.Move(tmp, path, overwrite: true);
    }
}

/// <summary>A written report: its page, figures, claim verdicts and the data they came from.</summary>
public sealed record WrittenReport(string Page, IReadOnlyList<Figure> Figures, IReadOnlyList<ClaimResult> Verdicts, ReportData Data);
