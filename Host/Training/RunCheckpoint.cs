using System.Text.Json;
using Harness.Abstractions;
using Harness.Host.Output;
using Parquet;
using Parquet.Schema;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Host.Training;

/// <summary>
/// &lt;run&gt;/checkpoint/: the state of a run before step <see cref="Step"/> (training.checkpoint_every), so an
/// interrupted run resumes exactly instead of starting over. Parameters, the initial parameters θ0 and the
/// previous update are stored as their exact bytes (params.bin, initial.bin, previous.bin); the optimizer's
/// <see cref="OptimizerState"/> as JSON (float64 values round-trip exactly); state.json holds the step and the
/// initial loss; scheduler.json the probe scheduler's state (so probes fire at the steps of an uninterrupted run); probes.bin
/// the states of the probes that implement <see cref="ICheckpointedProbe"/> (warm-start vectors, so they measure what
/// an uninterrupted run measures);
/// checksums.json the SHA-256 of every other file. Written into checkpoint.tmp/ and renamed, so a crash leaves the
/// previous checkpoint intact; a checkpoint whose files do not match their checksums (truncated, overwritten) is
/// discarded with the reason and the run starts over. The trace is flushed before, so the trace always holds every
/// row of the steps before the checkpoint.
/// </summary>
public sealed class RunCheckpoint
{
    public const string Folder = "checkpoint";
    public long Step { get; init; }
    public double? InitialLoss { get; init; }
    /// <summary>The probe scheduler's state at <see cref="Step"/> (null in checkpoints of older versions).</summary>
    public ProbeSchedulerState? Scheduler { get; init; }

