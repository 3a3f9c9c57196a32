//! The model port on Bedrock Converse, with a Guardrail on every call.
//!
//! A [`BedrockModel`] cannot be built without a [`Guardrail`], and every Converse request it sends carries
//! the Guardrail configuration (with trace), the session id and request id in `requestMetadata`, the
//! person-written text as guard content and the sources as grounding sources.

use std::fmt;
use std::sync::Arc;

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

use crate::sts::SessionCredentials;
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

/// A model id that keeps inference in the function's region: an in-region foundation model id or an ARN
/// in that region. Cross-region inference profiles (`us.`, `eu.`, `apac.`, `global.` …) are refused because
/// they may route PHI to another region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelId(String);

const CROSS_REGION_PREFIXES: &[&str] = &["us", "us-gov", "eu", "apac", "global", "jp", "au", "ca"];

impl ModelId {
    pub fn parse(raw: &str, region: &str) -> Result<Self, AwsError> {
        let charset_ok =
            raw.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'/' | b'_'));
        if raw.is_empty() || raw.len() > 2048 || !charset_ok {
            return Err(AwsError::Invalid("BEDROCK_MODEL_ID"));
        }
        if let Some(rest) = raw.strip_prefix("arn:") {
            // arn:<partition>:bedrock:<region>:<account>:<resource>
            let parts: Vec<&str> = rest.splitn(5, ':').collect();
            let in_region = parts.len() == 5 && parts[1] == "bedrock" && parts[2] == region;
            let cross_region = parts
                .get(4)
                .and_then(|resource| resource.strip_prefix("inference-profile/"))
                .is_some_and(has_geo_prefix);
            return if in_region && !cross_region {
                Ok(Self(raw.to_owned()))
            } else {
                Err(AwsError::Invalid("BEDROCK_MODEL_ID"))
            };
        }
        if has_geo_prefix(raw) {
            return Err(AwsError::Invalid("BEDROCK_MODEL_ID"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn has_geo_prefix(id: &str) -> bool {
    id.split_once('.').is_some_and(|(first, _)| CROSS_REGION_PREFIXES.contains(&first))
}

impl fmt::Display for ModelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
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
    session_credentials: Option<Arc<SessionCredentials>>,
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
        Self { client, model_id, guardrail, policy: CallPolicy::default(), session_credentials: None }
    }

    pub fn with_policy(mut self, policy: CallPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Signs each call with the session's assumed-role credentials instead of the function's role.
    pub fn with_session_credentials(mut self, credentials: Arc<SessionCredentials>) -> Self {
        self.session_credentials = Some(credentials);
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

    /// Per-call configuration: deadline-bounded retries and timeouts, and the session's credentials.
    pub(crate) async fn call_config(
        &self,
        session: &SessionContext,
    ) -> Result<aws_sdk_bedrockruntime::config::Builder, Upstream> {
        let mut config = aws_sdk_bedrockruntime::config::Builder::default()
            .retry_config(self.policy.retry_config())
            .timeout_config(self.policy.timeout_config(session)?);
        if let Some(source) = &self.session_credentials {
            let assumed = source.assume(session).await.map_err(|e| match e {
                AwsError::Unavailable => Upstream::Unavailable,
                _ => Upstream::Rejected,
            })?;
            config = config.credentials_provider(assumed.credentials);
        }
        Ok(config)
    }

    fn message(request: &ModelRequest) -> Result<Message, ModelError> {
        let mut content = Vec::new();
        if !request.instructions.trim().is_empty() {
            content.push(ContentBlock::Text(request.instructions.clone()));
        }
        for source in request.grounding_sources.iter().filter(|s| !s.trim().is_empty()) {
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
        let span = info_span!("bedrock_converse", session_id = %session.session_id, model = %self.model_id);
        async {
            let config = self.call_config(session).await.map_err(model_error)?;
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

    #[test]
    fn model_ids_must_stay_in_region() {
        assert!(ModelId::parse("anthropic.claude-3-5-sonnet-20240620-v1:0", "us-east-1").is_ok());
        assert!(
            ModelId::parse(
                "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0",
                "us-east-1"
            )
            .is_ok()
        );
        for bad in [
            "us.anthropic.claude-3-5-sonnet-20240620-v1:0",
            "eu.amazon.nova-pro-v1:0",
            "global.anthropic.claude-sonnet-4-20250514-v1:0",
            "arn:aws:bedrock:eu-west-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0",
            "arn:aws:bedrock:us-east-1:111122223333:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0",
            "",
            "model with spaces",
        ] {
            assert!(ModelId::parse(bad, "us-east-1").is_err(), "{bad}");
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
