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
/// initial loss. Written into checkpoint.tmp/ and renamed, so a crash leaves the previous checkpoint intact.
/// The trace is flushed before, so the trace file always holds every row of the steps before the checkpoint.
/// </summary>
public sealed class RunCheckpoint
{
    public const string Folder = "checkpoint";
    public long Step { get; init; }
    public double? InitialLoss { get; init; }

    private sealed record StateDto(long Step, double? InitialLoss, bool HasPrevious);

    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public static void Save(string runDir, long step, IModel model, IOptimizer optimizer, IReadOnlyList<Tensor> initial,
        IReadOnlyList<Tensor>? previousUpdate, double? initialLoss)
    {
        string final = Path.Combine(runDir, Folder), tmp = final + ".tmp", old = final + ".old";
        if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
        Directory.CreateDirectory(tmp);
        WriteTensors(Path.Combine(tmp, "params.bin"), model.Parameters.Select(p => p.Tensor).ToList());
        WriteTensors(Path.Combine(tmp, "initial.bin"), initial);
        if (previousUpdate is not null) WriteTensors(Path.Combine(tmp, "previous.bin"), previousUpdate);
        File.WriteAllText(Path.Combine(tmp, "optimizer.json"), JsonSerializer.Serialize(optimizer.ExportState(), Json));
        File.WriteAllText(Path.Combine(tmp, "state.json"), JsonSerializer.Serialize(new StateDto(step, initialLoss, previousUpdate is not null), Json));
        if (Directory.Exists(old)) Directory.Delete(old, true);
        if (Directory.Exists(final)) Directory.Move(final, old);
        Directory.Move(tmp, final);
        if (Directory.Exists(old)) Directory.Delete(old, true);
    }

    public static RunCheckpoint? TryLoad(string runDir)
    {
        var state = Path.Combine(runDir, Folder, "state.json");
        if (!File.Exists(state)) return null;
        try
        {
            var dto = JsonSerializer.Deserialize<StateDto>(File.ReadAllText(state), Json);
            return dto is null ? null : new RunCheckpoint { Step = dto.Step, InitialLoss = dto.InitialLoss };
        }
        catch (Exception e) when (e is IOException or JsonException) { return null; }
    }

    public static void Delete(string runDir)
    {
        var dir = Path.Combine(runDir, Folder);
        if (Directory.Exists(dir)) Directory.Delete(dir, true);
    }

    /// <summary>Copies the checkpoint's tensors into the model, θ0 and the optimizer; returns the previous update.</summary>
    public List<Tensor>? Restore(string runDir, IModel model, IOptimizer optimizer, IReadOnlyList<Tensor> initial)
    {
        string dir = Path.Combine(runDir, Folder);
        ReadTensors(Path.Combine(dir, "params.bin"), model.Parameters.Select(p => p.Tensor).ToList());
        ReadTensors(Path.Combine(dir, "initial.bin"), initial);
        optimizer.ImportState(JsonSerializer.Deserialize<OptimizerState>(File.ReadAllText(Path.Combine(dir, "optimizer.json")), Json)!);
        var prevPath = Path.Combine(dir, "previous.bin");
        if (!File.Exists(prevPath)) return null;
        var previous = model.Parameters.Select(p => zeros_like(p.Tensor).DetachFromDisposeScope()).ToList();
        ReadTensors(prevPath, previous);
        return previous;
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
    public static long CopyRows(string previousTrace, TraceWriter trace, long before, RunManifest manifest)
    {
        using var stream = File.OpenRead(previousTrace);
        var reader = ParquetReader.CreateAsync(stream).GetAwaiter().GetResult();
        try { return CopyRows(reader, trace, before, manifest); }
        finally { reader.DisposeAsync().AsTask().GetAwaiter().GetResult(); }
    }

    private static long CopyRows(ParquetReader reader, TraceWriter trace, long before, RunManifest manifest)
    {
        var fields = reader.Schema.GetDataFields();
        var stepField = fields.First(f => f.Name == "step");
        var index = trace.Columns.Select(c => Array.FindIndex(fields, f => f.Name == c)).ToArray();
        if (index.Any(i => i < 0)) return -1;
        var rows = new SortedDictionary<long, double?[]>();
        for (int g = 0; g < reader.RowGroupCount; g++)
        {
            using var rg = reader.OpenRowGroupReader(g);
            int count = (int)rg.RowCount;
            var steps = new long[count];
            rg.ReadAsync<long>(stepField, steps.AsMemory()).GetAwaiter().GetResult();
            var columns = new double?[index.Length][];
            for (int c = 0; c < index.Length; c++)
                columns[c] = TraceSchema.ReadAsDoubles(rg, reader.Schema, trace.Columns[c]) ?? new double?[count];
            for (int r = 0; r < count; r++)
                if (steps[r] < before) rows[steps[r]] = columns.Select(col => col[r]).ToArray();
        }
        if (rows.Count != before || (rows.Count > 0 && rows.Keys.Last() != before - 1)) return -1;
        foreach (var (step, values) in rows)
        {
            trace.Append(step, values);
            for (int c = 0; c < values.Length; c++)
                if (values[c] is { } v && double.IsFinite(v)) manifest.Final[trace.Columns[c]] = v;
        }
        trace.Flush();
        return rows.Count;
    }
}
