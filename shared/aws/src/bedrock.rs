//! The model port on Bedrock Converse, with a Guardrail on every call.
//!
//! A [`BedrockModel`] cannot be built without a [`Guardrail`], and every Converse request it sends carries
//! the Guardrail configuration (with trace), the session id and request id in `requestMetadata`, the
//! person-written text as guard content, the sources as grounding sources and, beside them, the tool's
//! instructions as the `query` the contextual grounding check scores relevance against ("Use contextual
//! grounding check to filter hallucinations in responses": the check needs a grounding source, a query and
//! the content to guard, which in Converse is the model's reply).
//!
//! Calls are signed with the function role: per-session credentials are for HealthLake only.

use std::fmt;

use aws_sdk_bedrockruntime::Client;
use aws_sdk_bedrockruntime::operation::converse::ConverseOutput;
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ConversationRole, ConverseOutput as OutputBlock, GuardrailConfiguration,
    GuardrailConverseContentBlock, GuardrailConverseContentQualifier, GuardrailConverseTextBlock, GuardrailTrace,
    InferenceConfiguration, Message, StopReason, SystemContentBlock,
};
use shared::model::{LanguageModel, ModelError, ModelOutcome, ModelRequest};
use shared::session::SessionContext;
use tracing::{Instrument, info, info_span, warn};

use crate::{AwsError, CallPolicy, Upstream, classify, error_code, restrict};

/// A published Guardrail version. The working draft is refused: what screens clinical text must not
/// change under a running function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guardrail {
    identifier: String,
    version: String,
}

impl Guardrail {
    /// `identifier` is the Guardrail id or ARN; `version` a published version number.
    pub fn new(identifier: &str, version: &str) -> Result<Self, AwsError> {
        let identifier_ok = !identifier.is_empty()
            && identifier.len() <= 2048
            && identifier.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'/' | b'-'));
        if !identifier_ok {
            return Err(AwsError::Invalid("BEDROCK_GUARDRAIL_ID"));
        }
        let version_ok = (1..=8).contains(&version.len()) && version.bytes().all(|b| b.is_ascii_digit());
        if !version_ok {
            return Err(AwsError::Invalid("BEDROCK_GUARDRAIL_VERSION"));
        }
        Ok(Self { identifier: identifier.to_owned(), version: version.to_owned() })
    }

    pub fn identifier(&self) -> &str {
        &self.identifier
    }

    pub fn version(&self) -> &str {
        &self.version
    }
}

/// Whether a geographic cross-region inference profile may serve the model (`BEDROCK_CROSS_REGION_INFERENCE`).
///
/// A geographic profile (`us.`, `eu.`, `apac.` …) lets Bedrock process the prompt, and so the PHI in it, in
/// any destination Region of that geography ("Supported Regions and models for inference profiles"): the
/// data stays in the geography but not in the function's Region. Off by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CrossRegion {
    #[default]
    Refused,
    Allowed,
}

/// What a [`ModelId`] names, which decides where inference runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelTarget {
    /// An in-region foundation model on demand (id or `foundation-model/` ARN).
    FoundationModel,
    /// `arn:aws:bedrock:<region>:<account>:application-inference-profile/<id>` in the function's Region.
    ApplicationInferenceProfile,
    /// A geographic system profile (`us.…` id or `inference-profile/` ARN), allowed by [`CrossRegion::Allowed`].
    GeographicProfile,
    /// `provisioned-model/` ARN in the function's Region: dedicated throughput, in-region.
    ProvisionedModel,
}

/// A model id Converse can be called with from the function's Region, checked at cold start against what
/// Bedrock serves: a foundation model that Bedrock serves on demand, an in-region application inference
/// profile or provisioned model ARN, or (only with [`CrossRegion::Allowed`]) a geographic system profile
/// whose geography contains the Region. Global profiles are always refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelId {
    id: String,
    target: ModelTarget,
}

/// Geography prefixes of system-defined inference profiles and the Region prefixes each covers
/// ("Supported Regions and models for inference profiles": a profile can be used only from a source Region
/// it includes). `global.` is handled apart: its destinations are every commercial Region.
const GEOGRAPHIES: &[(&str, &[&str])] = &[
    ("us", &["us-east-", "us-west-"]),
    ("us-gov", &["us-gov-"]),
    ("eu", &["eu-"]),
    ("apac", &["ap-"]),
    ("jp", &["ap-northeast-1", "ap-northeast-3"]),
    ("au", &["ap-southeast-2", "ap-southeast-4"]),
    ("ca", &["ca-"]),
];

