using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Harness.Host.Matrix;
using Harness.Host.Output;
using Harness.Host.Workers;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Harness.Host.Service;

/// <summary>
/// The service's HTTP API (same host as /metrics). JSON in snake_case; errors as RFC 7807 problem details
/// (application/problem+json), validation errors with an <c>errors</c> array of "file:line:col: key: message"
/// strings exactly as the CLI prints them. See docs/service.md for the reference.
/// </summary>
public static partial class ServiceApi
{
    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")]
    public static partial Regex SafeName();

    /// <summary>Paths that never need the API token (scrapers and orchestrators' probes).</summary>
    public static readonly string[] Open = ["/metrics", "/healthz", "/readyz"];

    public static void Map(WebApplication app, HarnessOptions o)
    {
        // Every error is problem details with a reason: unhandled exceptions (500) and bodiless errors (404 of an
        // unknown route, 405, Kestrel's 400s) included.
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        if (!string.IsNullOrEmpty(o.ApiToken))
        {
            var expected = Encoding.UTF8.GetBytes("Bearer " + o.ApiToken);
            app.Use(async (ctx, next) =>
            {
                var path = ctx.Request.Path.Value ?? "";
                if (!Open.Any(p => path.Equals(p, StringComparison.OrdinalIgnoreCase)))
                {
                    var given = Encoding.UTF8.GetBytes(ctx.Request.Headers.Authorization.ToString());
                    if (!CryptographicOperations.FixedTimeEquals(given, expected))
                    {
                        ctx.Response.Headers.WWWAuthenticate = "Bearer";
                        await Results.Problem(statusCode: 401, title: "unauthorized",
                            detail: "this endpoint needs the header 'Authorization: Bearer <token>' (the service's --api-token)").ExecuteAsync(ctx);
                        return;
                    }
                }
                await next(ctx);
            });
        }

        app.MapGet("/readyz", (PluginRegistry plugins, MatrixService service) =>
            service.Running ? Results.Text("ready") : Results.Text("not ready: the queue is not running", statusCode: 503));

        var api = app.MapGroup("/api");
        api.MapPost("/matrices", SubmitAsync);
        api.MapGet("/matrices", (MatrixService s) => Results.Json(new JsonArray(s.Jobs.Select(j => (JsonNode)MatrixJson(j, runs: false)).ToArray())));
        api.MapGet("/matrices/{name}", (string name, MatrixService s) =>
            BadName(name, "matrix name") ?? (s.Job(name) is { } j ? Results.Json(MatrixJson(j, runs: true)) : NotFound($"no matrix '{name}'")));
        api.MapPost("/matrices/{name}/cancel", (string name, MatrixService s) => BadName(name, "matrix name") ?? s.CancelMatrix(name) switch
        {
            MatrixService.CancelOutcome.NotFound => NotFound($"no matrix '{name}'"),
            MatrixService.CancelOutcome.AlreadyEnded => Results.Problem(statusCode: 409, title: "matrix already ended"),
            _ => Results.Json(new JsonObject { ["matrix"] = name, ["cancel"] = "requested" }, statusCode: 202),
        });
        api.MapGet("/runs", (MatrixService s) => Results.Json(new JsonArray(s.Jobs.SelectMany(j => j.RunOrder.Select(id => (JsonNode)RunJson(j.Runs[id]))).ToArray())));
        api.MapGet("/runs/{id}", (string id, MatrixService s) => BadName(id, "run id") ?? RunDetails(s.FindRun(id), id, s));
        api.MapGet("/matrices/{name}/runs/{id}", (string name, string id, MatrixService s) =>
            BadName(name, "matrix name") ?? BadName(id, "run id") ?? RunDetails(s.FindRun(name, id), id, s));
        api.MapPost("/runs/{id}/cancel", (string id, MatrixService s) =>
        {
            if (BadName(id, "run id") is { } bad) return bad;
            var (outcome, info) = s.CancelRun(id);
            return outcome switch
            {
                MatrixService.CancelOutcome.NotFound => NotFound($"no run '{id}'"),
                MatrixService.CancelOutcome.AlreadyEnded => Results.Problem(statusCode: 409, title: "run already ended", detail: $"run '{id}' is {info!.Status}"),
                _ => Results.Json(new JsonObject { ["run_id"] = id, ["cancel"] = "requested" }, statusCode: 202),
            };
        });
        api.MapGet("/plugins", (PluginRegistry r) => Results.Json(PluginsJson(r.Current)));
        ServiceDataApi.Map(api);
    }

