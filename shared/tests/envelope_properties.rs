//! Property tests for the envelope parser (`shared::envelope::parse`): arbitrary bytes, arbitrary JSON, and
//! the four envelope shapes with arbitrary Unicode in every field. It never panics, and an error never
//! carries a value from the payload (every planted string is marked, and no error message contains the
//! mark). A fixed number of cases keeps this to a few seconds: the bounded stand-in for `cargo fuzz`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step is a failed test")]

use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{Value, json};
use shared::envelope::{EnvelopeSettings, parse};

const CASES: u32 = 1024;
/// Appended to every generated string: an error message containing it echoed input.
const MARK: &str = "QZXMARK";

/// Text mixing what broke text handling elsewhere (odd spaces, bidi controls, combining marks, astral
/// characters) with JSON-ish and header-ish punctuation.
fn text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        any::<String>(),
        Just("\u{a0}".to_owned()),
        Just("\u{3000}".to_owned()),
        Just("\u{202e}".to_owned()),
        Just("e\u{301}".to_owned()),
        Just("🫁".to_owned()),
        Just("{\"".to_owned()),
        Just("\\u0000".to_owned()),
        Just("___".to_owned()),
        Just("X-Session-Id".to_owned()),
    ];
    proptest::collection::vec(piece, 0..6).prop_map(|parts| format!("{}{MARK}", parts.concat()))
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(text(), inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// One of the four envelopes, with generated values where a caller could put anything.
fn envelope() -> impl Strategy<Value = (Value, Option<Value>)> {
    (0..4u8, text(), text(), text(), json_value()).prop_map(|(kind, a, b, c, v)| match kind {
        0 => (json!({"tool": a, "session_id": b, "identity_token": c, "arguments": v, "break_glass": v, "clinician_signoff": b}), None),
        1 => (
            json!({"messageVersion": "1.0", "sessionId": a, "actionGroup": b, "function": c,
                   "parameters": [{"name": a, "type": "integer", "value": c}, {"name": b, "type": "array", "value": a}],
                   "sessionAttributes": {"identity_token": c, "break_glass": a, "clinician_signoff": b},
                   "promptSessionAttributes": v}),
            None,
        ),
        2 => (
            json!({"messageVersion": "1.0", "sessionId": a, "apiPath": b, "httpMethod": c,
                   "requestBody": {"content": {"application/json": {"properties": [{"name": a, "type": "number", "value": b}]}}},
                   "sessionAttributes": v}),
            None,
        ),
        _ => (
            v.clone(),
            Some(json!({"custom": {"bedrockAgentCoreToolName": format!("{a}___{b}"),
                                   "bedrockAgentCorePropagatedHeaders": {"X-Session-Id": a, "X-Identity-Token": c, "X-Break-Glass": v}}})),
        ),
    })
}

fn assert_quiet(payload: &[u8], context: Option<&Value>) {
    if let Err(error) = parse(payload, context, &EnvelopeSettings::default()) {
        let message = error.to_string();
        assert!(!message.contains(MARK), "the error echoes input: {message}");
    }
}

proptest! {
    #![proptest_config(Config { cases: CASES, ..Config::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        assert_quiet(&bytes, None);
    }

    #[test]
    fn arbitrary_json_never_panics_or_echoes(value in json_value()) {
        assert_quiet(value.to_string().as_bytes(), None);
        assert_quiet(b"{}", Some(&value));
    }

    #[test]
    fn envelopes_with_arbitrary_fields_never_panic_or_echo((payload, context) in envelope()) {
        assert_quiet(payload.to_string().as_bytes(), context.as_ref());
    }
}
