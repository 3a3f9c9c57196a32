//! KMS, Secrets Manager and STS adapters against moto's server, built through the same `Ports` the
//! functions use. Ignored by default: `local/stack.sh test` starts moto on loopback and runs them with
//! `MOTO_ENDPOINT` set (`cargo test -p shared-aws --test moto -- --ignored`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step is a failed test")]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use shared::keys::{EncryptionContext, KeyError, Keys};
use shared::secrets::Secrets;
use shared::session::{SessionContext, SessionId};
use shared_aws::config::{KeysAdapter, Ports, Settings};
use shared_aws::secrets::SecretsManagerSecrets;

fn endpoint() -> String {
    std::env::var("MOTO_ENDPOINT").expect("MOTO_ENDPOINT must name moto's server, e.g. http://127.0.0.1:5111")
}

fn sdk() -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "testing", "testing", None, None, "moto",
        )))
        .endpoint_url(endpoint())
        .build()
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos())
}

fn ports(pairs: &[(&str, String)]) -> Ports {
    let map: HashMap<&str, String> = pairs.iter().cloned().collect();
    let settings = Settings::from_lookup(|k| map.get(k).cloned()).unwrap();
    Ports::with_sdk(settings, Some(sdk()))
}

fn session(id: &str) -> SessionContext {
    SessionContext::new(SessionId::parse(id).unwrap(), "req-moto", Instant::now() + Duration::from_secs(10))
        .with_caller("3f0c2a9e-1b2c-4d5e-8f90-123456789abc")
}

async fn create_key(spec: aws_sdk_kms::types::KeySpec, usage: aws_sdk_kms::types::KeyUsageType) -> String {
    let kms = aws_sdk_kms::Client::new(&sdk());
    let key = kms.create_key().key_spec(spec).key_usage(usage).send().await.unwrap();
    key.key_metadata.unwrap().arn.unwrap()
}

#[tokio::test]
#[ignore = "needs moto's server (MOTO_ENDPOINT); run by local/stack.sh test"]
async fn kms_envelope_round_trip_and_wrong_context_rejected() {
    use aws_sdk_kms::types::{KeySpec, KeyUsageType};
    let key_arn = create_key(KeySpec::SymmetricDefault, KeyUsageType::EncryptDecrypt).await;
    let ports = ports(&[("KEYS", "kms".into()), ("KMS_KEY_ID", key_arn.clone())]);
    let keys = ports.keys().unwrap();
    assert!(matches!(keys, KeysAdapter::Kms(_)));
    let s = session("sess-moto-kms");
    let context = EncryptionContext::draft("org-7", "pn-1f2e", "draft-0042");
    let plaintext = b"Prior authorization request: MRI lumbar spine, 6 weeks PT documented.";

    let sealed = keys.seal(&s, &context, plaintext).await.unwrap();
    assert_eq!(sealed.key_id, key_arn);
    assert!(!sealed.ciphertext.windows(8).any(|w| w == b"MRI lumb"));
    let stored = serde_json::to_string(&sealed).unwrap();
    let sealed: shared::keys::Sealed = serde_json::from_str(&stored).unwrap();
    assert_eq!(keys.open(&s, &sealed, &context).await.unwrap(), plaintext);

    // KMS binds the data key to the context: another draft, patient or tenant does not open.
    for wrong in [
        EncryptionContext::draft("org-7", "pn-1f2e", "draft-0043"),
        EncryptionContext::draft("org-7", "pn-9999", "draft-0042"),
        EncryptionContext::draft("org-8", "pn-1f2e", "draft-0042"),
    ] {
        assert_eq!(keys.open(&s, &sealed, &wrong).await, Err(KeyError::Integrity));
    }
    let mut tampered = sealed.clone();
    tampered.ciphertext[3] ^= 0x40;
    assert_eq!(keys.open(&s, &tampered, &context).await, Err(KeyError::Integrity));
}

#[tokio::test]
#[ignore = "needs moto's server (MOTO_ENDPOINT); run by local/stack.sh test"]
async fn kms_hmac_pseudonyms_are_stable_and_keyed() {
    use aws_sdk_kms::types::{KeySpec, KeyUsageType};
    let enc = create_key(KeySpec::SymmetricDefault, KeyUsageType::EncryptDecrypt).await;
    let mac = create_key(KeySpec::Hmac256, KeyUsageType::GenerateVerifyMac).await;
    let other_mac = create_key(KeySpec::Hmac256, KeyUsageType::GenerateVerifyMac).await;
    let keys = ports(&[("KEYS", "kms".into()), ("KMS_KEY_ID", enc.clone()), ("KMS_MAC_KEY_ID", mac)]).keys().unwrap();
    let other = ports(&[("KEYS", "kms".into()), ("KMS_KEY_ID", enc), ("KMS_MAC_KEY_ID", other_mac)]).keys().unwrap();
    let s = session("sess-moto-mac");
    let a = keys.pseudonym(&s, "Patient/fdc61ab3-9be9-412c-b470-dfa65cb5e6e6").await.unwrap();
    assert_eq!(a, keys.pseudonym(&s, "Patient/fdc61ab3-9be9-412c-b470-dfa65cb5e6e6").await.unwrap());
    assert_ne!(a, keys.pseudonym(&s, "Patient/cd09f5d4-55f7-4a24-a25d-a5b65c7a8805").await.unwrap());
    assert_ne!(a, other.pseudonym(&s, "Patient/fdc61ab3-9be9-412c-b470-dfa65cb5e6e6").await.unwrap());
    assert_eq!(a.len(), 64);
    assert!(!a.contains("fdc61ab3"));
}

