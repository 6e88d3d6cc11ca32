using Harness.Tests.Integration;

namespace Harness.Tests.Reports;

/// <summary>One small real matrix run once (by the real harness executable, in worker processes) and shared by the
/// report tests: a quadratic model with integer, boolean, choice and real hyperparameters, GD at a stable and a
/// diverging learning rate and Adam, three init seeds, both sharpness probes, a target loss, and claims.</summary>
public static class ReportFixture
{
    public const string Matrix = "rep";
    public const double TargetLoss = 0.01;

    public const string Yaml = """
        name: rep
        dtype: float64
        models:
          - name: quadratic
            hyperparameters: { dim: 6, lambda_max: 2, rotated: true, spectrum: linear }
        optimizers:
          - name: gd
            hyperparameters: { lr: [0.5, 1.3] }
          - name: adam
            hyperparameters: { lr: 0.05 }
        seeds: { init: [0, 1, 2] }
        training: { steps: 40, target_loss: 0.01 }
        probes:
          - name: sharpness
            every: 5
          - name: precond_sharpness
            every: 5
        claims:
          - id: gd-stable-below-edge
            text: "GD at lr 0.5 stays below the edge: lr * lambda_max = 1 < 2"
            metric: edge_ratio
            where: { optimizer: gd, optimizer.lr: 0.5 }
            statistic: max
            expect: { "<=": 0.5000001 }
            min_seeds: 3
          - id: gd-edge-ratio-is-lr
            text: "edge ratio near 1 for every GD learning rate (false: at lr 0.5 it is lr * lambda_max / 2 = 0.5)"
            metric: edge_ratio
            where: { optimizer: gd }
            statistic: median
            expect: { between: [0.9, 1.1] }
          - id: no-such-column
            text: "a metric no run reports"
            metric: not_a_column
            expect: { ">": 0 }
        """;

    private static readonly Lazy<string> Results = new(() =>
    {
        var root = Paths.NewTempDirectory("report-fixture");
        var file = Path.Combine(root, "rep.yaml");
        File.WriteAllText(file, Yaml);
        var p = HarnessProcess.Run(root, TimeSpan.FromMinutes(5), ["run", file, .. HarnessProcess.RunOptions(Path.Combine(root, "results"))]);
        Assert.AreEqual(0, p.ExitCode, p.Output);
        StringAssert.Contains(p.StdOut, "report: " + Path.Combine(root, "results", Matrix, "report", "report.html"), p.Output);
        return Path.Combine(root, "results", Matrix);
    });

    /// <summary>results/rep after the run (runs the matrix on first use).</summary>
    public static string MatrixDirectory => Results.Value;
}
