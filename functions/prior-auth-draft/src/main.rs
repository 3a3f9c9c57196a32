//! Lambda entry point: the adapters built once around the two prior-auth actions; the shell does the rest.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use prior_auth_draft::policies::PolicyFiles;
use prior_auth_draft::store::{ConfiguredDraftStore, FhirDraftStore, FileDraftStore};
use prior_auth_draft::{PriorAuth, PriorAuthDraft, PriorAuthFinalize};
use shared::audit::StdoutAuditSink;
use shared::fhir::HttpFhirStore;
use shared::tool::{Shell, StartError, http_client, lambda_main};
use shared_aws::config::{Deployment, KeysAdapter, KnowledgeAdapter, WriterAdapter};

type State = PriorAuth<
    HttpFhirStore,
    KnowledgeAdapter<PolicyFiles>,
    WriterAdapter,
    ConfiguredDraftStore<HttpFhirStore>,
    KeysAdapter,
>;
type Function = Shell<(PriorAuthDraft<State>, PriorAuthFinalize<State>), StdoutAuditSink>;

fn main() -> ExitCode {
    lambda_main(build)
}

async fn build() -> Result<Function, StartError> {
    let deployment = Deployment::from_env().await?;
    let (config, ports) = (&deployment.config, &deployment.ports);
    // On AWS the Knowledge Base serves the policies (its configuration is checked by `knowledge_base`); without
    // one, the policy directory is the only source, and a tool with no policies must not serve: every request
    // would fail as "no policy" while the function looked healthy.
    let knowledge = match ports.payer_policies(PolicyFiles::default()).map_err(StartError::adapter)? {
        KnowledgeAdapter::Local(_) => {
            let policy_dir = deployment.var("PAYER_POLICIES_DIR").unwrap_or("../shared/payer-policies");
            let policies = PolicyFiles::from_dir(&PathBuf::from(policy_dir)).map_err(|_| {
                StartError::Tool("the payer policy directory cannot be read, or a policy in it does not parse")
            })?;
            if policies.is_empty() {
                return Err(StartError::Tool("the payer policy directory holds no policies"));
            }
            KnowledgeAdapter::Local(policies)
        }
        configured => configured,
    };
    let http = http_client()?;
    let fhir_base = config.fhir_endpoint.url().to_string();
    let store = deployment.fhir_store(&http);
    // Drafts go to the FHIR store (HealthLake) by default: /tmp is one Lambda instance's, and a draft must be
    // finalizable from any instance. The file store is for offline runs and tests.
    let drafts = match deployment.var("DRAFT_STORE").unwrap_or("fhir") {
        "fhir" => ConfiguredDraftStore::Fhir(FhirDraftStore::new(store.clone())),
        "file" => ConfiguredDraftStore::File(FileDraftStore::new(
            deployment.var("PRIOR_AUTH_DRAFT_DIR").unwrap_or("/tmp/prior-auth-drafts"),
        )),
        _ => return Err(StartError::Tool("`DRAFT_STORE` must be `fhir` or `file`")),
    };
    let keys = ports.keys().map_err(StartError::adapter)?;
    if !keys.makes_pseudonyms() {
        // A draft's encryption context names the patient by pseudonym: without the HMAC key no draft can be sealed.
        return Err(StartError::Tool(
            "`KMS_MAC_KEY_ID` is required: draft encryption contexts carry the patient's pseudonym",
        ));
    }
    let state = Arc::new(PriorAuth {
        store,
        knowledge,
        writer: ports.writer().map_err(StartError::adapter)?,
        drafts,
        keys,
        tenant: config.tenant_organization.clone(),
        care_lookback_days: config.care_lookback_days,
        fhir_base,
        as_of: None,
    });
    let actions = (PriorAuthDraft(state.clone()), PriorAuthFinalize(state));
    Shell::new(actions, config, http, ports.audit_sink().map_err(StartError::adapter)?)
}
