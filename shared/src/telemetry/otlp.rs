//! OTLP/JSON: the spans of one shipment as an `ExportTraceServiceRequest`, in the JSON encoding the
//! OpenTelemetry protocol specifies ("OTLP/HTTP", JSON Protobuf Encoding: trace and span ids as hex strings,
//! 64-bit integers as decimal strings, enums as numbers, lowerCamelCase field names).
//!
//! Hand-written rather than `opentelemetry-otlp`: that crate's JSON path carries the protobuf types and
//! `prost` for a few dozen spans per call, and its HTTP transport has no per-request SigV4 signing, which the
//! CloudWatch OTLP traces endpoint requires. The same body is what the local file holds, one request per line.

use std::time::SystemTime;

use opentelemetry::trace::{SpanKind, Status};
use opentelemetry::{KeyValue, Value as OtelValue};
use opentelemetry_sdk::trace::SpanData;
use serde_json::{Value, json};

/// Resource attributes of the process (`service.name` is what X-Ray and Application Signals group by).
#[derive(Debug, Clone, Default)]
pub struct Resource {
    pub service_name: String,
    pub attributes: Vec<(String, String)>,
}

/// The request body for `spans`; `stamp` are attributes added to each span `stamped` selects, unless it
/// carries them already.
pub fn export_request(
    resource: &Resource,
    spans: &[SpanData],
    stamp: &[(&str, &str)],
    stamped: impl Fn(&SpanData) -> bool,
) -> Value {
    let mut resource_attributes = vec![attribute_str("service.name", &resource.service_name)];
    resource_attributes.extend(resource.attributes.iter().map(|(k, v)| attribute_str(k, v)));
    let spans: Vec<Value> =
        spans.iter().map(|span| encode_span(span, if stamped(span) { stamp } else { &[] })).collect();
    json!({
        "resourceSpans": [{
            "resource": { "attributes": resource_attributes },
            "scopeSpans": [{ "scope": { "name": env!("CARGO_PKG_NAME") }, "spans": spans }]
        }]
    })
}

fn encode_span(span: &SpanData, stamp: &[(&str, &str)]) -> Value {
    let mut attributes: Vec<Value> = span.attributes.iter().map(attribute).collect();
    for (key, value) in stamp {
        if !span.attributes.iter().any(|kv| kv.key.as_str() == *key) {
            attributes.push(attribute_str(key, value));
        }
    }
    let events: Vec<Value> = span
        .events
        .iter()
        .map(|event| {
            json!({
                "timeUnixNano": nanos(event.timestamp),
                "name": event.name,
                "attributes": event.attributes.iter().map(attribute).collect::<Vec<_>>(),
            })
        })
        .collect();
    let mut encoded = json!({
        "traceId": trace_id_hex(span),
        "spanId": span_id_hex(span.span_context.span_id().to_bytes()),
        "name": span.name,
        "kind": kind(&span.span_kind),
        "startTimeUnixNano": nanos(span.start_time),
        "endTimeUnixNano": nanos(span.end_time),
        "attributes": attributes,
        "events": events,
        "status": status(&span.status),
    });
    if span.parent_span_id != opentelemetry::trace::SpanId::INVALID {
        encoded["parentSpanId"] = json!(span_id_hex(span.parent_span_id.to_bytes()));
    }
    encoded
}

pub fn trace_id_hex(span: &SpanData) -> String {
    format!("{:032x}", u128::from_be_bytes(span.span_context.trace_id().to_bytes()))
}

fn span_id_hex(bytes: [u8; 8]) -> String {
    format!("{:016x}", u64::from_be_bytes(bytes))
}

fn nanos(at: SystemTime) -> String {
    at.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0).to_string()
}

/// `SPAN_KIND_INTERNAL` = 1, `SERVER` = 2, `CLIENT` = 3, `PRODUCER` = 4, `CONSUMER` = 5.
fn kind(kind: &SpanKind) -> u8 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

/// `STATUS_CODE_UNSET` = 0, `OK` = 1, `ERROR` = 2.
fn status(status: &Status) -> Value {
    match status {
        Status::Unset => json!({ "code": 0 }),
        Status::Ok => json!({ "code": 1 }),
        Status::Error { description } => json!({ "code": 2, "message": description }),
    }
}

fn attribute_str(key: &str, value: &str) -> Value {
    json!({ "key": key, "value": { "stringValue": value } })
}

fn attribute(kv: &KeyValue) -> Value {
    let value = match &kv.value {
        OtelValue::Bool(b) => json!({ "boolValue": b }),
        OtelValue::I64(i) => json!({ "intValue": i.to_string() }),
        OtelValue::F64(f) => json!({ "doubleValue": f }),
        OtelValue::String(s) => json!({ "stringValue": s.as_str() }),
        // Arrays (and kinds added later) as their display form: tracing fields never produce them.
        other => json!({ "stringValue": other.to_string() }),
    };
    json!({ "key": kv.key.as_str(), "value": value })
}
