using System.Diagnostics.Metrics;
using System.Text.Json.Nodes;
using Harness.Host;
using Harness.Host.Matrix;
using Harness.Host.Output;
using Harness.Host.Telemetry;
using Harness.Host.Training;
using Harness.Tests.Integration;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Harness.Tests.Optimizers;

/// <summary>An optimizer without a linear threshold (Lion) gets null threshold and edge-ratio values in the trace, the
/// summary and the gauges, not an invented number; a closed-form one (GD) beside it keeps its own; every manifest
/// records the threshold rule and the harness's version and commit.</summary>
[TestClass]
public sealed class NullThresholdTests
{
    private sealed class Silent : IRunProgress;

    [TestMethod]
    public void NoLinearThresholdFlowsAsNullThroughTraceSummaryManifestAndGauges()
    {
        var dir = Paths.NewTempDirectory("null-threshold");
        try
        {
            var path = Path.Combine(dir, "matrix.yaml");
            File.WriteAllText(path, """
                name: nullthreshold
                dtype: float64
                models:
                  - name: quadratic
                    hyperparameters: { dim: 10, lambda_max: 4, lambda_min: 1 }
                optimizers:
                  - name: lion
                    hyperparameters: { lr: 0.001 }
                  - name: gd
                    hyperparameters: { lr: 0.1 }
                  - name: qhm
                    hyperparameters: { lr: 0.1, momentum: 0.9, nu: 0.7 }
                probes:
                  - name: sharpness
                    every: 2
                    hyperparameters: { max_iterations: 20, tolerance: 0.000001 }
                training: { steps: 6 }
                """);
            var spec = MatrixParser.ParseFile(path, HostFixture.Catalog);
            using var metrics = new HarnessMetrics();
            var runner = new MatrixRunner(HostFixture.Catalog, metrics, Options.Create(new HarnessOptions { ResultsDirectory = Path.Combine(dir, "results") }),
                NullLogger<MatrixRunner>.Instance);
            var outcome = runner.Run(spec, new Silent(), CancellationToken.None);
            var byOptimizer = outcome.Runs.ToDictionary(r => r.Optimizer);
            foreach (var r in outcome.Runs) Assert.AreEqual(RunStatus.Completed, r.Status, $"{r.Optimizer}: {r.Reason}");

            string Trace(string optimizer) => DuckDb.Quote(Path.Combine(outcome.Directory, byOptimizer[optimizer].RunId, "trace.parquet"));
            var lion = DuckDb.Query($"SELECT count(*) AS n, count(threshold) AS thr, count(edge_ratio) AS er, count(sharpness) AS sh FROM read_parquet({Trace("lion")})").Single();
            Assert.AreEqual(7L, DuckDb.Long(lion["n"]));
            Assert.AreEqual(0L, DuckDb.Long(lion["thr"]), "lion: threshold must be null in every row");
            Assert.AreEqual(0L, DuckDb.Long(lion["er"]), "lion: edge_ratio must be null in every row");
            Assert.IsGreaterThan(0L, DuckDb.Long(lion["sh"]), "the sharpness itself is measured");
            var gd = DuckDb.Query($"SELECT count(threshold) AS thr, count(edge_ratio) AS er, min(threshold) AS t FROM read_parquet({Trace("gd")})").Single();
            Assert.AreEqual(7L, DuckDb.Long(gd["thr"]));
            Assert.IsGreaterThan(0L, DuckDb.Long(gd["er"]));
            Assert.AreEqual(20.0, DuckDb.Double(gd["t"])!.Value, 1e-12, "2/η");
            // QHM β = 0.9, ν = 0.7: min((2+2β)/(1+β−2νβ), (1+1/β)/(1−ν)) / η = 5.9375/0.1 (by hand).
            var qhm = DuckDb.Query($"SELECT min(threshold) AS lo, max(threshold) AS hi FROM read_parquet({Trace("qhm")})").Single();
            Assert.AreEqual(59.375, DuckDb.Double(qhm["lo"])!.Value, 1e-9);
            Assert.AreEqual(59.375, DuckDb.Double(qhm["hi"])!.Value, 1e-9);

            var summary = DuckDb.ReadParquet(Path.Combine(outcome.Directory, "summary.parquet"), "run_id").ToDictionary(r => (string)r["optimizer"]!);
            Assert.IsNull(summary["lion"]["final_threshold"], "summary: lion's final threshold is null");
            Assert.IsNull(summary["lion"]["final_edge_ratio"], "summary: lion's final edge ratio is null");
            Assert.AreEqual(20.0, DuckDb.Double(summary["gd"]["final_threshold"])!.Value, 1e-12);

            foreach (var (optimizer, rule) in new[] { ("lion", "none"), ("gd", "closed_form"), ("qhm", "linear_recurrence") })
            {
                var m = JsonNode.Parse(File.ReadAllText(Path.Combine(outcome.Directory, byOptimizer[optimizer].RunId, "manifest.json")))!;
                Assert.AreEqual(rule, (string?)m["threshold_rule"], $"{optimizer}: manifest threshold_rule");
                Assert.IsFalse(string.IsNullOrEmpty((string?)m["threshold_detail"]), $"{optimizer}: threshold_detail");
                Assert.AreEqual(Provenance.Version, (string?)m["harness_version"]);
                StringAssert.Matches((string?)m["harness_commit"], new System.Text.RegularExpressions.Regex("^[0-9a-f]{40}$"), "the commit the harness was built from");
            }

            // Gauges: harness.stability_threshold is observed for gd and qhm, never for lion.
            var observed = new List<(string run, double value)>();
            using var listener = new MeterListener();
            listener.InstrumentPublished = (inst, l) => { if (inst.Name == "harness.stability_threshold") l.EnableMeasurementEvents(inst); };
            listener.SetMeasurementEventCallback<double>((inst, value, tags, _) =>
            {
                foreach (var t in tags) if (t.Key == "run") observed.Add(((string)t.Value!, value));
            });
            listener.Start();
            listener.RecordObservableInstruments();
            var runs = observed.Select(o => o.run).ToHashSet();
            Assert.Contains(byOptimizer["gd"].RunId, runs, "gd's threshold gauge is exported");
            Assert.DoesNotContain(byOptimizer["lion"].RunId, runs, "lion has no threshold gauge");
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}
