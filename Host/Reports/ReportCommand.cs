using System.CommandLine;
using Harness.Host.Matrix;
using Harness.Host.Plugins;

namespace Harness.Host.Reports;

/// <summary><c>harness report &lt;results/matrix&gt;</c>, and the report written at the end of <c>run</c>.</summary>
public static class ReportCommand
{
    public static Command Create(Option<string?> plugins)
    {
        var dirArg = new Argument<string>("matrix-dir") { Description = "results/<matrix> folder" };
        var matrixOption = new Option<string?>("--matrix") { Description = "matrix file whose claims to evaluate (default: the copy in <matrix-dir>/report/, else <matrix-dir>/matrix.yaml)" };
        var cmd = new Command("report", "Write <matrix-dir>/report/report.html (self-contained) with the figures as PNG and SVG and the claims' verdicts.")
            { dirArg, matrixOption, plugins };
        cmd.SetAction(p =>
        {
            var dir = p.GetValue(dirArg)!;
            if (!Directory.Exists(dir)) { Console.Error.WriteLine($"error: folder '{dir}' does not exist"); return 2; }
            string? matrix = p.GetValue(matrixOption) ?? ReportWriter.ClaimsSource(dir);
            IReadOnlyList<ClaimSpec> claims = [];
            if (matrix is not null)
            {
                var folder = p.GetValue(plugins) ?? Path.Combine(AppContext.BaseDirectory, "plugins");
                try { claims = MatrixParser.ParseFile(matrix, PluginCatalog.Load(folder, null)).Claims; }
                catch (MatrixValidationException e) { Console.Error.WriteLine(e.Message); return 2; }
            }
            Console.WriteLine(ReportWriter.Write(dir, claims, p.GetValue(matrixOption)));
            return 0;
        });
        return cmd;
    }

    /// <summary>Writes the report after a run of the matrix; a failure is reported, never fails the run.</summary>
    public static void AfterRun(string matrixDir, MatrixSpec spec)
    {
        try { Console.WriteLine($"report: {ReportWriter.Write(matrixDir, spec.Claims, spec.SourceFile)}"); }
        catch (Exception e)   // whatever goes wrong in a figure, the runs are done and stay done
        {
            Console.Error.WriteLine($"warning: the report could not be written: {e.Message}");
        }
    }
}
