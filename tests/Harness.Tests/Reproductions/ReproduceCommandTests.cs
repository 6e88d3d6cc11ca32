using System.Diagnostics;
using System.Text;
using Harness.Host.Cli;
using Harness.Tests.Service;

namespace Harness.Tests.Reproductions;

/// <summary><c>harness reproduce</c> as a real process: the files of a paper's tier found by name, the runs, the
/// verdict page (Markdown and HTML) and the exit code's rule — 1 when a <c>must_pass</c> (exact toy) claim does not
/// pass, 0 when only other claims fail.</summary>
[TestClass]
public sealed class ReproduceCommandTests
{
    private static (int Code, string Out, string Err) Reproduce(string workDir, params string[] args)
    {
        var psi = new ProcessStartInfo(ServiceProcess.HostExecutable)
        {
            WorkingDirectory = workDir, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        foreach (var a in new[] { "reproduce" }.Concat(args).Concat(["--plugins", Paths.PluginArtifacts, "--threads", "1"])) psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        var stdout = new StringBuilder(); var stderr = new StringBuilder();
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (stdout) stdout.AppendLine(e.Data); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (stderr) stderr.AppendLine(e.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        if (!p.WaitForExit(600_000)) { p.Kill(true); Assert.Fail("harness reproduce did not finish in 600 s"); }
        p.WaitForExit();
        return (p.ExitCode, stdout.ToString(), stderr.ToString());
    }

    private const string Toy = """
        dtype: float64
        models:
          - name: quadratic
            hyperparameters: { hessian: "2 0; 0 1", theta0: "1 1" }
        optimizers:
          - name: gd
            hyperparameters: { lr: 0.1 }
        training: { steps: 5 }
        """;

    // f(θ0) = ½(2 + 1) = 1.5; GD at η = 0.1 contracts both coordinates, so the final loss is below 1.5 and above 0.
    private const string Passing = "  - { id: loss-decreases, must_pass: true, text: \"GD decreases f\", metric: train_loss, statistic: final, per: run, expect: { \"<\": 1.5 } }\n";
    private const string Failing = "  - { id: loss-is-zero, text: \"f reaches 0 in 5 steps (false)\", metric: train_loss, statistic: final, per: run, expect: { \"<\": 1.0e-30 } }\n";
    private const string FailingToy = "  - { id: toy-loss-is-zero, must_pass: true, text: \"f reaches 0 in 5 steps (false)\", metric: train_loss, statistic: final, per: run, expect: { \"<\": 1.0e-30 } }\n";

    private static string Fixture(string root)
    {
        string dir = Path.Combine(root, "experiments");
        Directory.CreateDirectory(dir);
        // paper008: a failing claim that is not must_pass; paper009: a failing must_pass claim.
        File.WriteAllText(Path.Combine(dir, "paper008-quick.yaml"), "name: paper008-quick\n" + Toy + "\nclaims:\n" + Passing + Failing);
        File.WriteAllText(Path.Combine(dir, "paper009-quick.yaml"), "name: paper009-quick\n" + Toy + "\nclaims:\n" + Passing + FailingToy);
        File.WriteAllText(Path.Combine(dir, "paper009-full.yaml"), "name: paper009-full\n" + Toy);
        return dir;
    }

    [TestMethod]
    public void PaperTwoQuickRunsFromTheRepositoryExperimentsAndEveryToyClaimPasses()
    {
        string root = Paths.NewTempDirectory("reproduce");
        // No --experiments: the host finds the repository's experiments/ above its own folder.
        var (code, output, err) = Reproduce(root, "paper002", "--tier", "quick", "--results", Path.Combine(root, "results"));
        Assert.AreEqual(0, code, output + err);
        StringAssert.Contains(err, "[1/1] paper002 paper002-quick.yaml");   // progress: log lines on stderr
        StringAssert.Contains(output, "must-pass claims: 7 of 7 pass");
        string md = File.ReadAllText(Path.Combine(root, "results", "reproductions", "paper002-quick.md"));
        // The exact row of the σ = 2 invariant: measured η_t·λ1 = 2 (G4), the bound as written in the file.
        StringAssert.Contains(md, "| paper002 | paper002-quick | cdat-invariant-sigma2 (must pass) | GD with CDAT(σ = 2, β = 0): η_t·λ1 ≥ σ at every step | **pass** | gd +cdat sigma=2 seeds 0/0: 2 ✓ | >= 1.999999999 |");
        StringAssert.Contains(md, "| sigma2-keeps-loss-max (must pass) |");
        StringAssert.Contains(md, "| in [3.7499999999, 3.7500000001] |");
        StringAssert.Contains(md, "7 claim(s): 7 pass, 0 fail, 0 not enough data. Must-pass (exact toy) claims: 7 of 7 pass.");
        StringAssert.Contains(md, "(figures/paper002-quick/sharpness.png)");
        Assert.IsTrue(File.Exists(Path.Combine(root, "results", "reproductions", "figures", "paper002-quick", "sharpness.png")));
        string html = File.ReadAllText(Path.Combine(root, "results", "reproductions", "paper002-quick.html"));
        StringAssert.Contains(html, "<tr class=\"pass\" data-claim=\"sigma1-decreases\" data-must-pass=\"true\">");
        Assert.IsTrue(File.Exists(Path.Combine(root, "results", "paper002-quick", "report", "report.html")));
    }

    [TestMethod]
    public void AFailingMustPassClaimGivesExitCodeOneAndAFailingOtherClaimDoesNot()
    {
        string root = Paths.NewTempDirectory("reproduce-fixture");
        string experiments = Fixture(root);

        var (code, output, err) = Reproduce(root, "paper008", "--experiments", experiments, "--results", Path.Combine(root, "results"), "--out", Path.Combine(root, "pages"));
        Assert.AreEqual(0, code, output + err);
        string md = File.ReadAllText(Path.Combine(root, "pages", "paper008-quick.md"));
        StringAssert.Contains(md, "| paper008 | paper008-quick | loss-is-zero | f reaches 0 in 5 steps (false) | **fail** |");
        StringAssert.Contains(md, "| paper008 | paper008-quick | loss-decreases (must pass) | GD decreases f | **pass** |");
        StringAssert.Contains(output, "must-pass claims: 1 of 1 pass; other claims: 0 pass, 1 fail, 0 not enough data");

        (code, output, err) = Reproduce(root, "all", "--experiments", experiments, "--results", Path.Combine(root, "results"), "--out", Path.Combine(root, "pages"));
        Assert.AreEqual(1, code, output + err);
        StringAssert.Contains(err, "[1/2] paper008 paper008-quick.yaml");
        StringAssert.Contains(err, "[2/2] paper009 paper009-quick.yaml");
        StringAssert.Contains(err, "error: must-pass claim paper009-quick.yaml:toy-loss-is-zero is 'fail'");
        md = File.ReadAllText(Path.Combine(root, "pages", "all-quick.md"));
        StringAssert.Contains(md, "| paper009 | paper009-quick | toy-loss-is-zero (must pass) | f reaches 0 in 5 steps (false) | **fail** |");
        StringAssert.Contains(md, "4 claim(s): 2 pass, 2 fail, 0 not enough data. Must-pass (exact toy) claims: 2 of 3 pass.");
    }

    [TestMethod]
    public void AnUnknownPaperOrTierIsAnErrorNamingTheChoices()
    {
        string root = Paths.NewTempDirectory("reproduce-errors");
        string experiments = Fixture(root);
        var (files, error) = ReproduceCommand.Discover(experiments, "paper042", "quick");
        Assert.AreEqual(0, files.Count);
        Assert.AreEqual($"error: unknown paper 'paper042' (one of: paper008, paper009, all; experiment files are {experiments}/paperNNN-quick|full[-part].yaml)", error);
        (_, error) = ReproduceCommand.Discover(experiments, "paper009", "medium");
        Assert.AreEqual("error: unknown tier 'medium' (one of: quick, full)", error);
        (_, error) = ReproduceCommand.Discover(experiments, "paper008", "full");
        Assert.AreEqual($"error: no full-tier experiment file for paper008 in {experiments} (expected paper008-full[-part].yaml)", error);
        (files, error) = ReproduceCommand.Discover(experiments, "all", "full");
        Assert.IsNull(error);
        CollectionAssert.AreEqual(new[] { "paper009-full.yaml" }, files.Select(f => Path.GetFileName(f.File)).ToArray());

        var (code, _, err) = Reproduce(root, "paper042", "--experiments", experiments);
        Assert.AreEqual(2, code);
        StringAssert.Contains(err, "error: unknown paper 'paper042' (one of: paper008, paper009, all;");
        Assert.IsFalse(Directory.Exists(Path.Combine(root, "results")), "nothing is run or written");
    }

    [TestMethod]
    public void TheExperimentsFolderIsTheFirstOneInTheHostFolderOrAbove()
    {
        Assert.AreEqual(Path.GetFullPath(Path.Combine(Paths.RepoRoot, "experiments")), Path.GetFullPath(ReproduceCommand.FindExperiments(Paths.HostDirectory)!));
        string root = Paths.NewTempDirectory("reproduce-find");
        Directory.CreateDirectory(Path.Combine(root, "experiments"));
        Directory.CreateDirectory(Path.Combine(root, "a", "b"));
        Assert.AreEqual(Path.Combine(root, "experiments"), ReproduceCommand.FindExperiments(Path.Combine(root, "a", "b")));
        Directory.CreateDirectory(Path.Combine(root, "a", "experiments"));
        Assert.AreEqual(Path.Combine(root, "a", "experiments"), ReproduceCommand.FindExperiments(Path.Combine(root, "a", "b")));
    }
}