/// Foundation models that Bedrock serves on demand only through an inference profile: invoking the bare
/// model id fails with `ValidationException` ("… with on-demand throughput isn't supported. Retry your
/// request with the ID or ARN of an inference profile that contains this model."). From the model pages
/// under "models at a glance" (Claude 3.5 Sonnet v2 in several Regions, Claude 3.5 Haiku, Claude 3.7 Sonnet and
/// every Claude generation named `claude-<family>-<n>`, Claude 4 onwards). A model not listed here is
/// tried on demand; the first Converse call then says whether Bedrock agrees.
const PROFILE_ONLY_MODELS: &[&str] = &[
    "anthropic.claude-3-5-sonnet-20241022-",
    "anthropic.claude-3-5-haiku-",
    "anthropic.claude-3-7-",
    "anthropic.claude-sonnet-",
    "anthropic.claude-opus-",
    "anthropic.claude-haiku-",
];

fn needs_inference_profile(foundation_model: &str) -> bool {
    PROFILE_ONLY_MODELS.iter().any(|prefix| foundation_model.starts_with(prefix))
}

/// The geography of a system profile id (`us.anthropic…` → `us`), if it has one.
fn geography(id: &str) -> Option<&str> {
    let (first, rest) = id.split_once('.')?;
    let known = first == "global" || GEOGRAPHIES.iter().any(|(g, _)| *g == first);
    // A foundation model id is `<provider>.<model>`: a geography prefix is followed by a whole model id.
    (known && rest.contains('.')).then_some(first)
}

fn geography_covers(geography: &str, region: &str) -> bool {
    GEOGRAPHIES
        .iter()
        .find(|(g, _)| *g == geography)
        .is_some_and(|(_, regions)| regions.iter().any(|r| region.starts_with(r)))
}

impl ModelId {
    /// As [`ModelId::parse_with`] with cross-region inference refused.
    pub fn parse(raw: &str, region: &str) -> Result<Self, AwsError> {
        Self::parse_with(raw, region, CrossRegion::Refused)
    }

    pub fn parse_with(raw: &str, region: &str, cross_region: CrossRegion) -> Result<Self, AwsError> {
        let charset_ok =
            raw.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'/' | b'_'));
        if raw.is_empty() || raw.len() > 2048 || !charset_ok {
            return Err(AwsError::Invalid("BEDROCK_MODEL_ID"));
        }
        let target = match raw.strip_prefix("arn:") {
            Some(rest) => Self::arn_target(rest, region, cross_region)?,
            None => Self::id_target(raw, region, cross_region)?,
        };
        Ok(Self { id: raw.to_owned(), target })
    }

    fn id_target(id: &str, region: &str, cross_region: CrossRegion) -> Result<ModelTarget, AwsError> {
        match geography(id) {
            Some(geo) => Self::geographic(geo, region, cross_region),
            None if needs_inference_profile(id) => Err(AwsError::ModelNeedsInferenceProfile),
            None => Ok(ModelTarget::FoundationModel),
        }
    }

    /// `arn:<partition>:bedrock:<region>:<account>:<type>/<id>`; `rest` is what follows `arn:`.
    fn arn_target(rest: &str, region: &str, cross_region: CrossRegion) -> Result<ModelTarget, AwsError> {
        let parts: Vec<&str> = rest.splitn(5, ':').collect();
        let [partition, service, arn_region, account, resource] = parts[..] else {
            return Err(AwsError::Invalid("BEDROCK_MODEL_ID"));
        };
        if partition.is_empty() || service != "bedrock" {
            return Err(AwsError::Invalid("BEDROCK_MODEL_ID"));
        }
        if arn_region != region {
            return Err(AwsError::ModelOutsideRegion);
        }
        let account_ok = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
        let (kind, id) = resource.split_once('/').ok_or(AwsError::Invalid("BEDROCK_MODEL_ID"))?;
        match (kind, account.is_empty()) {
            ("foundation-model", true) if needs_inference_profile(id) => Err(AwsError::ModelNeedsInferenceProfile),
            ("foundation-model", true) => Ok(ModelTarget::FoundationModel),
            ("application-inference-profile", false) if account_ok && Self::plain_id(id) => {
                Ok(ModelTarget::ApplicationInferenceProfile)
            }
            ("provisioned-model", false) if account_ok && Self::plain_id(id) => Ok(ModelTarget::ProvisionedModel),
            ("inference-profile", false) if account_ok => match geography(id) {
                Some(geo) => Self::geographic(geo, region, cross_region),
                None => Err(AwsError::Invalid("BEDROCK_MODEL_ID")),
            },
            _ => Err(AwsError::Invalid("BEDROCK_MODEL_ID")),
        }
    }

    fn plain_id(id: &str) -> bool {
        !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric())
    }

    fn geographic(geo: &str, region: &str, cross_region: CrossRegion) -> Result<ModelTarget, AwsError> {
        // Global profiles send prompts to any commercial Region in the world: never for PHI.
        if geo == "global" {
            return Err(AwsError::GlobalInferenceProfile);
        }
        if cross_region == CrossRegion::Refused {
            return Err(AwsError::CrossRegionInferenceOff);
        }
        if !geography_covers(geo, region) {
            return Err(AwsError::ModelOutsideRegion);
        }
        Ok(ModelTarget::GeographicProfile)
    }

    pub fn as_str(&self) -> &str {
        &self.id
    }

    pub fn target(&self) -> ModelTarget {
        self.target
    }
}