#[tokio::test]
#[ignore = "needs moto's server (MOTO_ENDPOINT); run by local/stack.sh test"]
async fn secrets_are_cached_for_the_ttl_then_refreshed_after_rotation() {
    let prefix = format!("{}/", unique("clinical-agent"));
    let sm = aws_sdk_secretsmanager::Client::new(&sdk());
    let name = format!("{prefix}pseudonymisation-key");
    sm.create_secret().name(&name).secret_string("key-v1").send().await.unwrap();
    // No tool reads secrets yet, so no port switch builds this adapter: it is built as a tool would.
    let secrets = SecretsManagerSecrets::new(sm.clone(), Duration::from_secs(1)).with_prefix(prefix.clone());
    let manager = &secrets;
    let s = session("sess-moto-sm");
    assert_eq!(secrets.get(&s, "pseudonymisation-key").await.unwrap().expose(), "key-v1");

    // Rotation: a new AWSCURRENT version.
    sm.put_secret_value().secret_id(&name).secret_string("key-v2").send().await.unwrap();
    assert_eq!(secrets.get(&s, "pseudonymisation-key").await.unwrap().expose(), "key-v1", "served from the cache");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(secrets.get(&s, "pseudonymisation-key").await.unwrap().expose(), "key-v2", "refreshed after the TTL");

    sm.put_secret_value().secret_id(&name).secret_string("key-v3").send().await.unwrap();
    manager.invalidate("pseudonymisation-key").await;
    assert_eq!(secrets.get(&s, "pseudonymisation-key").await.unwrap().expose(), "key-v3", "refreshed on demand");

    let missing = secrets.get(&s, "no-such-secret").await.unwrap_err();
    assert_eq!(missing, shared::secrets::SecretsError::NotFound("no-such-secret".into()));
}

#[tokio::test]
#[ignore = "needs moto's server (MOTO_ENDPOINT); run by local/stack.sh test"]
async fn assumed_role_arn_names_the_session() {
    let role = format!("arn:aws:iam::123456789012:role/{}", unique("summary-data-access"));
    let ports = ports(&[("SESSION_CREDENTIALS", "sts".into()), ("DATA_ACCESS_ROLE_ARN", role)]);
    let credentials = ports.session_credentials().unwrap();
    let assumed = credentials.assume(&session("sess-moto-sts.01")).await.unwrap();
    assert!(assumed.assumed_role_arn.ends_with("/sess-moto-sts.01"), "{}", assumed.assumed_role_arn);
    assert!(assumed.assumed_role_arn.contains(":assumed-role/summary-data-access-"), "{}", assumed.assumed_role_arn);
    assert!(assumed.credentials.session_token().is_some());

    let colon = credentials.assume(&session("agentcore:sess:77")).await.unwrap();
    let name = colon.assumed_role_arn.rsplit('/').next().unwrap();
    assert!(name.starts_with("agentcore_sess_77-"), "{name}");
}

#[tokio::test]
#[ignore = "needs moto's server (MOTO_ENDPOINT); run by local/stack.sh test"]
async fn audit_checkpoints_verify_with_the_hmac_key_and_not_with_another() {
    use std::sync::Arc;

    use aws_sdk_kms::types::{KeySpec, KeyUsageType};
    use shared::audit::verify::{FindingKind, Keyring, numbered, verify_lines};
    use shared::audit::{AuditRecord, AuditSink, ChainMac, CheckpointWhen, MemoryAuditSink};
    use shared_aws::kms::KmsChainMac;

    let key = create_key(KeySpec::Hmac256, KeyUsageType::GenerateVerifyMac).await;
    let other = create_key(KeySpec::Hmac256, KeyUsageType::GenerateVerifyMac).await;
    let client = aws_sdk_kms::Client::new(&sdk());
    let mac: Arc<dyn ChainMac> = Arc::new(KmsChainMac::new(client.clone(), key.clone()));
    let sink = MemoryAuditSink::with_mac(mac.clone(), 8);
    sink.write(AuditRecord::new("f", "t", "a", "direct", "r1"));
    sink.checkpoint(CheckpointWhen::Now).await;
    let lines = sink.lines();
    assert_eq!(lines.len(), 2);
    let report = verify_lines(numbered("moto", &lines), &Keyring::default().with(mac)).await;
    assert!(report.findings.is_empty(), "{:?}", report.findings);

    // The same tag presented as the other key's: KMS refuses it.
    let relabelled: Vec<String> = lines.iter().map(|l| l.replace(&key, &other)).collect();
    let wrong: Arc<dyn ChainMac> = Arc::new(KmsChainMac::new(client, other));
    let report = verify_lines(numbered("moto", &relabelled), &Keyring::default().with(wrong)).await;
    assert!(report.findings.iter().any(|f| f.kind == FindingKind::Forged), "{:?}", report.findings);
}
