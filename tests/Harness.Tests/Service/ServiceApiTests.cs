using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;

namespace Harness.Tests.Service;

/// <summary>The API's refusals: missing token, oversized body, names that would leave the results tree, invalid
/// matrices (RFC 7807 problem details with the located messages), non-loopback binding without a token.</summary>
[TestClass]
public sealed class ServiceApiTests
{
    private const string Token = "s3cret-token";

    [TestMethod]
    public void RefusesWhatItMust()
    {
        using var svc = new ServiceProcess("svc-api", withAbortingPlugin: false);
        svc.Start("--api-token", Token, "--max-request-body", "65536");
        svc.WaitReady();

        // Token: every endpoint but /metrics and the health checks.
        Assert.AreEqual(HttpStatusCode.Unauthorized, svc.Get("/api/matrices").StatusCode);
        Assert.AreEqual(HttpStatusCode.Unauthorized, svc.Get("/api/matrices", "wrong").StatusCode);
        Assert.AreEqual(HttpStatusCode.Unauthorized, svc.Send(HttpMethod.Post, "/api/matrices", "name: x", null).StatusCode);
        Assert.AreEqual(HttpStatusCode.OK, svc.Get("/api/matrices", Token).StatusCode);
        Assert.AreEqual(HttpStatusCode.OK, svc.Get("/metrics").StatusCode);
        Assert.AreEqual(HttpStatusCode.OK, svc.Get("/healthz").StatusCode);
        Assert.AreEqual(HttpStatusCode.OK, svc.Get("/readyz").StatusCode);

        // Body size limit.
        var big = "# " + new string('x', 200_000) + "\nname: big\n";
        var tooLarge = svc.Send(HttpMethod.Post, "/api/matrices", big, Token, expectContinue: true);
        Assert.AreEqual(HttpStatusCode.RequestEntityTooLarge, tooLarge.StatusCode);

        // A name with ../ is refused by the matrix validation, with its location.
        var escape = svc.Send(HttpMethod.Post, "/api/matrices", """
            name: ../escape
            models: [ { name: quadratic } ]
            optimizers: [ { name: gd } ]
            training: { steps: 5 }
            """, Token);
        Assert.AreEqual(HttpStatusCode.BadRequest, escape.StatusCode);
        Assert.AreEqual("application/problem+json", escape.Content.Headers.ContentType?.MediaType);
        var escapeErrors = svc.Json(escape)["errors"]!.AsArray().Select(e => (string)e!).ToList();
        Assert.IsTrue(escapeErrors.Any(e => e.StartsWith("request:1:7: name: ")), string.Join("\n", escapeErrors));
        Assert.IsFalse(Directory.Exists(Path.Combine(svc.Root, "escape")), "nothing written outside results/");
        // Path parameters are checked too.
        Assert.AreEqual(HttpStatusCode.BadRequest, svc.Get("/api/runs/..%2F..%2Fetc", Token).StatusCode);
        Assert.AreEqual(HttpStatusCode.BadRequest, svc.Get("/api/matrices/..%2Fx", Token).StatusCode);
        Assert.AreEqual(HttpStatusCode.NotFound, svc.Get("/api/runs/gd-000000000000", Token).StatusCode);
        // A matrix by path: only files under the working directory.
        var outside = svc.Send(HttpMethod.Post, "/api/matrices", """{"path": "/etc/passwd"}""", Token, "application/json");
        Assert.AreEqual(HttpStatusCode.BadRequest, outside.StatusCode);
        StringAssert.Contains((string)svc.Json(outside)["title"]!, "path not allowed");

        // An invalid matrix: the same located messages as the CLI.
        var invalid = svc.Send(HttpMethod.Post, "/api/matrices", """
            name: invalid
            models: [ { name: quadratic } ]
            optimizers:
              - name: no_such_optimizer
            training: { steps: 5 }
            """, Token);
        Assert.AreEqual(HttpStatusCode.BadRequest, invalid.StatusCode);
        Assert.AreEqual("application/problem+json", invalid.Content.Headers.ContentType?.MediaType);
        var problem = svc.Json(invalid);
        Assert.AreEqual(400, (int)problem["status"]!);
        var errors = problem["errors"]!.AsArray().Select(e => (string)e!).ToList();
        Assert.IsTrue(errors.Any(e => e.StartsWith("request:4:11: optimizers[0].name: unknown optimizer 'no_such_optimizer'")), string.Join("\n", errors));

        // A valid matrix by path (relative to the working directory) is accepted and listed.
        File.WriteAllText(Path.Combine(svc.Root, "ok.yaml"), """
            name: by-path
            models: [ { name: quadratic } ]
            optimizers: [ { name: gd } ]
            training: { steps: 5 }
            """);
        var accepted = svc.Send(HttpMethod.Post, "/api/matrices", """{"path": "ok.yaml"}""", Token, "application/json");
        Assert.AreEqual(HttpStatusCode.Accepted, accepted.StatusCode, accepted.Content.ReadAsStringAsync().Result);
        var list = JsonNode.Parse(svc.Get("/api/matrices", Token).Content.ReadAsStringAsync().Result)!.AsArray();
        Assert.IsTrue(list.Any(m => (string?)m!["matrix"] == "by-path"));
        svc.WaitMatrix("by-path", "completed", TimeSpan.FromSeconds(120), Token);
        var plugins = svc.Json(svc.Get("/api/plugins", Token));
        Assert.IsTrue(plugins["optimizers"]!.AsArray().Any(o => (string?)o!["name"] == "gd" && (bool)o["gate"]!["passed"]!));
    }

    [TestMethod]
    public void RefusesANonLoopbackAddressWithoutAToken()
    {
        using var svc = new ServiceProcess("svc-bind", withAbortingPlugin: false);
        var psi = new ProcessStartInfo(ServiceProcess.HostExecutable)
        {
            WorkingDirectory = svc.Root, RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false,
        };
        foreach (var a in new[] { "serve", "--plugins", svc.Plugins, "--results", svc.Results, "--metrics-url", $"http://0.0.0.0:{ServiceProcess.FreePort()}" })
            psi.ArgumentList.Add(a);
        psi.Environment.Remove("HARNESS_API_TOKEN");
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        Assert.IsTrue(p.WaitForExit(60_000), "exits at once");
        Assert.AreEqual(2, p.ExitCode);
        StringAssert.Contains(stderr.Result, "needs an API token");
    }
}