impl fmt::Display for ModelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

/// `requestMetadata` keys and values: 1–256 of `[a-zA-Z0-9\s:_@$#=/+,.-]`.
fn metadata_value(raw: &str) -> String {
    let value = restrict(raw, 256, |c| c.is_ascii_alphanumeric() || " :_@$#=/+,.-".contains(c));
    if value.is_empty() { "none".to_owned() } else { value }
}

/// The `requestMetadata` keys this adapter sets; CloudWatch invocation logs and Bedrock's model
/// invocation logging record them.
pub const METADATA_SESSION_ID: &str = "session_id";
pub const METADATA_REQUEST_ID: &str = "request_id";

/// Bedrock Converse behind [`LanguageModel`].
#[derive(Clone)]
pub struct BedrockModel {
    client: Client,
    model_id: ModelId,
    guardrail: Guardrail,
    policy: CallPolicy,
}

impl fmt::Debug for BedrockModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BedrockModel")
            .field("model_id", &self.model_id)
            .field("guardrail", &self.guardrail)
            .finish_non_exhaustive()
    }
}

impl BedrockModel {
    pub fn new(client: Client, model_id: ModelId, guardrail: Guardrail) -> Self {
        Self { client, model_id, guardrail, policy: CallPolicy::default() }
    }

    pub fn with_policy(mut self, policy: CallPolicy) -> Self {
        self.policy = policy;
        self
    }

    pub fn model_id(&self) -> &ModelId {
        &self.model_id
    }

