using System.Text.Json;
using System.Text.Json.Nodes;
using Harness.Host.Matrix;
using Harness.Host.Output;
using Harness.Host.Training;

namespace Harness.Host.Workers;

/// <summary>
/// The lines a worker process writes on stdout: <c>@harness {json}</c>, one event per line (anything else on stdout,
/// e.g. a plugin's Console.WriteLine, is ignored). Events: <c>started</c> {run, steps}, <c>step</c> {a
/// <see cref="StepReport"/>}, <c>ended</c> {run, status, reason}. Keys are snake_case.
/// </summary>
public static class WorkerProtocol
{
    public const string Prefix = "@harness ";

    public static string Started(RunCell cell, long steps) =>
        Prefix + new JsonObject { ["e"] = "started", ["run"] = cell.RunId, ["steps"] = steps }.ToJsonString();

    public static string Step(StepReport r) => Prefix + new JsonObject
    {
        ["e"] = "step", ["step"] = r.Step, ["steps"] = r.Steps, ["loss"] = Num(r.Loss), ["grad_norm"] = Num(r.GradNorm),
        ["lr"] = Num(r.LearningRate), ["threshold"] = Num(r.Threshold), ["step_seconds"] = r.StepSeconds is { } s ? Num(s) : null,
        ["probes"] = Dict(r.Probes), ["probe_seconds"] = Dict(r.ProbeSeconds),
    }.ToJsonString();

    public static string Ended(RunManifest m) => Ended(m.RunId, m.Status.ToString().ToLowerInvariant(), m.Reason);

    public static string Ended(string runId, string status, string? reason) => Prefix + new JsonObject
    {
        ["e"] = "ended", ["run"] = runId, ["status"] = status, ["reason"] = reason,
    }.ToJsonString();

    /// <summary>Non-finite values travel as strings ("NaN", "Infinity"): JSON has no literal for them.</summary>
    private static JsonNode Num(double v) => double.IsFinite(v) ? JsonValue.Create(v) : JsonValue.Create(v.ToString(System.Globalization.CultureInfo.InvariantCulture));

    private static JsonObject Dict(IReadOnlyDictionary<string, double> d)
    {
        var o = new JsonObject();
        foreach (var (k, v) in d) o[k] = Num(v);
        return o;
    }

    private static double ReadNum(JsonNode? n) => n switch
    {
        null => double.NaN,
        JsonValue v when v.TryGetValue<double>(out var d) => d,
        JsonValue v when v.TryGetValue<string>(out var s) => double.Parse(s, System.Globalization.CultureInfo.InvariantCulture),
        _ => double.NaN,
    };

    private static Dictionary<string, double> ReadDict(JsonNode? n) =>
        n is JsonObject o ? o.ToDictionary(kv => kv.Key, kv => ReadNum(kv.Value)) : new();

    /// <summary>Parses one stdout line and forwards it to <paramref name="sink"/>; false for a line that is not an event.</summary>
    public static bool Dispatch(string line, RunCell cell, IRunProgress sink)
    {
        if (!line.StartsWith(Prefix, StringComparison.Ordinal)) return false;
        JsonObject o;
        try { o = JsonNode.Parse(line.AsSpan(Prefix.Length).ToString()) as JsonObject ?? throw new JsonException(); }
        catch (JsonException) { return false; }
        switch ((string?)o["e"])
        {
            case "started":
                sink.RunStarted(cell, (long)o["steps"]!);
                return true;
            case "step":
                var r = new StepReport((long)o["step"]!, (long)o["steps"]!, ReadNum(o["loss"]), ReadNum(o["grad_norm"]),
                    ReadNum(o["lr"]), ReadNum(o["threshold"]), o["step_seconds"] is null ? null : ReadNum(o["step_seconds"]),
                    ReadDict(o["probes"]), ReadDict(o["probe_seconds"]));
                sink.RunStep(cell, r.Step, r.Loss, r.Probes);
                sink.RunStepReport(cell, r);
                return true;
            default:
                return true; // "ended": the supervisor reads the manifest after the process exits
        }
    }
}

/// <summary>Worker side: writes progress events to stdout. Step events are buffered and flushed every
/// <see cref="FlushInterval"/> (one write for many fast steps instead of one per step); start and end events are
/// flushed at once.</summary>
public sealed class JsonLinesProgress : IRunProgress, IDisposable
{
    public static readonly TimeSpan FlushInterval = TimeSpan.FromMilliseconds(100);
    private readonly object _lock = new();
    private readonly TextWriter _output;
    private readonly Timer? _timer;

    /// <param name="output">the event stream; when null, this process's stdout (not Console.Out, which flushes
    /// every line)</param>
    public JsonLinesProgress(TextWriter? output = null)
    {
        _output = output ?? new StreamWriter(Console.OpenStandardOutput(), new System.Text.UTF8Encoding(false)) { AutoFlush = false };
        _timer = new Timer(_ => Flush(), null, FlushInterval, FlushInterval);
    }

    private void Write(string line, bool flush)
    {
        lock (_lock)
        {
            _output.WriteLine(line);
            if (flush) _output.Flush();
        }
    }

    public void Flush()
    {
        lock (_lock) _output.Flush();
    }

    public void RunStarted(RunCell cell, long steps) => Write(WorkerProtocol.Started(cell, steps), flush: true);
    /// <summary>Called once, after the first step's event is written (and flushed, so the supervisor sees the run
    /// progress at once).</summary>
    public Action? FirstStep { get; init; }
    private bool _stepped;

    public void RunStepReport(RunCell cell, StepReport report)
    {
        bool first = !_stepped;
        _stepped = true;
        Write(WorkerProtocol.Step(report), flush: first);
        if (first) FirstStep?.Invoke();
    }
    /// <summary>Called just before the <c>ended</c> event is written: the run is complete on disk.</summary>
    public Action? Ended { get; init; }

    public void RunEnded(RunCell cell, RunManifest manifest)
    {
        Ended?.Invoke();
        Write(WorkerProtocol.Ended(manifest), flush: true);
    }

    /// <summary>The end of a requested run that could not start (its manifest is not written).</summary>
    public void RunRefused(string runId, string reason)
    {
        Ended?.Invoke();
        Write(WorkerProtocol.Ended(runId, "failed", reason), flush: true);
    }

    public void Dispose()
    {
        _timer?.Dispose();
        Flush();
    }
}

/// <summary>Forwards every event to several sinks.</summary>
public sealed class CompositeProgress(params IRunProgress[] sinks) : IRunProgress
{
    public void RunStarted(RunCell cell, long steps) { foreach (var s in sinks) s.RunStarted(cell, steps); }
    public void RunStep(RunCell cell, long step, double loss, IReadOnlyDictionary<string, double> probes) { foreach (var s in sinks) s.RunStep(cell, step, loss, probes); }
    public void RunStepReport(RunCell cell, StepReport report) { foreach (var s in sinks) s.RunStepReport(cell, report); }
    public void RunEnded(RunCell cell, RunManifest manifest) { foreach (var s in sinks) s.RunEnded(cell, manifest); }
    public void RunSkipped(RunCell cell, RunManifest manifest) { foreach (var s in sinks) s.RunSkipped(cell, manifest); }
}
