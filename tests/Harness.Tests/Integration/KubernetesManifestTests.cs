namespace Harness.Tests.Integration;

/// <summary>deploy/k8s/indexed-job.yaml against the Kubernetes batch/v1 Job schema (the npm package kubernetes-models,
/// generated from the Kubernetes OpenAPI specification, pinned in tests/k8s/package-lock.json) and the harness's rules
/// for an indexed Job of shards (tests/k8s/validate.mjs). No cluster runs it here: this checks the file, not a Job.</summary>
[TestClass]
public sealed class KubernetesManifestTests
{
    private static string Validator { get; set; } = "";

    [ClassInitialize]
    public static void InstallValidator(TestContext _)
    {
        foreach (var tool in new[] { "node", "npm" })
            if (Exec.Run("sh", ["-c", $"command -v {tool}"], TimeSpan.FromSeconds(10)).code != 0)
                Assert.Fail($"'{tool}' is not installed: apt-get install -y nodejs npm");
        Validator = Paths.NewTempDirectory("k8s-validate");
        foreach (var f in new[] { "package.json", "package-lock.json", ".npmrc", "validate.mjs" })
            File.Copy(Path.Combine(Paths.RepoRoot, "tests", "k8s", f), Path.Combine(Validator, f));
        var (code, stdout, stderr) = Exec.Run("npm", ["ci", "--no-audit", "--no-fund"], TimeSpan.FromMinutes(5), workingDirectory: Validator);
        Assert.AreEqual(0, code, "npm ci in a copy of tests/k8s failed:\n" + stdout + stderr);
    }

    [ClassCleanup]
    public static void RemoveValidator()
    {
        try { if (Validator.Length > 0) Directory.Delete(Validator, true); } catch (IOException) { }
    }

    private static (int code, string output) Validate(string manifest)
    {
        var (code, stdout, stderr) = Exec.Run("node", [Path.Combine(Validator, "validate.mjs"), manifest], TimeSpan.FromSeconds(60),
            workingDirectory: Validator);
        return (code, stdout + stderr);
    }

    [TestMethod]
    public void TheIndexedJobManifestIsAValidBatchV1JobOfShards()
    {
        string manifest = Path.Combine(Paths.RepoRoot, "deploy", "k8s", "indexed-job.yaml");
        var (code, output) = Validate(manifest);
        Assert.AreEqual(0, code, output);
        StringAssert.Contains(output, "valid batch/v1 Job harness-demo (4 indexed completions)");
    }

    [TestMethod]
    public void TheValidatorRejectsABrokenCopyWithLocatedErrors()
    {
        string text = File.ReadAllText(Path.Combine(Paths.RepoRoot, "deploy", "k8s", "indexed-job.yaml"));
        string dir = Paths.NewTempDirectory("k8s-broken");
        try
        {
            string typo = Path.Combine(dir, "typo.yaml"), mismatch = Path.Combine(dir, "mismatch.yaml");
            File.WriteAllText(typo, Replace(Replace(text, "completionMode: Indexed", "completionMode: Indexd"), "containerPort: 9464", "containerPort: metrics"));
            File.WriteAllText(mismatch, Replace(text, "value: \"4\"", "value: \"3\""));

            var (code, output) = Validate(typo);
            Assert.AreEqual(1, code, output);
            StringAssert.Contains(output, "/spec/completionMode must be equal to one of the allowed values (Indexed, NonIndexed)");
            StringAssert.Contains(output, "/spec/template/spec/containers/0/ports/0/containerPort must be integer");

            (code, output) = Validate(mismatch);
            Assert.AreEqual(1, code, output);
            StringAssert.Contains(output, "HARNESS_SHARD_COUNT=3 differs from /spec/completions=4");
        }
        finally { Directory.Delete(dir, true); }
    }

    private static string Replace(string text, string from, string to)
    {
        Assert.Contains(from, text, $"the manifest contains '{from}'");
        return text.Replace(from, to);
    }
}