    pub fn guardrail(&self) -> &Guardrail {
        &self.guardrail
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// Per-call configuration: deadline-bounded retries and timeouts.
    pub(crate) fn call_config(
        &self,
        session: &SessionContext,
    ) -> Result<aws_sdk_bedrockruntime::config::Builder, Upstream> {
        Ok(aws_sdk_bedrockruntime::config::Builder::default()
            .retry_config(self.policy.retry_config())
            .timeout_config(self.policy.timeout_config(session)?))
    }

    fn message(request: &ModelRequest) -> Result<Message, ModelError> {
        let mut content = Vec::new();
        let sources: Vec<&String> = request.grounding_sources.iter().filter(|s| !s.trim().is_empty()).collect();
        let instructions = request.instructions.trim();
        if !instructions.is_empty() {
            if sources.is_empty() {
                content.push(ContentBlock::Text(request.instructions.clone()));
            } else {
                // The model reads a guard block like any text, so the instructions are sent once, as the query.
                content.push(guard_block(query_text(instructions)?, GuardrailConverseContentQualifier::Query)?);
            }
        } else if !sources.is_empty() {
            // Grounding sources without a query leave the relevance half of the check without input.
            return Err(ModelError::Rejected);
        }
        for source in sources {
            content.push(guard_block(source, GuardrailConverseContentQualifier::GroundingSource)?);
        }
        if !request.guarded_text.trim().is_empty() {
            content.push(guard_block(&request.guarded_text, GuardrailConverseContentQualifier::GuardContent)?);
        }
        if content.is_empty() {
            return Err(ModelError::Rejected);
        }
        Message::builder()
            .role(ConversationRole::User)
            .set_content(Some(content))
            .build()
            .map_err(|_| ModelError::Rejected)
    }

    fn outcome(&self, output: ConverseOutput) -> Result<ModelOutcome, ModelError> {
        let model = self.model_id.to_string();
        match output.stop_reason {
            // The model's own content filter is treated like the Guardrail's: nothing it produced is shown.
            StopReason::GuardrailIntervened | StopReason::ContentFiltered => {
                info!(
                    guardrail_action = "intervened",
                    stop_reason = output.stop_reason.as_str(),
                    traced = output.trace.as_ref().is_some_and(|t| t.guardrail.is_some()),
                    "guardrail intervened"
                );
                return Ok(ModelOutcome::GuardrailIntervened { model });
            }
            StopReason::MaxTokens => warn!("model reply truncated at max tokens"),
            _ => {}
        }
        let Some(OutputBlock::Message(message)) = output.output else {
            return Err(ModelError::Decode);
        };
        let text: Vec<String> = message
            .content
            .into_iter()
            .filter_map(|block| match block {
                ContentBlock::Text(text) => Some(text),
                _ => None,
            })
            .collect();
        let text = text.join("");
        if text.trim().is_empty() {
            return Err(ModelError::Decode);
        }
        info!(guardrail_action = "none", chars = text.len(), "model answered");
        Ok(ModelOutcome::Text { text, model })
    }
}

/// The contextual grounding check reads at most 1,000 characters of query ("Use contextual grounding
/// check …"); what it does with more is not documented, so longer instructions are refused here rather than
/// checked against a part of themselves.
pub const MAX_QUERY_CHARS: usize = 1000;

pub(crate) fn query_text(text: &str) -> Result<&str, ModelError> {
    if text.trim().is_empty() || text.chars().count() > MAX_QUERY_CHARS {
        warn!(error = "query_too_long", "instructions exceed the grounding check's query limit");
        return Err(ModelError::Rejected);
    }
    Ok(text)
}

fn guard_block(text: &str, qualifier: GuardrailConverseContentQualifier) -> Result<ContentBlock, ModelError> {
    let block = GuardrailConverseTextBlock::builder()
        .text(text)
        .qualifiers(qualifier)
        .build()
        .map_err(|_| ModelError::Rejected)?;
    Ok(ContentBlock::GuardContent(GuardrailConverseContentBlock::Text(block)))
}

impl LanguageModel for BedrockModel {
    async fn converse(&self, session: &SessionContext, request: &ModelRequest) -> Result<ModelOutcome, ModelError> {
        let span = info_span!("bedrock_converse", otel.kind = "client", session_id = %session.session_id, model = %self.model_id);
        async {
            let config = self.call_config(session).map_err(model_error)?;
            let mut call = self
                .client
                .converse()
                .model_id(self.model_id.as_str())
                .messages(Self::message(request)?)
                .guardrail_config(
                    GuardrailConfiguration::builder()
                        .guardrail_identifier(self.guardrail.identifier())
                        .guardrail_version(self.guardrail.version())
                        .trace(GuardrailTrace::Enabled)
                        .build(),
                )
                .inference_config(
                    InferenceConfiguration::builder()
                        .max_tokens(i32::try_from(request.max_tokens).unwrap_or(i32::MAX))
                        .temperature(0.0)
                        .build(),
                )
                .request_metadata(METADATA_SESSION_ID, metadata_value(session.session_id.as_str()))
                .request_metadata(METADATA_REQUEST_ID, metadata_value(&session.request_id));
            if !request.system.trim().is_empty() {
                call = call.system(SystemContentBlock::Text(request.system.clone()));
            }
            let output = call.customize().config_override(config).send().await.map_err(|e| {
                warn!(error = error_code(&e), "converse failed");
                model_error(classify(&e))
            })?;
            self.outcome(output)
        }
        .instrument(span)
        .await
    }
}

fn model_error(upstream: Upstream) -> ModelError {
    match upstream {
        Upstream::Unavailable => ModelError::Unavailable,
        Upstream::Rejected => ModelError::Rejected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guardrail_needs_an_id_and_a_published_version() {
        assert!(Guardrail::new("gr-abc123", "3").is_ok());
        assert!(Guardrail::new("arn:aws:bedrock:eu-west-2:111122223333:guardrail/abc123", "12").is_ok());
        assert_eq!(Guardrail::new("", "1"), Err(AwsError::Invalid("BEDROCK_GUARDRAIL_ID")));
        assert_eq!(Guardrail::new("abc", "DRAFT"), Err(AwsError::Invalid("BEDROCK_GUARDRAIL_VERSION")));
        assert_eq!(Guardrail::new("abc", ""), Err(AwsError::Invalid("BEDROCK_GUARDRAIL_VERSION")));
    }

    const APP_PROFILE: &str = "arn:aws:bedrock:us-east-1:111122223333:application-inference-profile/a1b2c3d4e5f6";

    fn target(raw: &str, cross_region: CrossRegion) -> Result<ModelTarget, AwsError> {
        ModelId::parse_with(raw, "us-east-1", cross_region).map(|m| m.target())
    }

    // "Supported Regions and models for inference profiles"; "Use an inference profile in model invocation".
    #[test]
    fn in_region_models_and_application_profiles_are_accepted() {
        for on in [CrossRegion::Refused, CrossRegion::Allowed] {
            assert_eq!(target("anthropic.claude-3-haiku-20240307-v1:0", on), Ok(ModelTarget::FoundationModel));
            assert_eq!(
                target("arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0", on),
                Ok(ModelTarget::FoundationModel)
            );
            assert_eq!(target(APP_PROFILE, on), Ok(ModelTarget::ApplicationInferenceProfile));
            assert_eq!(
                target("arn:aws:bedrock:us-east-1:111122223333:provisioned-model/abc123def456", on),
                Ok(ModelTarget::ProvisionedModel)
            );
        }
    }

    #[test]
    fn models_served_only_through_a_profile_are_refused_as_bare_ids() {
        for id in [
            "anthropic.claude-sonnet-4-20250514-v1:0",
            "anthropic.claude-3-7-sonnet-20250219-v1:0",
            "anthropic.claude-3-5-haiku-20241022-v1:0",
            "anthropic.claude-opus-4-1-20250805-v1:0",
            "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0",
        ] {
            assert_eq!(target(id, CrossRegion::Allowed), Err(AwsError::ModelNeedsInferenceProfile), "{id}");
        }
        let message = AwsError::ModelNeedsInferenceProfile.to_string();
        assert!(message.contains("application inference profile") && message.contains("`BEDROCK_MODEL_ID`"));
    }

    #[test]
    fn geographic_profiles_need_the_setting_and_a_matching_geography() {
        let us = "us.anthropic.claude-sonnet-4-20250514-v1:0";
        let arn =
            "arn:aws:bedrock:us-east-1:111122223333:inference-profile/us.anthropic.claude-3-7-sonnet-20250219-v1:0";
        for id in [us, arn] {
            assert_eq!(target(id, CrossRegion::Refused), Err(AwsError::CrossRegionInferenceOff), "{id}");
            assert_eq!(target(id, CrossRegion::Allowed), Ok(ModelTarget::GeographicProfile), "{id}");
        }
        // A profile can only be invoked from a source Region it includes.
        assert_eq!(target("eu.amazon.nova-pro-v1:0", CrossRegion::Allowed), Err(AwsError::ModelOutsideRegion));
        assert_eq!(
            ModelId::parse_with("eu.amazon.nova-pro-v1:0", "eu-west-1", CrossRegion::Allowed).map(|m| m.target()),
            Ok(ModelTarget::GeographicProfile)
        );
        assert_eq!(
            ModelId::parse_with("apac.anthropic.claude-sonnet-4-20250514-v1:0", "ap-southeast-2", CrossRegion::Allowed)
                .map(|m| m.target()),
            Ok(ModelTarget::GeographicProfile)
        );
        assert_eq!(
            target("us-gov.anthropic.claude-3-haiku-20240307-v1:0", CrossRegion::Allowed),
            Err(AwsError::ModelOutsideRegion)
        );
    }

    #[test]
    fn global_profiles_and_other_regions_are_always_refused() {
        for on in [CrossRegion::Refused, CrossRegion::Allowed] {
            assert_eq!(
                target("global.anthropic.claude-sonnet-4-20250514-v1:0", on),
                Err(AwsError::GlobalInferenceProfile)
            );
            assert_eq!(
                target("arn:aws:bedrock:eu-west-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0", on),
                Err(AwsError::ModelOutsideRegion)
            );
            assert_eq!(target(&APP_PROFILE.replace("us-east-1", "us-west-2"), on), Err(AwsError::ModelOutsideRegion));
            for bad in [
                "",
                "model with spaces",
                "arn:aws:bedrock:us-east-1:1234:application-inference-profile/a1b2",
                "arn:aws:bedrock:us-east-1:111122223333:application-inference-profile/",
                "arn:aws:bedrock:us-east-1:111122223333:agent/ABC",
                "arn:aws:s3:us-east-1:111122223333:inference-profile/us.x.y",
                "arn:aws:bedrock:us-east-1::inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0",
            ] {
                assert!(matches!(target(bad, on), Err(AwsError::Invalid("BEDROCK_MODEL_ID"))), "{bad}");
            }
        }
    }

    #[test]
    fn metadata_values_keep_to_the_service_charset() {
        assert_eq!(metadata_value("sess-abc.123:x"), "sess-abc.123:x");
        assert_eq!(metadata_value("a;b\"c"), "a_b_c");
        assert_eq!(metadata_value(""), "none");
        assert_eq!(metadata_value(&"x".repeat(300)).len(), 256);
    }
}
