//! End-to-end tests live in `tests/`; this is what they share: where the repository is, an HTTP client patient
//! enough for the first invocation (which may build the function), and tokens from the local issuer.

use std::process::Command;
use std::time::Duration;

/// The repository root.
pub fn repo() -> String {
    format!("{}/..", env!("CARGO_MANIFEST_DIR"))
}

/// A port from the environment (`FHIR_PORT`, `LAMBDA_PORT`), else the local stack's default.
pub fn port(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.into())
}

/// A blocking client with a 30-minute timeout: the emulator builds a function on its first invocation.
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(1800)).build().unwrap_or_default()
}

/// A token for a demo user (`local/demo-users.json`) minted by the local issuer, with `flags` (`--expired`, ...).
#[expect(clippy::panic, reason = "a test helper: a token that cannot be minted fails the test")]
pub fn token(user: &str, flags: &[&str]) -> String {
    let out = Command::new("node")
        .arg(format!("{}/local/issuer.mjs", repo()))
        .arg("mint")
        .arg(user)
        .args(flags)
        .output()
        .unwrap_or_else(|_| panic!("node could not be started"));
    assert!(out.status.success(), "mint failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
