using System.CommandLine;
using System.Globalization;
using System.Reflection;
using Harness.Host.Matrix;
using Harness.Host.Output;
using Harness.Host.Plugins;
using Harness.Host.Telemetry;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using Spectre.Console;

namespace Harness.Host.Cli;

/// <summary>The command line: run, demo, serve, validate, plugins, summary, report, reproduce, bench, verify.</summary>
public static class HarnessCli
{
    private static readonly Option<string?> Plugins = new("--plugins") { Description = "plugin folder (default: plugins/ next to the host)" };
    private static readonly Option<string?> Results = new("--results") { Description = "results root (default: ./results)" };
    private static readonly Option<string?> MetricsUrl = new("--metrics-url") { Description = "address serving /metrics, e.g. http://127.0.0.1:9464; port 0 = any free port; 'none' = off (run only)" };
    private static readonly Option<int?> Threads = new("--threads") { Description = "libtorch threads per run (default: the cores not busy at start, cores − load average, at least 1)" };
    private static readonly Option<bool> NoProgress = new("--no-progress") { Description = "log lines instead of live progress bars" };
    private static readonly Option<int?> WorkersOption = new("--workers") { Description = "runs executed at once, each in a worker process (default 1)" };
    private static readonly Option<string?> ApiToken = new("--api-token") { Description = "bearer token for the API (or HARNESS_API_TOKEN); required off loopback" };
    private static readonly Option<double?> RunTimeLimit = new("--run-time-limit") { Description = "wall-time limit of one run in seconds (0 = none)" };
    private static readonly Option<long?> RunMemoryLimit = new("--run-memory-limit") { Description = "resident-memory limit of one worker in MiB (0 = none)" };
    private static readonly Option<double?> Grace = new("--grace") { Description = "seconds workers get to flush on SIGTERM/Ctrl-C before they are killed (default 20)" };
    private static readonly Option<bool> InProcess = new("--in-process") { Description = "execute runs in this process instead of worker processes (debugging; a native crash then ends the whole command)" };
    private static readonly Option<long?> MaxBody = new("--max-request-body") { Description = "largest accepted request body in bytes (default 1048576)" };
    private static readonly Option<string[]> DataRoots = new("--data-root") { Description = $"folder a submitted matrix's data_dir may name, besides the working directory (repeatable; default {HarnessOptions.DefaultDataRoot})", AllowMultipleArgumentsPerToken = false };
    private static readonly Option<double?> MetricsRetention = new("--metrics-retention") { Description = "seconds an ended run's series stay in /metrics (default 600)" };
    private static readonly Option<long?> MaxRuns = new("--max-runs") { Description = "most runs one matrix may expand to (default 10000)" };
    private static readonly Option<string?> ShardOption = new("--shard") { Description = "run only shard i of N (i/N, 0-based); default: from Slurm array or Kubernetes indexed-Job variables, else all" };

