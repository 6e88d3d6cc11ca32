using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Harness.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace Harness.Host.Training;

/// <summary>
/// A saved optimizer state: <c>&lt;run-dir&gt;/state-&lt;step&gt;.json</c>, written when a step is listed in
/// <c>training.save_state_at</c> (or another cell takes its preconditioner from it). Holds the optimizer's exported
/// state (scalars and float64 buffers per parameter tensor), the preconditioner P it reported through the contract
/// at that step (null for an unpreconditioned method), and the model parameters θ at that step. Doubles are written
/// in round-trip form, so a file read back gives bit-identical values.
/// </summary>
public sealed class OptimizerStateFile
{
    public const string CurrentFormat = "harness-optimizer-state/1";

    public string Format { get; init; } = CurrentFormat;
    public required string Optimizer { get; init; }
    public string? RunId { get; init; }
    /// <summary>Completed optimizer steps when the state was taken.</summary>
    public long Step { get; init; }
    public JsonObject? Hyperparameters { get; init; }
    public required OptimizerState State { get; init; }
    /// <summary>P per parameter tensor (flattened, float64), or null.</summary>
    public double[][]? Preconditioner { get; init; }
    /// <summary>θ per parameter tensor (flattened, float64), or null.</summary>
    public double[][]? Parameters { get; init; }

    public static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>Takes the optimizer's state, P and θ now.</summary>
    public static OptimizerStateFile Capture(string optimizerName, IOptimizer optimizer, IReadOnlyList<Tensor> parameters, long step,
        string? runId = null, JsonObject? hyperparameters = null)
    {
        using var scope = NewDisposeScope();
        return new OptimizerStateFile
        {
            Optimizer = optimizerName, RunId = runId, Step = step, Hyperparameters = hyperparameters,
            State = optimizer.ExportState(),
            Preconditioner = optimizer.Preconditioner?.Select(ToDoubles).ToArray(),
            Parameters = parameters.Select(ToDoubles).ToArray(),
        };
    }

    public static double[] ToDoubles(Tensor t)
    {
        using var d = t.detach().to(ScalarType.Float64).cpu().contiguous();
        return d.data<double>().ToArray();
    }

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    public static OptimizerStateFile FromJson(string json) =>
        JsonSerializer.Deserialize<OptimizerStateFile>(json, Json) ?? throw new InvalidDataException("empty optimizer state file");

    /// <summary>Writes atomically (temp file + rename).</summary>
    public void Save(string path)
    {
        var tmp = path + ".tmp";
        using (var f = File.Create(tmp))
            JsonSerializer.Serialize(f, this, Json);
        File.Move(tmp, path, overwrite: true);
    }

    public static OptimizerStateFile Load(string path)
    {
        OptimizerStateFile file;
        try
        {
            using var f = File.OpenRead(path);
            file = JsonSerializer.Deserialize<OptimizerStateFile>(f, Json) ?? throw new InvalidDataException("empty file");
        }
        catch (JsonException e) { throw new InvalidDataException($"{path} is not an optimizer state file: {e.Message}", e); }
        if (file.Format != CurrentFormat)
            throw new InvalidDataException($"{path} has format '{file.Format}', expected '{CurrentFormat}'");
        return file;
    }

    /// <summary>The state that gives a freshly created preconditioned optimizer this file's P (buffer
    /// <c>preconditioner</c>, step 0). Throws when the file holds no P or its shapes do not fit.</summary>
    public OptimizerState PreconditionerState(IReadOnlyList<Tensor> parameters, double learningRate, string source)
    {
        if (Preconditioner is null)
            throw new InvalidDataException($"{source}: the optimizer '{Optimizer}' reported no preconditioner at step {Step} (an unpreconditioned method)");
        if (Preconditioner.Length != parameters.Count)
            throw new InvalidDataException($"{source}: P has {Preconditioner.Length} tensors, the model {parameters.Count}");
        for (int i = 0; i < parameters.Count; i++)
            if (Preconditioner[i].Length != parameters[i].numel())
                throw new InvalidDataException($"{source}: P[{i}] has {Preconditioner[i].Length} entries, the parameter {parameters[i].numel()}");
        return new OptimizerState
        {
            Scalars = { ["step"] = 0, ["lr"] = learningRate },
            Buffers = { [PreconditionerBufferName] = Preconditioner.Select(a => (double[]?)a).ToArray() },
        };
    }

    /// <summary>The state buffer a preconditioned optimizer keeps its static P in (documented convention for plugins).</summary>
    public const string PreconditionerBufferName = "preconditioner";
}
