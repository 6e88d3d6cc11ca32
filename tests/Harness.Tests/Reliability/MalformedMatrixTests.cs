using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Harness.Tests.Service;

namespace Harness.Tests.Reliability;

/// <summary>
/// A corpus of hostile and malformed matrices, each sent to one real <c>harness serve</c> process on loopback through
/// the API and dropped into its inbox. Each must come back as its located error (RFC 7807 problem details with the
/// "file:line:col: key: message" strings; in the inbox, inbox/failed/&lt;file&gt;.error.txt), and the service must stay
/// up and answer after every one: none may crash it (deep nesting), hang it (a 2000 × 2000 grid, a FIFO), make it
/// read outside its roots (absolute paths, symlinks) or tell whether such a file exists.
/// </summary>
[TestClass]
public sealed class MalformedMatrixTests
{
    private static ServiceProcess _svc = null!;
    private static string Inbox => Path.Combine(_svc.Root, "inbox");

    /// <param name="Name">names the case, its matrix and its inbox file (&lt;name&gt;.yaml)</param>
    /// <param name="Body">the matrix text; {root} is replaced by the service's working directory</param>
    /// <param name="Expected">the located error, "{file}" standing for the location's file ("request" for the API,
    /// the path of inbox/failed/&lt;name&gt;.yaml for the inbox)</param>
    public sealed record Case(string Name, string Body, string Expected)
    {
        public override string ToString() => Name;
    }

    private const string Head = "models: [ { name: quadratic } ]\n";

    public static IEnumerable<Case> Corpus =>
    [
        // Depth: YamlDotNet's representation model recursed once per '[' and overflowed the stack (the process died).
        new("depth", new string('[', 120_000), "{file}:1:65: (syntax): lists and mappings are nested more than 64 levels deep"),
        new("depth-mappings", string.Concat(Enumerable.Repeat("{a: ", 30_000)), "{file}:1:257: (syntax): lists and mappings are nested more than 64 levels deep"),
        // NaN: accepted by the numeric keys, then the run configuration could not be written as JSON (an empty 500).
        new("nan-target", "name: nan-target\n" + Head + "optimizers: [ { name: gd } ]\ntraining: { steps: 5, target_loss: NaN }\n",
            "{file}:4:36: training.target_loss: 'NaN' is not a finite number"),
        new("nan-divergence", "name: nan-divergence\n" + Head + "optimizers: [ { name: gd } ]\ntraining: { steps: 5, divergence_factor: NaN }\n",
            "{file}:4:42: training.divergence_factor: 'NaN' is not a finite number"),
        new("nan-schedule", "name: nan-schedule\n" + Head + "optimizers: [ { name: gd, schedule: { kind: step_decay, step_size: 2, gamma: nan } } ]\ntraining: { steps: 5 }\n",
            "{file}:3:78: optimizers[0].schedule.gamma: 'nan' is not a finite number"),
        new("nan-json", """{"name": "nan-json", "models": [{"name": "quadratic"}], "optimizers": [{"name": "gd"}], "training": {"steps": 5, "target_loss": NaN}}""",
            "{file}:1:129: training.target_loss: 'NaN' is not a finite number"),
        // Types: a device this build does not have validated, then every worker died.
        new("device-cuda", "name: device-cuda\ndevice: cuda\n" + Head + "optimizers: [ { name: gd } ]\ntraining: { steps: 5 }\n",
            "{file}:2:9: device: CUDA is not available"),
        // Grid size: 25 KB describing 4 million runs hung validation (and took 630 MB).
        new("grid", "name: grid\n" + Head + "optimizers: [ { name: gd, hyperparameters: { lr: [" + string.Join(", ", Enumerable.Range(1, 2000).Select(i => $"{i}e-4")) + "] } } ]\n"
            + "seeds: { init: [" + string.Join(", ", Enumerable.Range(0, 2000)) + "] }\ntraining: { steps: 5 }\n",
            "{file}:3:50: optimizers[0].hyperparameters.lr: the matrix expands to 4000000 runs, more than the limit of 10000 (Harness:MaxRunsPerMatrix)"),
        // Absolute paths: read anywhere (the error quoted /etc/shadow's first byte, or said that /root/.ssh/id_rsa did
        // not exist); data_dir: /etc was accepted. Now one message that says nothing about the file.
        new("abs-state", "name: abs-state\n" + Head + "optimizers: [ { name: precond_gd, preconditioner_from: { file: /etc/passwd } } ]\ntraining: { steps: 5 }\n",
            "{file}:3:64: optimizers[0].preconditioner_from.file: " + Harness.Host.Matrix.InputPolicy.RefusedMessage),
        new("abs-missing", "name: abs-missing\n" + Head + "optimizers: [ { name: precond_gd, preconditioner_from: { file: /root/.ssh/no-such-key } } ]\ntraining: { steps: 5 }\n",
            "{file}:3:64: optimizers[0].preconditioner_from.file: " + Harness.Host.Matrix.InputPolicy.RefusedMessage),
        new("abs-data-dir", "name: abs-data-dir\ndata_dir: /etc\n" + Head + "optimizers: [ { name: gd } ]\ntraining: { steps: 5 }\n",
            "{file}:2:11: data_dir: " + Harness.Host.Matrix.InputPolicy.RefusedDirectoryMessage),
        // Symlink escape: a link under the working directory to /etc/passwd passed the lexical check and was read.
        new("link-state", "name: link-state\n" + Head + "optimizers: [ { name: precond_gd, preconditioner_from: { file: {root}/passwd-link.json } } ]\ntraining: { steps: 5 }\n",
            "{file}:3:64: optimizers[0].preconditioner_from.file: " + Harness.Host.Matrix.InputPolicy.RefusedMessage),
        new("link-data-dir", "name: link-data-dir\ndata_dir: etc-link\n" + Head + "optimizers: [ { name: gd } ]\ntraining: { steps: 5 }\n",
            "{file}:2:11: data_dir: " + Harness.Host.Matrix.InputPolicy.RefusedDirectoryMessage),
        // FIFO: opening it for the state file blocked the request forever.
        new("fifo-state", "name: fifo-state\n" + Head + "optimizers: [ { name: precond_gd, preconditioner_from: { file: {root}/pipe.json } } ]\ntraining: { steps: 5 }\n",
            "{file}:3:64: optimizers[0].preconditioner_from.file: " + Harness.Host.Matrix.InputPolicy.RefusedMessage),
    ];

