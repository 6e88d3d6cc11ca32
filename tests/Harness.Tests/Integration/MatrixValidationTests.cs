using Harness.Host.Matrix;
using Harness.Host.Plugins;

namespace Harness.Tests.Integration;

/// <summary>Every class of bad matrix input yields its own error naming file, line, column, key and reason — checked
/// against the real plugins (loaded from the plugin folder) and through the <c>harness</c> CLI.</summary>
[TestClass]
public sealed class MatrixValidationTests
{
    private static PluginCatalog _plugins = null!;
    private static string _dir = "";

    /// <summary>A valid matrix; each case changes one line (1-based) of it.</summary>
    private static readonly string[] Valid =
    [
        "name: valid",                  // 1
        "dtype: float64",               // 2
        "models:",                      // 3
        "  - name: quadratic",          // 4
        "    hyperparameters:",         // 5
        "      dim: 4",                 // 6
        "optimizers:",                  // 7
        "  - name: gd",                 // 8
        "    hyperparameters:",         // 9
        "      lr: [0.1, 0.2]",         // 10
        "seeds:",                       // 11
        "  init: [0, 1]",               // 12
        "  data: [0]",                  // 13
        "training:",                    // 14
        "  steps: 5",                   // 15
        "probes:",                      // 16
        "  - name: sharpness",          // 17
        "    every: 5",                 // 18
        "    hyperparameters:",         // 19
        "      max_iterations: 10",     // 20
    ];

    [ClassInitialize]
    public static void LoadPlugins(TestContext _)
    {
        _plugins = PluginCatalog.Load(Paths.PluginArtifacts);
        Assert.IsEmpty(_plugins.Errors, string.Join("; ", _plugins.Errors));
        _dir = Paths.NewTempDirectory("matrices");
    }

    [ClassCleanup]
    public static void Cleanup() { try { Directory.Delete(_dir, true); } catch (IOException) { } }