    public static RootCommand Build()
    {
        var root = new RootCommand("Optimizer benchmarking harness: training matrices, curvature probes, live metrics, Parquet traces.");

        var matrixArg = new Argument<string>("matrix") { Description = "matrix file (YAML or JSON)" };
        var run = new Command("run", "Run a matrix file to completion (finished runs are skipped) and exit.") { matrixArg, Plugins, Results, MetricsUrl, Threads, NoProgress, ShardOption, InProcess, MaxRuns };
        run.SetAction((p, ct) => RunMatrix(p, p.GetValue(matrixArg)!, ct));
        root.Subcommands.Add(run);

        var demo = new Command("demo", "Run the built-in demo matrix (edge of stability of full-batch GD on Fashion-MNIST).") { Plugins, Results, MetricsUrl, Threads, NoProgress, InProcess };
        demo.SetAction((p, ct) => RunMatrix(p, ExtractDemo(), ct));
        root.Subcommands.Add(demo);

        var inbox = new Option<string?>("--inbox") { Description = "folder watched for matrix files (default: ./inbox)" };
        var serve = new Command("serve", "Run as a service: HTTP API, /metrics, hot plugin folder; matrices from the API or the inbox run in worker processes.")
            { Plugins, Results, MetricsUrl, Threads, inbox, WorkersOption, ApiToken, RunTimeLimit, RunMemoryLimit, Grace, MaxBody, DataRoots, MaxRuns, MetricsRetention };
        serve.SetAction((p, ct) => Serve(p, p.GetValue(inbox), ct));
        root.Subcommands.Add(serve);

        var validateArg = new Argument<string>("matrix") { Description = "matrix file to check" };
        var validate = new Command("validate", "Check a matrix file against the loaded plugins and list its runs, without training.") { validateArg, Plugins, Results, MaxRuns };
        validate.SetAction(p => Validate(p, p.GetValue(validateArg)!));
        root.Subcommands.Add(validate);

        var plugins = new Command("plugins", "List the plugins of the plugin folder with their hyperparameters, and the files that failed to load.") { Plugins };
        plugins.SetAction(ListPlugins);
        root.Subcommands.Add(plugins);

        var dirArg = new Argument<string>("matrix-dir") { Description = "results/<matrix> folder" };
        var summary = new Command("summary", "Rebuild summary.parquet of a matrix folder from every run manifest in it.") { dirArg, Plugins };
        summary.SetAction(p =>
        {
            var dir = p.GetValue(dirArg)!;
            if (!Directory.Exists(dir)) { Console.Error.WriteLine($"error: folder '{dir}' does not exist"); return 2; }
            // The plugins give the hyperparameters' declared types (integer ones become BIGINT columns).
            var catalog = PluginCatalog.Load(p.GetValue(Plugins) ?? Path.Combine(AppContext.BaseDirectory, "plugins"), null);
            var unreadable = new List<string>();
            int n = SummaryWriter.Write(dir, SummaryWriter.KindsFrom(catalog), unreadable);
            Console.WriteLine($"{Path.Combine(dir, "summary.parquet")}: {n} run(s)");
            foreach (var u in unreadable) Console.Error.WriteLine($"warning: {u}; this run is not in the summary");
            return unreadable.Count == 0 ? 0 : 1;
        });
        root.Subcommands.Add(summary);
        root.Subcommands.Add(Reports.ReportCommand.Create(Plugins));
        root.Subcommands.Add(ReproduceCommand.Create(Plugins, Results, Threads, InProcess));
        root.Subcommands.Add(BenchCommand.Create(Plugins));
        root.Subcommands.Add(VerifyCommand.Create());
        root.Subcommands.Add(Workers.WorkerCommand.Create());
        return root;
    }

    internal static HarnessOptions Options(ParseResult p, string? inbox = null)
    {
        var config = new ConfigurationBuilder()
            .AddJsonFile(Path.Combine(AppContext.BaseDirectory, "appsettings.json"), optional: true)
            .AddEnvironmentVariables("HARNESS_")
            .Build();
        var o = new HarnessOptions();
        config.GetSection(HarnessOptions.Section).Bind(o);
        if (p.GetValue(Plugins) is { } pl) o.PluginDirectory = pl;
        if (p.GetValue(Results) is { } r) o.ResultsDirectory = r;
        if (p.GetValue(MetricsUrl) is { } m) o.MetricsUrl = m;
        if (p.GetValue(Threads) is { } t) o.Threads = t;
        if (inbox is not null) o.InboxDirectory = inbox;
        if (Environment.GetEnvironmentVariable("HARNESS_API_TOKEN") is { Length: > 0 } envToken) o.ApiToken = envToken;
        if (p.GetValue(ApiToken) is { } tok) o.ApiToken = tok;
        if (p.GetValue(WorkersOption) is { } w) o.Workers = w;
        if (p.GetValue(RunTimeLimit) is { } rt) o.RunTimeLimitSeconds = rt;
        if (p.GetValue(RunMemoryLimit) is { } rm) o.RunMemoryLimitMb = rm;
        if (p.GetValue(Grace) is { } g) o.ShutdownGraceSeconds = g;
        if (p.GetValue(MaxBody) is { } mb) o.MaxRequestBodyBytes = mb;
        if (p.GetValue(DataRoots) is { Length: > 0 } dr) o.DataRoots = dr;
        if (p.GetValue(MaxRuns) is { } mr) o.MaxRunsPerMatrix = mr;
        if (p.GetValue(MetricsRetention) is { } ret) o.MetricsRetentionSeconds = ret;
        var check = new HarnessOptionsValidator().Validate(null, o);
        if (check.Failed) throw new OptionsValidationException(HarnessOptions.Section, typeof(HarnessOptions), check.Failures);
        return o;
    }