    /// <summary>Files submitted by path ({"path": …}) and dropped into the inbox as such.</summary>
    public sealed record FileCase(string Name, int Status, string Title, string InboxError)
    {
        public override string ToString() => Name;
    }

    public static IEnumerable<FileCase> FileCorpus =>
    [
        // A FIFO blocked the request (and the inbox) forever.
        new("pipe", 400, "path not allowed", "not a regular file"),
        // A symlink to /etc/passwd was read (and its content parsed as a matrix).
        new("escape", 400, "path not allowed", "not a regular file"),
        // A matrix file of 2 MiB was read whole, whatever the limits.
        new("huge", 400, "matrix file too large", "larger than the limit of 1048576 bytes"),
    ];

    [ClassInitialize]
    public static void StartService(TestContext _)
    {
        _svc = new ServiceProcess("reliability", withAbortingPlugin: false);
        Directory.CreateDirectory(Inbox);
        Mkfifo(Path.Combine(_svc.Root, "pipe.json"));
        File.CreateSymbolicLink(Path.Combine(_svc.Root, "passwd-link.json"), "/etc/passwd");
        Directory.CreateSymbolicLink(Path.Combine(_svc.Root, "etc-link"), "/etc");
        // The file cases, in the working directory (for the API) and in the inbox.
        foreach (var dir in new[] { _svc.Root, Inbox })
        {
            Mkfifo(Path.Combine(dir, "pipe.yaml"));
            File.CreateSymbolicLink(Path.Combine(dir, "escape.yaml"), "/etc/passwd");
            File.WriteAllText(Path.Combine(dir, "huge.yaml"), "# " + new string('x', 2 << 20) + "\nname: huge\n");
        }
        // A file left in inbox/running/ by a process that died while handling it (this one crashed it before).
        Directory.CreateDirectory(Path.Combine(Inbox, "running"));
        File.WriteAllText(Path.Combine(Inbox, "running", "poison.yaml"), new string('[', 120_000));
        // The inbox takes every case at once (in name order); each test waits for its own verdict.
        foreach (var c in Corpus) File.WriteAllText(Path.Combine(Inbox, c.Name + ".yaml"), Body(c));
        _svc.Start("--workers", "1");
        _svc.WaitReady();
    }

