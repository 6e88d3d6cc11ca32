using System.Text.RegularExpressions;
using Harness.Host.Output;
using Harness.Tests.Integration;

namespace Harness.Tests.Reliability;

/// <summary>
/// A run that throws before its training loop (here: its run folder holds a file named <c>attempts</c> where the
/// previous trace must be moved, so the move fails) fails alone, with the exception's message as its reason: in a
/// worker (before: the reason held the last three stack frames) and with --in-process (before: the exception ended
/// the whole host and the rest of the matrix never ran).
/// </summary>
[TestClass]
public sealed class RunFailureTests
{
    private const string Matrix = """
        name: throws
        models: [ { name: quadratic } ]
        optimizers: [ { name: gd, hyperparameters: { lr: [0.1, 0.2] } } ]
        training: { steps: 3 }
        """;

    [TestMethod]
    public void AWorkerThatThrowsKeepsTheMessage() => Check(inProcess: false);

    [TestMethod]
    public void InProcessAThrowingRunFailsAloneAndTheHostGoesOn() => Check(inProcess: true);

    private static void Check(bool inProcess)
    {
        var dir = Paths.NewTempDirectory("run-throws");
        File.WriteAllText(Path.Combine(dir, "m.yaml"), Matrix);
        var results = Path.Combine(dir, "results");
        List<string> ids;
        using (var validate = HarnessProcess.Run(dir, TimeSpan.FromSeconds(120), "validate", "m.yaml", "--plugins", Paths.PluginArtifacts))
        {
            Assert.AreEqual(0, validate.ExitCode, validate.Output);
            ids = Regex.Matches(validate.StdOut, @"gd-[0-9a-f]{12}").Select(m => m.Value).Distinct().ToList();
        }
        Assert.HasCount(2, ids);
        var broken = Path.Combine(results, "throws", ids[0]);
        Directory.CreateDirectory(broken);
        File.WriteAllText(Path.Combine(broken, "trace.parquet"), "not a trace");
        File.WriteAllText(Path.Combine(broken, "attempts"), "a file where a folder must go");

        string[] args = ["run", "m.yaml", .. HarnessProcess.RunOptions(results), .. inProcess ? new[] { "--in-process" } : []];
        using var run = HarnessProcess.Run(dir, TimeSpan.FromSeconds(300), args);
        Assert.AreEqual(1, run.ExitCode, run.Output);
        var failed = RunManifest.TryLoad(Path.Combine(broken, "manifest.json"));
        Assert.IsNotNull(failed, run.Output);
        Assert.AreEqual(RunStatus.Failed, failed.Status);
        StringAssert.Contains(failed.Reason, "IOException");
        StringAssert.Contains(failed.Reason, "attempts");
        Assert.DoesNotContain(" at ", failed.Reason!, failed.Reason);
        var other = RunManifest.TryLoad(Path.Combine(results, "throws", ids[1], "manifest.json"));
        Assert.AreEqual(RunStatus.Completed, other?.Status, run.Output);
    }
}