    /// <summary>Fills in the reason of a problem the framework writes (an unhandled exception, a bodiless status):
    /// the exception's type and a reference to the log, never its stack or message (which may name server paths).</summary>
    public static void DescribeProblem(ProblemDetailsContext c)
    {
        if (c.Exception is { } e)
        {
            c.ProblemDetails.Title = "internal error";
            c.ProblemDetails.Detail = $"the service could not handle this request ({e.GetType().Name}); its log has the details under trace id {c.HttpContext.TraceIdentifier}";
            c.HttpContext.RequestServices.GetRequiredService<Microsoft.Extensions.Logging.ILoggerFactory>().CreateLogger("api")
                .LogError(e, "request {Method} {Path} failed (trace id {TraceId})", c.HttpContext.Request.Method, c.HttpContext.Request.Path, c.HttpContext.TraceIdentifier);
        }
        else if (c.ProblemDetails.Detail is null)
            c.ProblemDetails.Detail = c.ProblemDetails.Status switch
            {
                404 => $"no endpoint {c.HttpContext.Request.Path} (see docs/service.md for the API)",
                405 => $"{c.HttpContext.Request.Method} is not allowed on {c.HttpContext.Request.Path}",
                400 => "the request is malformed",
                _ => c.ProblemDetails.Title,
            };
    }

    private static IResult NotFound(string detail) => Results.Problem(statusCode: 404, title: "not found", detail: detail);

    private static IResult? BadName(string name, string what) => SafeName().IsMatch(name) ? null :
        Results.Problem(statusCode: 400, title: $"invalid {what}", detail: $"'{name}' is not 1-100 characters of letters, digits, '_', '.', '-'");

    private static async Task<IResult> SubmitAsync(HttpContext ctx, MatrixService service, Microsoft.Extensions.Options.IOptions<HarnessOptions> options)
    {
        long limit = options.Value.MaxRequestBodyBytes;
        if (ctx.Request.ContentLength > limit) return TooLarge(limit);
        string body;
        try
        {
            using var reader = new StreamReader(ctx.Request.Body, Encoding.UTF8);
            var buffer = new char[8192];
            var sb = new StringBuilder();
            int n;
            while ((n = await reader.ReadAsync(buffer, ctx.RequestAborted)) > 0)
            {
                sb.Append(buffer, 0, n);
                if (sb.Length > limit) return TooLarge(limit);
            }
            body = sb.ToString();
        }
        catch (BadHttpRequestException e) when (e.StatusCode == 413) { return TooLarge(limit); }

        string text = body, source = "request";
        if (IsPathRequest(body, out var path))
        {
            // The file must resolve (symlinks included) to a regular file under the working directory; a refusal
            // says nothing about the path (not whether it exists).
            string cwd = Path.GetFullPath(Directory.GetCurrentDirectory());
            var full = UntrustedFile.Full(path!, cwd);
            var read = full is null ? new FileRead(null, null) : UntrustedFile.Read(full, limit, roots: [cwd]);
            if (read.Bytes is null)
                return read.Problem is null
                    ? Results.Problem(statusCode: 400, title: "path not allowed", detail: "the path must name an existing regular file under the service's working directory (symlinks are followed and must stay inside it)")
                    : Results.Problem(statusCode: 400, title: "matrix file too large", detail: $"the file {read.Problem} (Harness:MaxRequestBodyBytes)");
            text = Encoding.UTF8.GetString(read.Bytes);
            source = path!;
        }
        try
        {
            var (job, cells) = service.Submit(text, source);
            var result = new JsonObject
            {
                ["matrix"] = job.Name, ["state"] = Lower(job.State), ["directory"] = job.Directory,
                ["runs"] = new JsonArray(cells.Select(c => (JsonNode)new JsonObject { ["run_id"] = c.RunId, ["label"] = c.Label }).ToArray()),
            };
            return Results.Json(result, statusCode: 202);
        }
        catch (MatrixValidationException e)
        {
            return Results.Problem(statusCode: 400, title: "invalid matrix", detail: $"{e.Errors.Count} error(s) in the matrix",
                extensions: new Dictionary<string, object?> { ["errors"] = e.Errors.Select(x => x.ToString()).ToArray() });
        }
        catch (SubmissionConflictException e) { return Results.Problem(statusCode: 409, title: "matrix already queued or running", detail: e.Message); }
    }

    private static IResult TooLarge(long limit) =>
        Results.Problem(statusCode: 413, title: "request body too large", detail: $"the limit is {limit} bytes (Harness:MaxRequestBodyBytes)");

    /// <summary>A JSON object with exactly one key "path" asks the service to read a matrix file.</summary>
    private static bool IsPathRequest(string body, out string? path)
    {
        path = null;
        if (!body.TrimStart().StartsWith('{')) return false;
        try
        {
            if (JsonNode.Parse(body) is JsonObject o && o.Count == 1 && o["path"] is JsonValue v && v.TryGetValue<string>(out var p)) { path = p; return true; }
        }
        catch (System.Text.Json.JsonException) { }
        return false;
    }

