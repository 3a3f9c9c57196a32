//! JWT verification: every way a token can be wrong is rejected with its own typed error.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step is a failed test")]

use std::collections::BTreeSet;

use shared::identity::{IdentityError, JwtVerifier, Role};
use shared::testing::{self, TokenSpec};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn verify(spec: &TokenSpec) -> Result<shared::identity::Principal, IdentityError> {
    testing::verifier().verify(Some(&spec.mint())).await
}

#[tokio::test]
async fn valid_token_maps_claims_to_principal() {
    let principal = verify(&TokenSpec::clinician("prac-9")).await.expect("valid token");
    assert_eq!(principal.subject, "dr-test");
    assert_eq!(principal.roles, BTreeSet::from([Role::Clinician]));
    assert_eq!(principal.organization.as_deref(), Some("org-test"));
    assert_eq!(principal.practitioner_id.map(|p| p.to_string()).as_deref(), Some("prac-9"));
}

#[tokio::test]
async fn bearer_prefix_is_accepted_and_unknown_roles_are_dropped() {
    let token = TokenSpec::with_roles(&["rcm_coder", "superuser"]).mint();
    let principal = testing::verifier().verify(Some(&format!("Bearer {token}"))).await.expect("valid token");
    assert_eq!(principal.roles, BTreeSet::from([Role::RcmCoder]));
}

#[tokio::test]
async fn forged_signature_is_rejected() {
    let spec = TokenSpec { forged: true, ..TokenSpec::default() };
    assert_eq!(verify(&spec).await, Err(IdentityError::BadSignature));
}

#[tokio::test]
async fn expired_token_is_rejected() {
    let spec = TokenSpec { expires_in: -120, ..TokenSpec::default() };
    assert_eq!(verify(&spec).await, Err(IdentityError::Expired));
}

#[tokio::test]
async fn wrong_audience_is_rejected() {
    let spec = TokenSpec { audience: "some-other-app".into(), ..TokenSpec::default() };
    assert_eq!(verify(&spec).await, Err(IdentityError::WrongAudience));
}

#[tokio::test]
async fn wrong_issuer_is_rejected() {
    let spec = TokenSpec { issuer: "https://evil.example".into(), ..TokenSpec::default() };
    assert_eq!(verify(&spec).await, Err(IdentityError::WrongIssuer));
}

#[tokio::test]
async fn missing_and_malformed_tokens_are_rejected() {
    let verifier = testing::verifier();
    assert_eq!(verifier.verify(None).await, Err(IdentityError::Missing));
    assert_eq!(verifier.verify(Some("  ")).await, Err(IdentityError::Missing));
    assert_eq!(verifier.verify(Some("not.a.jwt")).await, Err(IdentityError::Malformed));
}

#[tokio::test]
async fn unsigned_alg_none_token_is_rejected() {
    // header {"alg":"none","kid":"test-key-1"}, payload of a clinician, no signature.
    let token = "eyJhbGciOiJub25lIiwia2lkIjoidGVzdC1rZXktMSJ9.eyJzdWIiOiJ4Iiwicm9sZXMiOlsiY2xpbmljaWFuIl19.";
    assert!(testing::verifier().verify(Some(token)).await.is_err());
}

#[tokio::test]
async fn invalid_practitioner_id_claim_is_rejected() {
    let spec = TokenSpec { practitioner_id: Some("../Patient/1".into()), ..TokenSpec::default() };
    assert_eq!(verify(&spec).await, Err(IdentityError::Malformed));
}

#[tokio::test]
async fn jwks_is_fetched_once_and_cached() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/.well-known/jwks.json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(testing::jwks()))
        .expect(1)
        .mount(&server)
        .await;
    let verifier = JwtVerifier::from_jwks_url(
        testing::ISSUER,
        testing::AUDIENCE,
        format!("{}/.well-known/jwks.json", server.uri()),
        reqwest::Client::new(),
    );
    for _ in 0..3 {
        assert!(verifier.verify(Some(&TokenSpec::default().mint())).await.is_ok());
    }
    // A forged token names the known kid: no refetch is triggered, and it still fails.
    let forged = TokenSpec { forged: true, ..TokenSpec::default() }.mint();
    assert_eq!(verifier.verify(Some(&forged)).await, Err(IdentityError::BadSignature));
}

#[tokio::test]
async fn unreachable_jwks_is_a_typed_error() {
    let server = MockServer::start().await;
    Mock::given(method("GET")).respond_with(ResponseTemplate::new(503)).mount(&server).await;
    let verifier = JwtVerifier::from_jwks_url(testing::ISSUER, testing::AUDIENCE, server.uri(), reqwest::Client::new());
    assert_eq!(verifier.verify(Some(&TokenSpec::default().mint())).await, Err(IdentityError::KeysUnavailable));
}