    private static string Write(string name, IEnumerable<string> lines)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, string.Join("\n", lines) + "\n");
        return path;
    }

    private static string[] Replace(int line, string text)
    {
        var lines = Valid.ToArray();
        lines[line - 1] = text;
        return lines;
    }

    [TestMethod]
    public void TheBaseMatrixIsValid()
    {
        var spec = MatrixParser.ParseFile(Write("valid.yaml", Valid), _plugins);
        Assert.HasCount(4, MatrixExpander.Expand(spec), "2 learning rates × 2 init seeds");
    }

    [TestMethod]
    //        case                          line  replacement                            err line col  key                                        reason
    [DataRow("unknown top-level key",        2, "colour: blue",                            2, 1,  "colour",                                  "unknown key (expected one of: name, ")]
    [DataRow("unknown model",                4, "  - name: quadratik",                     4, 11, "models[0].name",                          "unknown model 'quadratik' (available: ")]
    [DataRow("unknown optimizer",            8, "  - name: sgdx",                          8, 11, "optimizers[0].name",                      "unknown optimizer 'sgdx' (available: ")]
    [DataRow("unknown probe",               17, "  - name: hessian_magic",                17, 11, "probes[0].name",                          "unknown probe 'hessian_magic' (available: ")]
    [DataRow("unknown hyperparameter",      10, "      momentum: 0.9",                    10, 7,  "optimizers[0].hyperparameters.momentum",  "unknown hyperparameter of optimizer 'gd' (it has: lr, weight_decay, decoupled_weight_decay)")]
    [DataRow("unknown probe hyperparameter",20, "      iterations: 10",                   20, 7,  "probes[0].hyperparameters.iterations",    "unknown hyperparameter of probe 'sharpness'")]
    [DataRow("value outside its range",     10, "      lr: [0.1, -0.2]",                  10, 17, "optimizers[0].hyperparameters.lr[1]",     "value -0.2 is outside (0, inf]")]
    [DataRow("integer outside its range",    6, "      dim: 0",                            6, 12, "models[0].hyperparameters.dim",           "value 0 is outside [1, 4096]")]
    [DataRow("probe value outside range",   20, "      max_iterations: 0",                20, 23, "probes[0].hyperparameters.max_iterations","value 0 is outside [1, 1000]")]
    [DataRow("string for a number",          6, "      dim: four",                         6, 12, "models[0].hyperparameters.dim",           "expected a number, got 'four'")]
    [DataRow("quoted string for a number",  15, "  steps: \"5\"",                         15, 10, "training.steps",                          "expected a number, got '5'")]
    [DataRow("fraction for an integer",      6, "      dim: 2.5",                          6, 12, "models[0].hyperparameters.dim",           "expected an integer, got 2.5")]
    [DataRow("missing training.steps",      15, "  batch_size: full",                     15, 3,  "training.steps",                          "required")]
    [DataRow("name with '/'",                1, "name: a/b",                               1, 7,  "name",                                    "must be 1-100 characters of letters, digits, '_', '.', '-' (it names a folder)")]
    [DataRow("name '..'",                    1, "name: ..",                                1, 7,  "name",                                    "(it names a folder)")]
    [DataRow("name with '../'",              1, "name: ../escape",                         1, 7,  "name",                                    "(it names a folder)")]
    [DataRow("non-name hyperparameter key",  6, "      [dim]: 4",                          6, 7,  "models[0].hyperparameters",               "keys must be plain hyperparameter names")]
    [DataRow("duplicate swept value",       10, "      lr: [0.1, 0.1]",                   10, 17, "optimizers[0].hyperparameters.lr[1]",     "duplicate value 0.1 in the list")]
    [DataRow("duplicate seeds",             12, "  init: [3, 3]",                         12, 9,  "seeds.init",                              "duplicate seeds")]
    [DataRow("negative seed",               12, "  init: [-1]",                           12, 10, "seeds.init",                              "seeds are non-negative integers, got '-1'")]
    public void EachBadInputHasItsLocatedError(string @case, int line, string replacement, int errorLine, int errorColumn, string key, string reason)
    {
        string file = Write(@case.Replace(' ', '_').Replace('\'', '_').Replace('/', '_') + ".yaml", Replace(line, replacement));
        var e = Assert.ThrowsExactly<MatrixValidationException>(() => MatrixParser.ParseFile(file, _plugins), @case);
        Assert.HasCount(1, e.Errors, $"{@case}: exactly one error expected:\n{e.Message}");
        var error = e.Errors[0];
        Assert.AreEqual(file, error.Location.File, @case);
        Assert.AreEqual((long)errorLine, error.Location.Line, $"{@case}: line\n{e.Message}");
        Assert.AreEqual((long)errorColumn, error.Location.Column, $"{@case}: column\n{e.Message}");
        Assert.AreEqual(key, error.Key, $"{@case}: key\n{e.Message}");
        StringAssert.Contains(error.Message, reason, $"{@case}: reason\n{e.Message}");
        StringAssert.Contains(e.Message, $"{file}:{errorLine}:{errorColumn}: {key}: ", @case);
    }

    [TestMethod]
    public void YamlSyntaxErrorsAreLocated()
    {
        // Bad indentation in the middle of the file.
        string indent = Write("indent.yaml", Replace(5, "   hyperparameters:"));
        var e = Assert.ThrowsExactly<MatrixValidationException>(() => MatrixParser.ParseFile(indent, _plugins));
        Assert.HasCount(1, e.Errors, e.Message);
        Assert.AreEqual("(syntax)", e.Errors[0].Key);
        Assert.AreEqual(indent, e.Errors[0].Location.File);
        Assert.AreEqual(5L, e.Errors[0].Location.Line, e.Message);
        Assert.IsGreaterThan(0L, e.Errors[0].Location.Column, e.Message);

        // A file that ends inside a flow collection: with a final newline YamlDotNet reports it at the end of the file ...
        string truncated = Write("truncated.yaml", Valid.Take(5).Append("      dim: [4, 5"));
        e = Assert.ThrowsExactly<MatrixValidationException>(() => MatrixParser.ParseFile(truncated, _plugins));
        Assert.HasCount(1, e.Errors, e.Message);
        Assert.AreEqual("(syntax)", e.Errors[0].Key);
        Assert.AreEqual(7L, e.Errors[0].Location.Line, e.Message);
        StringAssert.Contains(e.Errors[0].Message, "did not find expected ',' or ']'");

        // A flow collection left open in the middle of the file: YamlDotNet's scanner throws an
        // InvalidOperationException there, which must not escape as a crash.
        string open = Write("unclosed.yaml", Replace(10, "      lr: [0.1, 0.2"));
        e = Assert.ThrowsExactly<MatrixValidationException>(() => MatrixParser.ParseFile(open, _plugins));
        Assert.HasCount(1, e.Errors, e.Message);
        Assert.AreEqual("(syntax)", e.Errors[0].Key);
        Assert.AreEqual(open, e.Errors[0].Location.File);
        Assert.AreEqual(10L, e.Errors[0].Location.Line, e.Message);
        StringAssert.Contains(e.Errors[0].Message, "a closing bracket is missing");

        // An unterminated quoted string.
        string quote = Write("quote.yaml", Replace(1, "name: 'valid"));
        e = Assert.ThrowsExactly<MatrixValidationException>(() => MatrixParser.ParseFile(quote, _plugins));
        Assert.HasCount(1, e.Errors, e.Message);
        Assert.AreEqual("(syntax)", e.Errors[0].Key);
        Assert.AreEqual(1L, e.Errors[0].Location.Line, e.Message);
    }

    [TestMethod]
    public void ASecondYamlDocumentIsAnErrorNotIgnored()
    {
        string file = Write("two-documents.yaml", Valid.Concat(["---", "name: other"]));
        var e = Assert.ThrowsExactly<MatrixValidationException>(() => MatrixParser.ParseFile(file, _plugins));
        Assert.HasCount(1, e.Errors, e.Message);
        Assert.AreEqual(new SourceLocation(file, Valid.Length + 2, 1), e.Errors[0].Location, e.Message);
        StringAssert.Contains(e.Errors[0].Message, "more than one YAML document");
    }

    [TestMethod]
    public void AllErrorsOfAFileAreReportedTogether()
    {
        var lines = Valid.ToArray();
        lines[1] = "colour: blue";
        lines[3] = "  - name: quadratik";
        lines[9] = "      lr: -1";
        lines[11] = "  init: [1, 1]";
        var e = Assert.ThrowsExactly<MatrixValidationException>(() => MatrixParser.ParseFile(Write("many.yaml", lines), _plugins));
        CollectionAssert.AreEquivalent(new[] { "colour", "models[0].name", "optimizers[0].hyperparameters.lr", "seeds.init" },
            e.Errors.Select(x => x.Key).ToList(), e.Message);
    }

    [TestMethod]
    public void ValidateCommandPrintsLocatedErrorsAndRunTrainsNothing()
    {
        var work = Paths.NewTempDirectory("validate-cli");
        var lines = Valid.ToArray();
        lines[7] = "  - name: sgdx";
        lines[14] = "  steps: many";
        var bad = Path.Combine(work, "bad.yaml");
        File.WriteAllText(bad, string.Join("\n", lines) + "\n");
        string[] expected =
        [
            $"{bad}:8:11: optimizers[0].name: unknown optimizer 'sgdx'",
            $"{bad}:15:10: training.steps: expected a number, got 'many'",
        ];

        using (var validate = HarnessProcess.Run(work, TimeSpan.FromSeconds(60), "validate", bad, "--plugins", Paths.PluginArtifacts))
        {
            Assert.AreNotEqual(0, validate.ExitCode, validate.Output);
            foreach (var line in expected) StringAssert.Contains(validate.StdErr, line, validate.Output);
        }

        // A syntax error is reported like any other error, never as a crash of the host.
        var unclosed = Path.Combine(work, "unclosed.yaml");
        File.WriteAllText(unclosed, string.Join("\n", Replace(10, "      lr: [0.1, 0.2")) + "\n");
        using (var syntax = HarnessProcess.Run(work, TimeSpan.FromSeconds(60), "validate", unclosed, "--plugins", Paths.PluginArtifacts))
        {
            Assert.AreEqual(2, syntax.ExitCode, syntax.Output);
            StringAssert.Contains(syntax.StdErr, $"{unclosed}:10:", syntax.Output);
            StringAssert.Contains(syntax.StdErr, ": (syntax): ", syntax.Output);
            Assert.IsFalse(syntax.StdErr.Contains("Unhandled exception", StringComparison.Ordinal), syntax.Output);
        }

        var results = Path.Combine(work, "results");
        using (var run = HarnessProcess.Run(work, TimeSpan.FromSeconds(60), ["run", bad, .. HarnessProcess.RunOptions(results)]))
        {
            Assert.AreNotEqual(0, run.ExitCode, run.Output);
            foreach (var line in expected) StringAssert.Contains(run.StdErr, line, run.Output);
            Assert.IsFalse(run.StdErr.Contains(" started: ", StringComparison.Ordinal), run.Output);
        }
        Assert.IsFalse(Directory.Exists(results) && Directory.EnumerateFileSystemEntries(results).Any(),
            "harness run of an invalid matrix wrote results");

        var good = Path.Combine(work, "good.yaml");
        File.WriteAllText(good, string.Join("\n", Valid) + "\n");
        using (var ok = HarnessProcess.Run(work, TimeSpan.FromSeconds(60), "validate", good, "--plugins", Paths.PluginArtifacts))
        {
            Assert.AreEqual(0, ok.ExitCode, ok.Output);
            StringAssert.Contains(ok.StdOut, "valid, 4 run(s)", ok.Output);
        }
        Directory.Delete(work, true);
    }
}