    [ClassCleanup]
    public static void StopService() => _svc?.Dispose();

    private static string Body(Case c) => c.Body.Replace("{root}", _svc.Root);

    [TestMethod]
    [DynamicData(nameof(Corpus))]
    public void ApiAnswersWithTheLocatedError(Case c)
    {
        var clock = Stopwatch.StartNew();
        var r = _svc.Send(HttpMethod.Post, "/api/matrices", Body(c));
        var text = r.Content.ReadAsStringAsync().Result;
        Assert.AreEqual(HttpStatusCode.BadRequest, r.StatusCode, text);
        Assert.AreEqual("application/problem+json", r.Content.Headers.ContentType?.MediaType, text);
        var errors = JsonNode.Parse(text)!["errors"]!.AsArray().Select(e => (string)e!).ToList();
        string expected = c.Expected.Replace("{file}", "request");
        Assert.IsTrue(errors.Any(e => e.StartsWith(expected, StringComparison.Ordinal)), $"expected '{expected}', got:\n{string.Join("\n", errors)}");
        AssertServiceUp();
    }

    [TestMethod]
    [DynamicData(nameof(Corpus))]
    public void InboxMovesItToFailedWithTheLocatedError(Case c)
    {
        string failed = Path.Combine(Inbox, "failed", c.Name + ".yaml");
        string error = failed + ".error.txt";
        _svc.Until(() => File.Exists(error), TimeSpan.FromSeconds(120), $"inbox verdict on {c.Name}");
        var text = File.ReadAllText(error);
        StringAssert.Contains(text, c.Expected.Replace("{file}", failed));
        Assert.IsFalse(File.Exists(Path.Combine(Inbox, c.Name + ".yaml")), "the file left the inbox");
        AssertServiceUp();
    }

    [TestMethod]
    [DynamicData(nameof(FileCorpus))]
    public void ApiRefusesTheFileByPath(FileCase c)
    {
        var r = _svc.Send(HttpMethod.Post, "/api/matrices", $$"""{"path": "{{c.Name}}.yaml"}""", contentType: "application/json");
        var text = r.Content.ReadAsStringAsync().Result;
        Assert.AreEqual(c.Status, (int)r.StatusCode, text);
        Assert.AreEqual("application/problem+json", r.Content.Headers.ContentType?.MediaType, text);
        Assert.AreEqual(c.Title, (string?)JsonNode.Parse(text)!["title"], text);
        AssertServiceUp();
    }

    [TestMethod]
    [DynamicData(nameof(FileCorpus))]
    public void InboxRefusesTheFile(FileCase c)
    {
        string error = Path.Combine(Inbox, "failed", c.Name + ".yaml.error.txt");
        _svc.Until(() => File.Exists(error), TimeSpan.FromSeconds(120), $"inbox verdict on {c.Name}");
        StringAssert.Contains(File.ReadAllText(error), c.InboxError);
        AssertServiceUp();
    }

    /// <summary>Before, a file in inbox/running/ was queued again on every start, and one that crashed the service
    /// crashed it again, forever. Now it goes to failed/ with the reason.</summary>
    [TestMethod]
    public void InboxDoesNotRetryAFileThatWasBeingHandledWhenTheServiceEnded()
    {
        string error = Path.Combine(Inbox, "failed", "poison.yaml.error.txt");
        _svc.Until(() => File.Exists(error), TimeSpan.FromSeconds(60), "poison.yaml in failed/");
        StringAssert.Contains(File.ReadAllText(error), "the previous service process ended while it was reading or submitting this file");
        Assert.IsFalse(File.Exists(Path.Combine(Inbox, "running", "poison.yaml")));
        AssertServiceUp();
    }

