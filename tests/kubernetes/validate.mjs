// Validates the custom resources in YAML files against their CRDs' OpenAPI schemas,
// as the API server would: Gateway API (Gateway, HTTPRoute), KEDA (ScaledObject) and
// Knative Serving (Service). Core kinds are left to `kubernetes-validate --strict`; a
// custom kind this script does not know fails, so nothing passes unchecked.
//
//   node validate.mjs FILE...   (exit 0 when every custom resource is valid)

import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import { Gateway } from "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/Gateway";
import { HTTPRoute } from "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1/HTTPRoute";
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject";
import { Service as KnativeService } from "@kubernetes-models/knative/serving.knative.dev/v1/Service";

const models = {
  "gateway.networking.k8s.io/v1 Gateway": Gateway,
  "gateway.networking.k8s.io/v1 HTTPRoute": HTTPRoute,
  "keda.sh/v1alpha1 ScaledObject": ScaledObject,
  "serving.knative.dev/v1 Service": KnativeService,
};
const core = new Set(["v1", "apps/v1", "policy/v1", "autoscaling/v2", "networking.k8s.io/v1"]);

let failed = 0;
let checked = 0;
for (const file of process.argv.slice(2)) {
  for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
    if (doc.errors.length) {
      console.log(`FAIL ${file}: YAML: ${doc.errors[0].message}`);
      failed++;
      continue;
    }
    const obj = doc.toJS();
    const key = `${obj.apiVersion} ${obj.kind}`;
    if (core.has(obj.apiVersion)) continue;
    const Model = models[key];
    const what = `${file} ${key} ${obj.metadata?.name}`;
    if (!Model) {
      console.log(`FAIL ${what}: no schema for this kind`);
      failed++;
      continue;
    }
    try {
      new Model(obj).validate();
      checked++;
      console.log(`ok ${what}`);
    } catch (e) {
      console.log(`FAIL ${what}: ${e.message}`);
      failed++;
    }
  }
}
console.log(`${checked} custom resources valid, ${failed} failed`);
process.exit(failed ? 1 : 0);