    private static string Lower(Enum e) => e.ToString().ToLowerInvariant();

    private static JsonObject MatrixJson(MatrixJob j, bool runs)
    {
        var infos = j.RunOrder.Select(id => j.Runs[id]).ToList();
        var o = new JsonObject
        {
            ["matrix"] = j.Name, ["state"] = Lower(j.State), ["submitted_utc"] = j.SubmittedUtc, ["finished_utc"] = j.FinishedUtc,
            ["error"] = j.Error, ["directory"] = j.Directory, ["runs_total"] = infos.Count,
            ["runs_by_status"] = new JsonObject(infos.GroupBy(i => i.Status).OrderBy(g => g.Key)
                .Select(g => KeyValuePair.Create(g.Key, (JsonNode?)g.Count()))),
            ["progress"] = infos.Count == 0 ? 0 : infos.Sum(i => Fraction(i)) / infos.Count,
        };
        if (runs) o["runs"] = new JsonArray(infos.Select(i => (JsonNode)RunJson(i)).ToArray());
        return o;
    }

    private static double Fraction(RunInfo i) => i.Status is "completed" or "diverged" ? 1 : i.Steps > 0 ? Math.Min(1, (double)i.Step / i.Steps) : 0;

    private static JsonObject RunJson(RunInfo i) => new()
    {
        ["run_id"] = i.RunId, ["matrix"] = i.Matrix, ["label"] = i.Label, ["status"] = i.Status, ["step"] = i.Step, ["steps"] = i.Steps,
        ["progress"] = Fraction(i), ["loss"] = double.IsFinite(i.Loss) ? i.Loss : null, ["reason"] = i.Reason,
    };

    private static IResult RunDetails(RunInfo? info, string id, MatrixService s)
    {
        if (info is null) return NotFound($"no run '{id}'");
        var job = s.Job(info.Matrix)!;
        string dir = Path.Combine(job.Directory, id);
        var o = RunJson(info);
        // Data by URL (ServiceDataApi), never by server-side path.
        (o["trace_parquet"], o["trace_csv"]) = ServiceDataApi.TraceUrls(id);
        var stderr = Path.Combine(dir, WorkerPool.StderrFile);
        o["worker_stderr"] = File.Exists(stderr) ? stderr : null;
        if (RunManifest.TryLoad(Path.Combine(dir, "manifest.json")) is { } m)
            o["manifest_content"] = System.Text.Json.JsonSerializer.SerializeToNode(m, RunManifest.Json);
        return Results.Json(o);
    }

    private static JsonObject PluginsJson(PluginRegistry.Snapshot snap)
    {
        var c = snap.Catalog;
        JsonObject Entry(string name, string desc, Plugins.PluginOrigin origin) => new()
        {
            ["name"] = name, ["description"] = desc, ["file"] = origin.File, ["sha256"] = origin.Sha256,
            ["assembly"] = origin.AssemblyName, ["version"] = origin.AssemblyVersion,
        };
        return new JsonObject
        {
            ["folder"] = c.Folder, ["generation"] = snap.Generation, ["loaded_utc"] = snap.LoadedUtc,
            ["optimizers"] = new JsonArray(c.Optimizers.OrderBy(k => k.Key).Select(kv =>
            {
                var e = Entry(kv.Key, kv.Value.Plugin.Description, kv.Value.Origin);
                if (snap.Gates.TryGetValue(kv.Key, out var g)) e["gate"] = new JsonObject { ["passed"] = g.Passed, ["detail"] = g.Detail };
                return (JsonNode)e;
            }).ToArray()),
            ["gate_failures"] = new JsonArray(snap.Gates.Where(g => !g.Value.Passed).Select(g => (JsonNode)new JsonObject { ["name"] = g.Key, ["detail"] = g.Value.Detail }).ToArray()),
            ["models"] = new JsonArray(c.Models.OrderBy(k => k.Key).Select(kv => (JsonNode)Entry(kv.Key, kv.Value.Plugin.Description, kv.Value.Origin)).ToArray()),
            ["probes"] = new JsonArray(c.Probes.OrderBy(k => k.Key).Select(kv => (JsonNode)Entry(kv.Key, kv.Value.Plugin.Description, kv.Value.Origin)).ToArray()),
            ["errors"] = new JsonArray(c.Errors.Select(e => (JsonNode)new JsonObject { ["file"] = e.File, ["reason"] = e.Reason }).ToArray()),
        };
    }
}