    /// <summary>Ten thousand bad values are one answer of bounded size: the first 100 errors and a count.</summary>
    [TestMethod]
    public void ErrorsAreCapped()
    {
        var body = "name: many\n" + Head + "optimizers: [ { name: gd, hyperparameters: { lr: [" + string.Join(", ", Enumerable.Repeat("[1]", 10_000)) + "] } } ]\ntraining: { steps: 5 }\n";
        var r = _svc.Send(HttpMethod.Post, "/api/matrices", body);
        var errors = JsonNode.Parse(r.Content.ReadAsStringAsync().Result)!["errors"]!.AsArray().Select(e => (string)e!).ToList();
        Assert.HasCount(101, errors);
        StringAssert.StartsWith(errors[0], "request:3:51: optimizers[0].hyperparameters.lr[0]: expected a single value");
        StringAssert.EndsWith(errors[100], "(matrix): 9900 more error(s) not listed");
        AssertServiceUp();
    }

    /// <summary>A refused path gets the same answer whether the file exists or not, and never its content.</summary>
    [TestMethod]
    public void RefusalsSayNothingAboutThePath()
    {
        string Answer(string file) => _svc.Send(HttpMethod.Post, "/api/matrices",
            $"name: probe\n{Head}optimizers: [ {{ name: precond_gd, preconditioner_from: {{ file: {file} }} }} ]\ntraining: {{ steps: 5 }}\n").Content.ReadAsStringAsync().Result;
        string Errors(string answer) => string.Join("\n", JsonNode.Parse(answer)!["errors"]!.AsArray().Select(e => (string)e!));
        var exists = Errors(Answer("/etc/passwd"));
        Assert.AreEqual(exists, Errors(Answer("/etc/no-such-file-here")));
        Assert.AreEqual(exists, Errors(Answer($"{_svc.Root}/passwd-link.json")));
        Assert.DoesNotContain("root:", exists);
        Assert.DoesNotContain("/etc", exists);
        // {"path": …} likewise.
        string Title(string path) => (string)JsonNode.Parse(_svc.Send(HttpMethod.Post, "/api/matrices", $$"""{"path": "{{path}}"}""", contentType: "application/json").Content.ReadAsStringAsync().Result)!["detail"]!;
        Assert.AreEqual(Title("/etc/passwd"), Title("/etc/no-such-file-here"));
        Assert.AreEqual(Title("/etc/passwd"), Title(@"a\u0000b"));
    }

    /// <summary>Errors that are not about the matrix are problem details with a reason too (before: empty 500/404).</summary>
    [TestMethod]
    public void EveryErrorIsProblemDetails()
    {
        foreach (var (method, path, body) in new[] { (HttpMethod.Post, "/api/matrices", """{"path":"a\u0000b"}"""), (HttpMethod.Get, "/api/no-such-endpoint", (string?)null), (HttpMethod.Delete, "/api/matrices", null) })
        {
            var r = _svc.Send(method, path, body, contentType: "application/json");
            var text = r.Content.ReadAsStringAsync().Result;
            Assert.IsGreaterThanOrEqualTo(400, (int)r.StatusCode, text);
            Assert.AreEqual("application/problem+json", r.Content.Headers.ContentType?.MediaType, $"{method} {path}: {(int)r.StatusCode} '{text}'");
            Assert.IsFalse(string.IsNullOrWhiteSpace((string?)JsonNode.Parse(text)!["detail"]), text);
        }
    }

    private static void AssertServiceUp()
    {
        Assert.IsFalse(_svc.Process!.HasExited, $"the service died\n{_svc.Log}");
        Assert.AreEqual(HttpStatusCode.OK, _svc.Get("/healthz").StatusCode);
    }

    private static void Mkfifo(string path)
    {
        using var p = Process.Start("mkfifo", [path])!;
        p.WaitForExit(10_000);
        Assert.AreEqual(0, p.ExitCode, $"mkfifo {path}");
    }
}