    private static ILoggerFactory Logging() => LoggerFactory.Create(b => b
        .AddSimpleConsole(c => { c.SingleLine = true; c.TimestampFormat = "HH:mm:ss "; })
        .AddFilter("Microsoft", LogLevel.Warning)
        .AddFilter("System", LogLevel.Warning)
        .SetMinimumLevel(LogLevel.Information)
        .Services.Configure<Microsoft.Extensions.Logging.Console.ConsoleLoggerOptions>(c => c.LogToStandardErrorThreshold = LogLevel.Trace));

    /// <summary>The ASP.NET Core host: plugins, metrics (OpenTelemetry → Prometheus at /metrics), the matrix runner,
    /// and for <c>serve</c> the inbox service and /healthz.</summary>
    public static WebApplication BuildWebHost(HarnessOptions o, bool serve)
    {
        TorchSharp.torch.set_num_threads(o.Threads > 0 ? o.Threads : Workers.WorkerPool.AutoThreads());
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(c => { c.SingleLine = true; c.TimestampFormat = "HH:mm:ss "; });
        builder.Logging.Services.Configure<Microsoft.Extensions.Logging.Console.ConsoleLoggerOptions>(c => c.LogToStandardErrorThreshold = LogLevel.Trace);
        builder.Logging.AddFilter("Microsoft", LogLevel.Warning);
        // Unhandled request exceptions are logged once, with the trace id the client sees (ServiceApi.DescribeProblem).
        builder.Logging.AddFilter("Microsoft.AspNetCore.Diagnostics", LogLevel.None);
        // While `run` shows live progress bars, log lines go through Spectre.Console above them, not around them.
        // (A provider-specific rule replaces the general ones for that provider, so it repeats them: Information, Microsoft.* Warning.)
        builder.Logging.AddFilter<Microsoft.Extensions.Logging.Console.ConsoleLoggerProvider>((category, level) => !LiveConsoleLoggerProvider.Active
            && level >= (category?.StartsWith("Microsoft", StringComparison.Ordinal) == true ? LogLevel.Warning : LogLevel.Information));
        builder.Logging.AddProvider(new LiveConsoleLoggerProvider());
        builder.Services.AddSingleton(Microsoft.Extensions.Options.Options.Create(o));
        builder.Services.AddSingleton<IValidateOptions<HarnessOptions>, HarnessOptionsValidator>();
        if (serve)
        {
            // The service: hot plugin folder, one queue for API and inbox, runs in supervised worker processes.
            builder.Services.AddSingleton<Service.IOptimizerGate, Service.CatalogConformanceGate>();
            builder.Services.AddSingleton<Service.PluginRegistry>();
            builder.Services.AddHostedService(sp => sp.GetRequiredService<Service.PluginRegistry>());
            builder.Services.AddSingleton(sp => sp.GetRequiredService<Service.PluginRegistry>().Catalog);
            builder.Services.AddSingleton<Workers.WorkerPool>();
            builder.Services.AddSingleton<Service.MatrixService>();
            builder.Services.AddHostedService(sp => sp.GetRequiredService<Service.MatrixService>());
            builder.Services.Configure<HostOptions>(h => h.ShutdownTimeout = TimeSpan.FromSeconds(o.ShutdownGraceSeconds + 10));
            builder.WebHost.ConfigureKestrel(k => k.Limits.MaxRequestBodySize = o.MaxRequestBodyBytes);
            builder.Services.AddProblemDetails(pd => pd.CustomizeProblemDetails = Service.ServiceApi.DescribeProblem);
        }
        else
            builder.Services.AddSingleton(sp => PluginCatalog.Load(o.PluginDirectory, sp.GetRequiredService<ILoggerFactory>().CreateLogger("plugins")));
        builder.Services.AddSingleton(_ => new HarnessMetrics(TimeSpan.FromSeconds(o.MetricsRetentionSeconds)));
        if (!serve) builder.Services.AddSingleton<Workers.WorkerPool>();
        builder.Services.AddSingleton<MatrixRunner>();
        builder.Services.AddOpenTelemetry().ConfigureResource(r => r.AddService("harness")).WithMetrics(m => m
            .AddMeter(HarnessMetrics.MeterName)
            .AddPrometheusExporter());
        if (serve) builder.Services.AddHostedService<InboxService>();
        // Exactly the one endpoint of --metrics-url, parsed once (Service.BindAddress): no URL strings, no endpoints
        // from configuration (Kestrel:Endpoints, ASPNETCORE_URLS) beside it.
        var bind = o.MetricsUrl == "none" ? new Service.BindAddress(System.Net.IPAddress.Loopback, 0) : Service.BindAddress.Parse(o.MetricsUrl);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Configure(new ConfigurationBuilder().Build(), reloadOnChange: false);
            k.Listen(bind.Address, bind.Port);
        });
        var app = builder.Build();
        app.Services.GetRequiredService<HarnessMetrics>().CollectRetired = () => app.Services.GetService<MeterProvider>()?.ForceFlush();
        app.UseOpenTelemetryPrometheusScrapingEndpoint();
        app.MapGet("/healthz", () => Microsoft.AspNetCore.Http.Results.Text("ok"));
        if (serve) Service.ServiceApi.Map(app, o);
        return app;
    }

    /// <summary>SIGINT/SIGTERM cancel the token (runs in progress flush their trace and end as "interrupted")
    /// instead of killing the process.</summary>
    internal static (CancellationTokenSource, IDisposable[]) CancelOnSignals(CancellationToken outer)
    {
        var cts = CancellationTokenSource.CreateLinkedTokenSource(outer);
        IDisposable[] regs =
        [
            System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGTERM, c => { c.Cancel = true; cts.Cancel(); }),
            System.Runtime.InteropServices.PosixSignalRegistration.Create(System.Runtime.InteropServices.PosixSignal.SIGINT, c => { c.Cancel = true; cts.Cancel(); }),
        ];
        return (cts, regs);
    }

    private static async Task<int> RunMatrix(ParseResult p, string matrixPath, CancellationToken outer)
    {
        var (cts, signals) = CancelOnSignals(outer);
        using var _ = cts;
        try { return await RunMatrix(p, matrixPath, cts); }
        finally { foreach (var s in signals) s.Dispose(); }
    }

    private static async Task<int> RunMatrix(ParseResult p, string matrixPath, CancellationTokenSource cts)
    {
        var ct = cts.Token;
        HarnessOptions o;
        try { o = Options(p); }
        catch (OptionsValidationException e) { Console.Error.WriteLine("error: " + e.Message); return 2; }
        await using var app = BuildWebHost(o, serve: false);
        var log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("harness");
        var catalog = app.Services.GetRequiredService<PluginCatalog>();
        var runner = app.Services.GetRequiredService<MatrixRunner>();
        MatrixSpec spec;
        try { spec = MatrixParser.ParseFile(matrixPath, catalog, o.TrustedPolicy()); MatrixExpander.Expand(spec); }
        catch (MatrixValidationException e) { Console.Error.WriteLine(e.Message); ReportPluginErrors(catalog); return 2; }
        Shard? shard;
        try { shard = p.GetValue(ShardOption) is { } sh ? Shard.Parse(sh) : Shard.FromEnvironment(); }
        catch (FormatException e) { Console.Error.WriteLine("error: " + e.Message); return 2; }

        bool serving = true;
        try { await app.StartAsync(ct); }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException)
        {
            // The metrics endpoint is a convenience of run: train anyway.
            serving = false;
            log.LogWarning("metrics are not served: cannot listen at {Url} ({Reason}); the runs go on (use --metrics-url with another port, port 0, or none)",
                o.MetricsUrl, OneLine(e.Message));
        }
        if (o.MetricsUrl != "none" && serving)
            log.LogInformation("metrics at {Url}/metrics", BoundAddress(app));

        // Each run in a worker process (a native crash fails only that run), unless --in-process.
        Func<RunCell, string, Training.IRunProgress, CancellationToken, RunManifest>? execute = InProcessExecute(catalog, app, log);
        Workers.WorkerSession? session = null;
        using var endSession = new DisposeLater(() => session?.Dispose());
        if (!p.GetValue(InProcess))
        {
            // One worker serves the runs of the matrix in turn (a crashed one is replaced for the next run).
            session = new Workers.WorkerSession();
            execute = WorkerExecute(app, catalog, matrixPath, session);
        }
        bool interactive = !p.GetValue(NoProgress) && AnsiConsole.Profile.Capabilities.Interactive && !Console.IsOutputRedirected;
        MatrixOutcome outcome;
        if (interactive)
        {
            int count = MatrixExpander.Expand(spec).Count(c => (shard ?? Shard.All).Contains(c));
            outcome = LiveConsoleLoggerProvider.During(() => AnsiConsole.Progress().AutoClear(false).HideCompleted(false)
                .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
                .Start(ctx => runner.Run(spec, new SpectreProgress(ctx, count), ct, shard, execute)));
        }
        else
            outcome = runner.Run(spec, new LogProgress(log), ct, shard, execute);
        SummaryTable.Print(outcome);
        if (!ct.IsCancellationRequested) Reports.ReportCommand.AfterRun(outcome.Directory, spec);
        if (serving) await app.StopAsync(CancellationToken.None);
        if (ct.IsCancellationRequested) { Console.Error.WriteLine("interrupted: unfinished runs are marked 'interrupted' and run again next time"); return 130; }
        return outcome.Runs.Any(r => r.Status is RunStatus.Failed) ? 1 : 0;
    }

    /// <summary>Executes each run in a worker process of <paramref name="session"/> (used by run and reproduce).</summary>
    internal static Func<RunCell, string, Training.IRunProgress, CancellationToken, RunManifest> WorkerExecute(WebApplication app, PluginCatalog catalog,
        string matrixPath, Workers.WorkerSession session)
    {
        var pool = app.Services.GetRequiredService<Workers.WorkerPool>();
        var metricsSink = new Service.MetricsProgress(app.Services.GetRequiredService<HarnessMetrics>(), () => catalog);
        string matrixFile = Path.GetFullPath(matrixPath);
        return (cell, runDir, progress, token) =>
        {
            try
            {
                return pool.RunAsync(new Workers.WorkerRequest(cell, matrixFile, runDir), new Workers.CompositeProgress(progress, metricsSink),
                    token, CancellationToken.None, session).GetAwaiter().GetResult();
            }
            catch (OperationCanceledException)
            {
                var m = RunManifest.TryLoad(Path.Combine(runDir, "manifest.json")) ?? Workers.WorkerPool.NewManifest(cell);
                m.Status = RunStatus.Interrupted;
                m.Reason = "interrupted before it started";
                return m;
            }
        };
    }

    /// <summary>--in-process: a run that throws fails with the exception's message in its manifest; the host and the
    /// rest of the matrix go on (a native crash still ends the process: that is what workers are for).</summary>
    internal static Func<RunCell, string, Training.IRunProgress, CancellationToken, RunManifest> InProcessExecute(PluginCatalog catalog, WebApplication app, ILogger log)
    {
        var executor = new Training.RunExecutor(catalog, app.Services.GetRequiredService<HarnessMetrics>(), log);
        return (cell, runDir, progress, token) =>
        {
            try { return executor.Execute(cell, runDir, progress, token); }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                log.LogError(e, "run {Run} failed in this process", cell.RunId);
                var manifest = Workers.WorkerPool.NewManifest(cell);
                manifest.Status = RunStatus.Failed;
                manifest.Reason = $"{e.GetType().Name}: {OneLine(e.Message)}";
                manifest.FinishedUtc = DateTime.UtcNow;
                try { Directory.CreateDirectory(runDir); manifest.Save(Path.Combine(runDir, "manifest.json")); }
                catch (Exception save) when (save is IOException or UnauthorizedAccessException) { log.LogError("run {Run}: its manifest cannot be written: {Reason}", cell.RunId, save.Message); }
                progress.RunEnded(cell, manifest);
                return manifest;
            }
        };
    }

    /// <summary>Why <paramref name="bind"/> cannot be listened on (in use, not an address of this machine, no
    /// permission), or null when a socket can bind it now.</summary>
    private static string? PortTaken(Service.BindAddress bind)
    {
        try
        {
            using var probe = new System.Net.Sockets.Socket(bind.Address.AddressFamily, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
            probe.Bind(new System.Net.IPEndPoint(bind.Address, bind.Port));
            return null;
        }
        catch (System.Net.Sockets.SocketException e) { return e.SocketErrorCode == System.Net.Sockets.SocketError.AddressAlreadyInUse ? "address already in use" : e.Message; }
    }

    private static string OneLine(string s) => string.Join(" ", s.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));

    private sealed class DisposeLater(Action action) : IDisposable
    {
        public void Dispose() => action();
    }

    public static string BoundAddress(WebApplication app) =>
        app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault() ?? "?";

    private static async Task<int> Serve(ParseResult p, string? inbox, CancellationToken ct)
    {
        HarnessOptions o;
        try { o = Options(p, inbox); }
        catch (OptionsValidationException e) { Console.Error.WriteLine("error: " + e.Message); return 2; }
        if (o.MetricsUrl == "none") { Console.Error.WriteLine("error: serve needs an HTTP address (--metrics-url)"); return 2; }
        var bind = Service.BindAddress.Parse(o.MetricsUrl);
        if (!bind.IsLoopback && string.IsNullOrEmpty(o.ApiToken))
        {
            Console.Error.WriteLine($"error: {bind} is not a loopback address; a service reachable from other machines needs an API token (--api-token or HARNESS_API_TOKEN)");
            return 2;
        }
        // A port in use is reported before anything starts (the queue would otherwise resume matrices first).
        if (bind.Port != 0 && PortTaken(bind) is { } taken) { Console.Error.WriteLine($"error: cannot listen at {bind}: {taken}"); return 2; }
        await using var app = BuildWebHost(o, serve: true);
        _ = app.Services.GetRequiredService<PluginCatalog>();
        try { await app.StartAsync(ct); }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException)
        {
            Console.Error.WriteLine($"error: cannot listen at {bind}: {OneLine(e.Message)}");
            return 2;
        }
        app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("harness")
            .LogInformation("serving: API at {Url}/api, metrics at {Url}/metrics, health at {Url}/healthz, inbox {Inbox}, {Workers} worker(s)",
                BoundAddress(app), BoundAddress(app), BoundAddress(app), Path.GetFullPath(o.InboxDirectory), o.Workers);
        await app.WaitForShutdownAsync(ct);
        return 0;
    }

    private static int Validate(ParseResult p, string matrixPath)
    {
        HarnessOptions o;
        try { o = Options(p); }
        catch (OptionsValidationException e) { Console.Error.WriteLine("error: " + e.Message); return 2; }
        using var lf = Logging();
        var catalog = PluginCatalog.Load(o.PluginDirectory, lf.CreateLogger("plugins"));
        try
        {
            var spec = MatrixParser.ParseFile(matrixPath, catalog, o.TrustedPolicy());
            var cells = MatrixExpander.Expand(spec);
            Console.WriteLine($"{matrixPath}: valid, {cells.Count} run(s) into {Path.Combine(spec.OutputRoot ?? o.ResultsDirectory, spec.Name)}");
            foreach (var c in cells) Console.WriteLine($"  {c.RunId}  {c.Label}");
            return 0;
        }
        catch (MatrixValidationException e) { Console.Error.WriteLine(e.Message); ReportPluginErrors(catalog); return 2; }
    }

    private static void ReportPluginErrors(PluginCatalog catalog)
    {
        foreach (var e in catalog.Errors) Console.Error.WriteLine($"note: plugin {e.File} was not loaded: {e.Reason}");
    }

    private static int ListPlugins(ParseResult p)
    {
        var o = Options(p);
        using var lf = Logging();
        var catalog = PluginCatalog.Load(o.PluginDirectory, null);
        AnsiConsole.MarkupLine($"[bold]plugin folder:[/] {Markup.Escape(catalog.Folder)}");
        var table = new Table().Border(TableBorder.Rounded);
        foreach (var col in new[] { "kind", "name", "hyperparameter", "default", "range", "description", "file" }) table.AddColumn(col);
        void Add(string kind, string name, string desc, IReadOnlyList<Abstractions.HyperparameterSpec> hps, PluginOrigin origin)
        {
            table.AddRow(kind, $"[bold]{Markup.Escape(name)}[/]", "", "", "", Markup.Escape(desc), Markup.Escape(origin.File));
            foreach (var h in hps)
                table.AddRow("", "", Markup.Escape(h.Name), Markup.Escape(RunCell.Format(h.Default)), Markup.Escape(h.RangeText), Markup.Escape(h.Doc), "");
        }
        foreach (var (n, l) in catalog.Optimizers.OrderBy(k => k.Key)) Add("optimizer", n, l.Plugin.Description, l.Plugin.Hyperparameters, l.Origin);
        foreach (var (n, l) in catalog.Models.OrderBy(k => k.Key)) Add("model", n, l.Plugin.Description, l.Plugin.Hyperparameters, l.Origin);
        foreach (var (n, l) in catalog.Probes.OrderBy(k => k.Key)) Add("probe", n, l.Plugin.Description, l.Plugin.Hyperparameters, l.Origin);
        foreach (var (n, l) in catalog.Tuners.OrderBy(k => k.Key)) Add("tuner", n, l.Plugin.Description, l.Plugin.Hyperparameters, l.Origin);
        AnsiConsole.Write(table);
        foreach (var e in catalog.Errors)
            AnsiConsole.MarkupLine($"[red]not loaded:[/] {Markup.Escape(e.File)}: {Markup.Escape(e.Reason)}");
        return catalog.Errors.Count == 0 ? 0 : 1;
    }

    /// <summary>Writes the embedded experiments/demo.yaml to a temp file (the demo works from any folder).</summary>
    private static string ExtractDemo()
    {
        using var s = Assembly.GetExecutingAssembly().GetManifestResourceStream("demo.yaml")
            ?? throw new InvalidOperationException("demo.yaml is not embedded in this build");
        var path = Path.Combine(Path.GetTempPath(), $"harness-demo-{Environment.ProcessId}.yaml");
        using var f = File.Create(path);
        s.CopyTo(f);
        return path;
    }
}
