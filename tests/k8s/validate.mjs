// Validates Kubernetes Job manifests: every document against the batch/v1 Job schema generated from the Kubernetes
// OpenAPI specification (kubernetes-models), then the rules the harness relies on for an indexed Job of shards.
// Prints one "<file>: valid ..." line per document, or each error with its path, and exits 1 on any error.
//   npm ci && node validate.mjs ../../deploy/k8s/indexed-job.yaml
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import { Job } from "kubernetes-models/batch/v1/Job";

let failed = false;
const fail = (file, message) => { console.error(`${file}: ${message}`); failed = true; };

for (const file of process.argv.slice(2)) {
  const docs = parseAllDocuments(readFileSync(file, "utf8"));
  for (const doc of docs) {
    if (doc.errors.length > 0) { doc.errors.forEach(e => fail(file, `YAML: ${e.message}`)); continue; }
    const obj = doc.toJS();
    if (obj?.apiVersion !== "batch/v1" || obj?.kind !== "Job") { fail(file, `expected apiVersion batch/v1, kind Job; got ${obj?.apiVersion} ${obj?.kind}`); continue; }
    try { new Job(obj).validate(); }
    catch (e) {
      for (const err of e.errors ?? [{ instancePath: "", message: e.message }])
        fail(file, `schema: ${err.instancePath || "/"} ${err.message}${err.params?.allowedValues ? ` (${err.params.allowedValues.join(", ")})` : ""}`);
      continue;
    }
    // The harness's own rules: each pod runs shard JOB_COMPLETION_INDEX of HARNESS_SHARD_COUNT.
    const spec = obj.spec;
    if (spec.completionMode !== "Indexed") fail(file, "/spec/completionMode must be Indexed (pods get JOB_COMPLETION_INDEX)");
    for (const [i, c] of (spec.template.spec.containers ?? []).entries()) {
      const count = (c.env ?? []).find(e => e.name === "HARNESS_SHARD_COUNT")?.value;
      if (count === undefined) fail(file, `/spec/template/spec/containers/${i}/env lacks HARNESS_SHARD_COUNT`);
      else if (Number(count) !== spec.completions)
        fail(file, `/spec/template/spec/containers/${i}/env HARNESS_SHARD_COUNT=${count} differs from /spec/completions=${spec.completions}`);
      if ((c.args ?? [])[0] !== "run") fail(file, `/spec/template/spec/containers/${i}/args must start with "run"`);
    }
    if (!failed) console.log(`${file}: valid batch/v1 Job ${obj.metadata?.name} (${spec.completions} indexed completions)`);
  }
}
process.exitCode = failed ? 1 : 0;