    private sealed record StateDto(long Step, double? InitialLoss, bool HasPrevious);
    private const string Checksums = "checksums.json";

    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public static void Save(string runDir, long step, IModel model, IOptimizer optimizer, IReadOnlyList<Tensor> initial,
        IReadOnlyList<Tensor>? previousUpdate, double? initialLoss, IReadOnlyList<Tensor>? updateBeforePrevious = null,
        ProbeSchedulerState? scheduler = null, IReadOnlyList<ProbeState?>? probeStates = null)
    {
        string final = Path.Combine(runDir, Folder), tmp = final + ".tmp", old = final + ".old";
        try
        {
            if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
            Directory.CreateDirectory(tmp);
            WriteTensors(Path.Combine(tmp, "params.bin"), model.Parameters.Select(p => p.Tensor).ToList());
            WriteTensors(Path.Combine(tmp, "initial.bin"), initial);
            if (previousUpdate is not null) WriteTensors(Path.Combine(tmp, "previous.bin"), previousUpdate);
            if (updateBeforePrevious is not null) WriteTensors(Path.Combine(tmp, "before_previous.bin"), updateBeforePrevious);
            File.WriteAllText(Path.Combine(tmp, "optimizer.json"), JsonSerializer.Serialize(optimizer.ExportState(), Json));
            if (scheduler is not null) File.WriteAllText(Path.Combine(tmp, "scheduler.json"), JsonSerializer.Serialize(scheduler, Json));
            if (probeStates is not null) WriteProbeStates(Path.Combine(tmp, ProbesFile), probeStates);
            File.WriteAllText(Path.Combine(tmp, "state.json"), JsonSerializer.Serialize(new StateDto(step, initialLoss, previousUpdate is not null), Json));
            var sums = Directory.GetFiles(tmp).Order(StringComparer.Ordinal)
                .ToDictionary(Path.GetFileName, f => Sha256(f), StringComparer.Ordinal);
            using (var f = new FileStream(Path.Combine(tmp, Checksums), FileMode.Create, FileAccess.Write))
            {
                JsonSerializer.Serialize(f, sums, Json);
                f.Flush(flushToDisk: true);
            }
            if (Directory.Exists(old)) Directory.Delete(old, true);
            if (Directory.Exists(final)) Directory.Move(final, old);
            Directory.Move(tmp, final);
            if (Directory.Exists(old)) Directory.Delete(old, true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Disk full or the like: leave no checkpoint.tmp behind (a previous checkpoint, if any, stays).
            try { if (Directory.Exists(tmp)) Directory.Delete(tmp, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            if (!Directory.Exists(final) && Directory.Exists(old)) try { Directory.Move(old, final); } catch (IOException) { }
            throw new IOException($"checkpoint at step {step} not written to {final}: {e.Message}", e);
        }
    }

    public static RunCheckpoint? TryLoad(string runDir) => TryLoad(runDir, out _);

    /// <summary>The checkpoint of <paramref name="runDir"/>, or null. A checkpoint that cannot be used (a file missing,
    /// truncated or changed: its checksum differs; unreadable JSON) is deleted and <paramref name="discarded"/> says why.</summary>
    public static RunCheckpoint? TryLoad(string runDir, out string? discarded)
    {
        discarded = null;
        string dir = Path.Combine(runDir, Folder);
        var state = Path.Combine(dir, "state.json");
        if (!File.Exists(state))
        {
            if (Directory.Exists(dir)) discarded = $"{dir} has no state.json";
        }
        else
        {
            try
            {
                discarded = Verify(dir);
                if (discarded is null)
                {
                    var dto = JsonSerializer.Deserialize<StateDto>(File.ReadAllText(state), Json);
                    var schedulerFile = Path.Combine(dir, "scheduler.json");
                    var scheduler = File.Exists(schedulerFile) ? JsonSerializer.Deserialize<ProbeSchedulerState>(File.ReadAllText(schedulerFile), Json) : null;
                    if (dto is not null) return new RunCheckpoint { Step = dto.Step, InitialLoss = dto.InitialLoss, Scheduler = scheduler };
                    discarded = $"{state} is empty";
                }
            }
            catch (Exception e) when (e is IOException or JsonException or UnauthorizedAccessException)
            {
                discarded = $"{dir} unreadable: {e.Message}";
            }
        }
        if (discarded is not null) try { Delete(runDir); } catch (IOException) { }
        return null;
    }

    /// <summary>Null when every file listed in checksums.json has its checksum; else the first problem. A checkpoint
    /// of a version without checksums.json is accepted as it is.</summary>
    private static string? Verify(string dir)
    {
        var file = Path.Combine(dir, Checksums);
        if (!File.Exists(file)) return null;
        var sums = JsonSerializer.Deserialize<Dictionary<string, string>>(File.ReadAllText(file), Json) ?? [];
        foreach (var (name, sha) in sums.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            var path = Path.Combine(dir, Path.GetFileName(name));
            if (!File.Exists(path)) return $"{path} is missing";
            if (Sha256(path) != sha) return $"{path} does not match its checksum (truncated or changed)";
        }
        return null;
    }

    private static string Sha256(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(stream));
    }

    public static void Delete(string runDir)
    {
        var dir = Path.Combine(runDir, Folder);
        if (Directory.Exists(dir)) Directory.Delete(dir, true);
    }

    /// <summary>Copies the checkpoint's tensors into the model, θ0 and the optimizer; returns the previous update and
    /// (through <paramref name="beforePrevious"/>) the update before it, when the checkpoint holds them.</summary>
    public List<Tensor>? Restore(string runDir, IModel model, IOptimizer optimizer, IReadOnlyList<Tensor> initial, out List<Tensor>? beforePrevious)
    {
        string dir = Path.Combine(runDir, Folder);
        ReadTensors(Path.Combine(dir, "params.bin"), model.Parameters.Select(p => p.Tensor).ToList());
        ReadTensors(Path.Combine(dir, "initial.bin"), initial);
        optimizer.ImportState(JsonSerializer.Deserialize<OptimizerState>(File.ReadAllText(Path.Combine(dir, "optimizer.json")), Json)!);
        beforePrevious = Updates(Path.Combine(dir, "before_previous.bin"), model);
        return Updates(Path.Combine(dir, "previous.bin"), model);
    }

    /// <summary>The probes' states (one per probe of the run, in the matrix's order; null for a probe that saved none),
    /// or null when the checkpoint has none. The tensors are on the CPU and belong to the caller.</summary>
    public List<ProbeState?>? ProbeStates(string runDir)
    {
        var path = Path.Combine(runDir, Folder, ProbesFile);
        if (!File.Exists(path)) return null;
        using var f = File.OpenRead(path);
        using var r = new BinaryReader(f);
        int probes = r.ReadInt32();
        if (probes is < 0 or > 10_000) throw new InvalidDataException($"{path}: {probes} probe states");
        var result = new List<ProbeState?>();
        for (int i = 0; i < probes; i++)
        {
            if (!r.ReadBoolean()) { result.Add(null); continue; }
            var state = new ProbeState();
            int tensors = r.ReadInt32();
            for (int k = 0; k < tensors; k++)
            {
                string name = r.ReadString();
                var dtype = (ScalarType)r.ReadInt32();
                int ndim = r.ReadInt32();
                if (ndim is < 0 or > 8) throw new InvalidDataException($"{path}: tensor {name} has {ndim} dimensions");
                var shape = new long[ndim];
                for (int d = 0; d < ndim; d++) shape[d] = r.ReadInt64();
                int length = r.ReadInt32();
                if (length < 0 || length > f.Length - f.Position) throw new InvalidDataException($"{path}: tensor {name} claims {length} bytes");
                var t = empty(shape, dtype: dtype).DetachFromDisposeScope();
                if (t.bytes.Length != length) { t.Dispose(); throw new InvalidDataException($"{path}: tensor {name} has {length} bytes, its shape needs another size"); }
                t.bytes = r.ReadBytes(length);
                state.Tensors[name] = t;
            }
            int values = r.ReadInt32();
            for (int k = 0; k < values; k++) state.Values[r.ReadString()] = r.ReadDouble();
            result.Add(state);
        }
        return result;
    }

    private const string ProbesFile = "probes.bin";

    private static void WriteProbeStates(string path, IReadOnlyList<ProbeState?> states)
    {
        using var f = File.Create(path);
        using var w = new BinaryWriter(f);
        w.Write(states.Count);
        foreach (var state in states)
        {
            w.Write(state is not null);
            if (state is null) continue;
            w.Write(state.Tensors.Count);
            foreach (var (name, t) in state.Tensors.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            {
                w.Write(name);
                w.Write((int)t.dtype);
                w.Write(t.shape.Length);
                foreach (var d in t.shape) w.Write(d);
                var bytes = t.detach().cpu().contiguous().bytes.ToArray();
                w.Write(bytes.Length);
                w.Write(bytes);
            }
            w.Write(state.Values.Count);
            foreach (var (name, v) in state.Values.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            {
                w.Write(name);
                w.Write(v);
            }
        }
    }

    private static List<Tensor>? Updates(string path, IModel model)
    {
        if (!File.Exists(path)) return null;
        var u = model.Parameters.Select(p => zeros_like(p.Tensor).DetachFromDisposeScope()).ToList();
        ReadTensors(path, u);
        return u;
    }

    private static void WriteTensors(string path, IReadOnlyList<Tensor> tensors)
    {
        using var f = File.Create(path);
        using var w = new BinaryWriter(f);
        w.Write(tensors.Count);
        foreach (var t in tensors)
        {
            var bytes = t.detach().cpu().contiguous().bytes.ToArray();
            w.Write(bytes.Length);
            w.Write(bytes);
        }
    }

    private static void ReadTensors(string path, IReadOnlyList<Tensor> into)
    {
        using var f = File.OpenRead(path);
        using var r = new BinaryReader(f);
        int n = r.ReadInt32();
        if (n != into.Count) throw new InvalidDataException($"{path}: {n} tensors, the model has {into.Count}");
        using var _ = no_grad();
        for (int i = 0; i < n; i++)
        {
            var bytes = r.ReadBytes(r.ReadInt32());
            using var cpu = into[i].detach().cpu().contiguous().clone();
            if (bytes.Length != cpu.bytes.Length) throw new InvalidDataException($"{path}: tensor {i} has {bytes.Length} bytes, expected {cpu.bytes.Length}");
            cpu.bytes = bytes;
            into[i].copy_(cpu);
        }
    }

    /// <summary>Writes the rows of <paramref name="previousTrace"/> with step &lt; <paramref name="before"/> into
    /// <paramref name="trace"/>; returns how many, or -1 when the file lacks some of them (then resume from scratch).</summary>
    /// <exception cref="InvalidDataException">the file is not a readable Parquet trace (the message names it)</exception>
    public static long CopyRows(string previousTrace, TraceWriter trace, long before, RunManifest manifest)
    {
        SortedDictionary<long, double?[]>? rows;
        try
        {
            using var stream = File.OpenRead(previousTrace);
            var reader = ParquetReader.CreateAsync(stream).GetAwaiter().GetResult();
            try { rows = ReadRows(reader, trace.Columns, before); }
            finally { reader.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new InvalidDataException($"{previousTrace}: not a readable Parquet trace ({e.GetType().Name}: {e.Message})", e);
        }
        if (rows is null) return -1;
        foreach (var (step, values) in rows)
        {
            trace.Append(step, values);
            for (int c = 0; c < values.Length; c++)
                if (values[c] is { } v && double.IsFinite(v)) manifest.Final[trace.Columns[c]] = v;
        }
        trace.Flush();
        return rows.Count;
    }

    /// <summary>The rows with step &lt; <paramref name="before"/>, or null when the file lacks a column or some of them.</summary>
    private static SortedDictionary<long, double?[]>? ReadRows(ParquetReader reader, IReadOnlyList<string> columns, long before)
    {
        var fields = reader.Schema.GetDataFields();
        var stepField = fields.First(f => f.Name == "step");
        var index = columns.Select(c => Array.FindIndex(fields, f => f.Name == c)).ToArray();
        if (index.Any(i => i < 0)) return null;
        var rows = new SortedDictionary<long, double?[]>();
        for (int g = 0; g < reader.RowGroupCount; g++)
        {
            using var rg = reader.OpenRowGroupReader(g);
            int count = (int)rg.RowCount;
            var steps = new long[count];
            rg.ReadAsync<long>(stepField, steps.AsMemory()).GetAwaiter().GetResult();
            var values = new double?[index.Length][];
            for (int c = 0; c < index.Length; c++)
                values[c] = TraceSchema.ReadAsDoubles(rg, reader.Schema, columns[c]) ?? new double?[count];
            for (int r = 0; r < count; r++)
                if (steps[r] < before) rows[steps[r]] = values.Select(col => col[r]).ToArray();
        }
        if (rows.Count != before || (rows.Count > 0 && rows.Keys.Last() != before - 1)) return null;
        return rows;
    }
}
