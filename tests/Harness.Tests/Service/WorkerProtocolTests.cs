using Harness.Host.Matrix;
using Harness.Host.Plugins;
using Harness.Host.Service;
using Harness.Host.Training;
using Harness.Host.Workers;

namespace Harness.Tests.Service;

[TestClass]
public sealed class WorkerProtocolTests
{
    private sealed class Recorder : IRunProgress
    {
        public readonly List<StepReport> Steps = new();
        public long Started = -1;
        public void RunStarted(RunCell cell, long steps) => Started = steps;
        public void RunStepReport(RunCell cell, StepReport report) => Steps.Add(report);
    }

    private static RunCell Cell() => MatrixExpander.Expand(new MatrixParser(PluginCatalog.Load(Paths.PluginArtifacts)).Parse("""
        name: proto
        models: [ { name: quadratic } ]
        optimizers: [ { name: gd } ]
        training: { steps: 3 }
        """, "proto.yaml")).Single();

    [TestMethod]
    public void StepReportsSurviveTheStdoutProtocolIncludingNonFiniteValues()
    {
        var cell = Cell();
        var sent = new StepReport(7, 10, double.NaN, double.PositiveInfinity, 0.1, 20, 0.004,
            new Dictionary<string, double> { ["sharpness"] = 19.5, ["edge_ratio"] = double.NegativeInfinity },
            new Dictionary<string, double> { ["sharpness"] = 0.25 });
        var output = new StringWriter();
        using var worker = new JsonLinesProgress(output);
        worker.RunStarted(cell, 10);
        output.WriteLine("a plugin printing to stdout is ignored");
        worker.RunStepReport(cell, sent);
        worker.RunStepReport(cell, sent with { Step = 10, StepSeconds = null });

        var recorder = new Recorder();
        int events = output.ToString().Split(Environment.NewLine, StringSplitOptions.RemoveEmptyEntries)
            .Count(line => WorkerProtocol.Dispatch(line, cell, recorder));
        Assert.AreEqual(3, events);
        Assert.AreEqual(10L, recorder.Started);
        Assert.AreEqual(2, recorder.Steps.Count);
        var got = recorder.Steps[0];
        Assert.AreEqual(7L, got.Step);
        Assert.IsTrue(double.IsNaN(got.Loss));
        Assert.AreEqual(double.PositiveInfinity, got.GradNorm);
        Assert.AreEqual(0.1, got.LearningRate);
        Assert.AreEqual(0.004, got.StepSeconds);
        Assert.AreEqual(19.5, got.Probes["sharpness"]);
        Assert.AreEqual(double.NegativeInfinity, got.Probes["edge_ratio"]);
        Assert.AreEqual(0.25, got.ProbeSeconds["sharpness"]);
        Assert.IsNull(recorder.Steps[1].StepSeconds, "the final row has no step time");
    }

    [TestMethod]
    public void LoopbackDetection()
    {
        static bool Loopback(string url) => BindAddress.TryParse(url, out var a, out _) && a!.IsLoopback;
        Assert.IsTrue(Loopback("http://127.0.0.1:9464"));
        Assert.IsTrue(Loopback("http://127.0.0.2:9464"));
        Assert.IsTrue(Loopback("http://localhost:9464"));
        Assert.IsTrue(Loopback("http://[::1]:9464"));
        Assert.IsFalse(Loopback("http://0.0.0.0:9464"));
        Assert.IsFalse(Loopback("http://*:9464"));
        Assert.IsFalse(Loopback("http://+:9464"));
        Assert.IsFalse(Loopback("http://10.1.2.3:9464"));
        Assert.IsFalse(Loopback("http://myhost:9464"));
        Assert.IsFalse(Loopback("http://user@localhost:9464"));
    }
}
