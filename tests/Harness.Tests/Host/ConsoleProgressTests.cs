using Harness.Host.Cli;
using Harness.Host.Matrix;
using Harness.Host.Output;
using Harness.Host.Plugins;
using Microsoft.Extensions.Logging;
using Spectre.Console;

namespace Harness.Tests.Host;

/// <summary>The terminal display of <c>harness run</c>: the matrix bar counts steps, run bars are labelled by their
/// swept values, and log lines written while the live display runs go through Spectre.Console.</summary>
[TestClass]
public sealed class ConsoleProgressTests
{
    private static IAnsiConsole Console(StringWriter w) => AnsiConsole.Create(new AnsiConsoleSettings
    {
        Ansi = AnsiSupport.No, ColorSystem = ColorSystemSupport.NoColors, Interactive = InteractionSupport.No, Out = new AnsiConsoleOutput(w),
    });

    private static RunManifest Manifest(RunCell cell, RunStatus status)
    {
        var m = Harness.Host.Workers.WorkerPool.NewManifest(cell);
        m.Status = status;
        return m;
    }

    [TestMethod]
    public void TheMatrixBarCountsStepsAndRunsAreLabelledBySweptValues()
    {
        var cells = MatrixExpander.Expand(new MatrixParser(PluginCatalog.Load(Paths.PluginArtifacts)).Parse("""
            name: bars
            models:
              - name: quadratic
                hyperparameters: { dim: 4 }
            optimizers:
              - name: gd
                hyperparameters: { lr: [0.1, 0.2, 0.3] }
            training: { steps: 9 }
            """, "bars.yaml"));
        Console(new StringWriter()).Progress().Start(ctx =>
        {
            var p = new SpectreProgress(ctx, cells.Count);
            p.RunSkipped(cells[0], Manifest(cells[0], RunStatus.Completed));
            Assert.AreEqual(30.0, p.Matrix.MaxValue, "3 runs × (9 steps + the final row)");
            Assert.AreEqual(10.0, p.Matrix.Value, "a skipped run counts all its steps");
            p.RunStarted(cells[1], 9);
            Assert.AreEqual("gd lr=0.2", p.RunTask(cells[1])!.Description, "not every default hyperparameter");
            p.RunStep(cells[1], 3, 1.0, new Dictionary<string, double>());
            Assert.AreEqual(14.0, p.Matrix.Value, "steps 0..3 of the second run");
            p.RunStep(cells[1], 6, 1.0, new Dictionary<string, double>());
            Assert.AreEqual(17.0, p.Matrix.Value);
            p.RunEnded(cells[1], Manifest(cells[1], RunStatus.Diverged));
            Assert.AreEqual(20.0, p.Matrix.Value, "a run that ended early leaves nothing to do");
            p.RunStarted(cells[2], 9);
            p.RunStep(cells[2], 9, 1.0, new Dictionary<string, double>());
            p.RunEnded(cells[2], Manifest(cells[2], RunStatus.Completed));
            Assert.AreEqual(30.0, p.Matrix.Value);
        });
    }

    [TestMethod]
    public void LogLinesGoThroughSpectreOnlyWhileTheLiveDisplayRuns()
    {
        var previous = AnsiConsole.Console;
        var w = new StringWriter();
        AnsiConsole.Console = Console(w);
        try
        {
            using var provider = new LiveConsoleLoggerProvider();
            var log = provider.CreateLogger("harness");
            log.LogInformation("before");
            Assert.IsFalse(LiveConsoleLoggerProvider.Active);
            int seen = LiveConsoleLoggerProvider.During(() =>
            {
                Assert.IsTrue(LiveConsoleLoggerProvider.Active, "the ordinary console logger is filtered off meanwhile");
                log.LogWarning("run {Run} diverged", "gd-1");
                return 1;
            });
            log.LogInformation("after");
            string text = w.ToString();
            StringAssert.Contains(text, "warn: harness[0] run gd-1 diverged");
            Assert.IsFalse(text.Contains("before") || text.Contains("after"), text);
            Assert.IsFalse(LiveConsoleLoggerProvider.Active);
        }
        finally { AnsiConsole.Console = previous; }
    }
}
