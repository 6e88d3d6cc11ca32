namespace Harness.Tests.Integration;

/// <summary>The minimal third-party plugin (examples/MinimalOptimizer), built outside the repository against the
/// Harness.Abstractions package from the local feed, dropped into a plugin folder beside the built-ins and used by a
/// matrix through the real executable.</summary>
[TestClass]
public sealed class ExamplePluginTests
{
    private static string BuiltExample()
    {
        var folder = Optimizers.OutsiderBuild.Build(Path.Combine(Paths.RepoRoot, "examples", "MinimalOptimizer"), "minimal-outside");
        Optimizers.OutsiderBuild.AssertOnlyOwnFiles(folder, "MinimalOptimizer");
        return folder;
    }

    [TestMethod]
    public void MinimalPluginLoadsFromAPluginFolderAndRunsInAMatrix()
    {
        var work = Paths.NewTempDirectory("example");
        try
        {
            var plugins = Path.Combine(work, "plugins");
            foreach (var dir in Directory.GetDirectories(Paths.PluginArtifacts))
                Paths.CopyDirectory(dir, Path.Combine(plugins, Path.GetFileName(dir)));
            Paths.CopyDirectory(BuiltExample(), Path.Combine(plugins, "MinimalOptimizer"));

            using (var list = HarnessProcess.Run(work, TimeSpan.FromMinutes(2), "plugins", "--plugins", plugins))
            {
                Assert.AreEqual(0, list.ExitCode, list.Output);
                StringAssert.Contains(list.StdOut, "gd_weight_decay", list.Output);
                StringAssert.Contains(list.StdOut, "MinimalOptimizer/MinimalOptimizer.dll", list.Output);
            }

            // λ_max = 10, weight decay 0.01: threshold 2/η − λ is 39.99 at η = 0.05 (converges) and 7.99 at η = 0.25
            // (10 > 7.99: diverges). The threshold column must be the plugin's own formula.
            var matrix = Path.Combine(work, "m.yaml");
            File.WriteAllText(matrix, """
                name: minimal
                dtype: float64
                models:
                  - name: quadratic
                    hyperparameters: { dim: 20, lambda_max: 10, lambda_min: 0.1 }
                optimizers:
                  - name: gd_weight_decay
                    hyperparameters: { lr: [0.05, 0.25], weight_decay: 0.01 }
                training: { steps: 200 }
                """);
            var results = Path.Combine(work, "results");
            using var run = HarnessProcess.Run(work, TimeSpan.FromMinutes(3), ["run", matrix, "--plugins", plugins, "--results", results,
                "--metrics-url", "none", "--no-progress", "--threads", "1"]);
            Assert.AreEqual(0, run.ExitCode, run.Output);
            var rows = DuckDb.ReadParquet(Path.Combine(results, "minimal", "summary.parquet"), "run_id");
            Assert.AreEqual(2, rows.Count);
            var byLr = rows.ToDictionary(r => r["label"]!.ToString()!.Contains("lr=0.05") ? 0.05 : 0.25);
            Assert.AreEqual("completed", byLr[0.05]["status"]);
            Assert.AreEqual("diverged", byLr[0.25]["status"]);
            Assert.AreEqual(2 / 0.05 - 0.01, DuckDb.Double(byLr[0.05]["final_threshold"])!.Value, 1e-9);
        }
        finally { Directory.Delete(work, recursive: true); }
    }

}
