//! The spans of a summary call, exported as OTLP/JSON to a file (`OTEL_TRACES_EXPORTER=file`): one trace per
//! invocation, the audit record's trace id, every span stamped with the session and request ids, the root
//! span a child of the caller's X-Ray segment. Its own test binary: the span export is per process.

mod support;

use serde_json::Value;
use shared::runtime::Handler;
use shared::telemetry::{Resource, TraceExport};
use shared::testing::TokenSpec;
use support::{Behaviour, Harness, JOIE, JOIE_ID, SESSION, direct, invocation, load_bundle};

const DR_ALVAREZ: &str = "9b2564fd-1e47-420a-bded-387234070ef3";
/// What Lambda hands the runtime with active tracing ("Lambda-Runtime-Trace-Id", runtime API).
const XRAY: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

fn attribute<'a>(span: &'a Value, key: &str) -> Option<&'a str> {
    span["attributes"].as_array()?.iter().find(|a| a["key"] == key)?["value"]["stringValue"].as_str()
}

#[tokio::test]
async fn a_calls_spans_form_one_trace_named_by_its_audit_record() {
    let path = std::env::temp_dir().join(format!("summary-spans-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&path);
    shared::telemetry::init();
    shared::telemetry::export_to(
        TraceExport::File(path.clone()),
        Resource { service_name: "patient-summary".into(), attributes: vec![] },
    );
    let behaviour =
        Behaviour { general_practitioner: Some(format!("Practitioner/{DR_ALVAREZ}")), ..Behaviour::default() };
    let h = Harness::new(load_bundle(JOIE), behaviour).await;
    let mut call = invocation(&direct(&TokenSpec::clinician(DR_ALVAREZ).mint(), JOIE_ID));
    call.trace_header = Some(XRAY.into());
    let request_id = call.request_id.clone();
    let reply = h.tool.call(call).await;
    assert_eq!(reply["ok"], true, "{reply}");
    shared::telemetry::ship().await;

    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 1, "one shipment per invocation");
    let resource = &lines[0]["resourceSpans"][0];
    assert_eq!(resource["resource"]["attributes"][0]["value"]["stringValue"], "patient-summary");
    let spans = resource["scopeSpans"][0]["spans"].as_array().unwrap();
    let record = &h.audit()[0];
    let trace_id = record["trace_id"].as_str().unwrap();
    assert_eq!(trace_id, "5759e988bd862e3fe1be46a994272793", "the X-Ray root id is the audit record's trace");

    let root = spans.iter().find(|s| s["name"] == "tool_call").expect("the invocation's span");
    assert_eq!(root["parentSpanId"], "53995c3f42cd8ad8", "a child of the function's X-Ray segment");
    let searches: Vec<&Value> = spans.iter().filter(|s| s["name"] == "fhir_search").collect();
    assert!(searches.len() >= 5, "the summary's searches are spans: {}", searches.len());
    for span in spans {
        assert_eq!(span["traceId"], trace_id, "{span}");
        assert_eq!(attribute(span, "session.id"), Some(SESSION), "{span}");
        assert_eq!(attribute(span, "faas.invocation_id"), Some(request_id.as_str()), "{span}");
        let (start, end) = (span["startTimeUnixNano"].as_str().unwrap(), span["endTimeUnixNano"].as_str().unwrap());
        assert!(start.parse::<u64>().unwrap() <= end.parse::<u64>().unwrap(), "{span}");
    }
    // Span kinds as the OpenTelemetry semantic conventions ask: the invocation is the function's SERVER span
    // ("Semantic conventions for FaaS spans"), each call it makes a CLIENT span ("... for AWS SDK client spans").
    assert_eq!(root["kind"], 2, "tool_call is a SERVER span");
    for search in &searches {
        assert_eq!(search["parentSpanId"], root["spanId"], "searches hang under the invocation");
        assert_eq!(search["kind"], 3, "an outgoing call is a CLIENT span");
    }
    // Nothing clinical in a span: ids, counts and timings only.
    assert!(!text.contains("Joie") && !text.contains("Morissette"), "a name reached the spans");

    // The next shipment holds only the next invocation.
    let mut call = invocation(&direct(&TokenSpec::clinician(DR_ALVAREZ).mint(), JOIE_ID));
    call.request_id = "req-test-2".into();
    h.tool.call(call).await;
    shared::telemetry::ship().await;
    let text = std::fs::read_to_string(&path).unwrap();
    let second: Value = serde_json::from_str(text.lines().nth(1).unwrap()).unwrap();
    let spans = second["resourceSpans"][0]["scopeSpans"][0]["spans"].as_array().unwrap();
    assert!(spans.iter().all(|s| attribute(s, "faas.invocation_id") == Some("req-test-2")));
    assert!(spans.iter().all(|s| s["traceId"] != trace_id), "a new invocation is a new trace");
    let _ = std::fs::remove_file(&path);
}
