//! What an audit record costs a call: sealing (instance, sequence, timestamp, trace id, hash chain) and
//! serialising a typical final record, a checkpoint under the local key, and the sink's cold-start setup.
//! Bytes per record are printed once. Also what a call's trace costs: a summary's 12 spans recorded and
//! shipped to the local spans file (`OTEL_TRACES_EXPORTER=file`), with the bytes per shipment.
//! `cargo bench -p shared --bench audit_cost`.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "bench setup: a failed step is a failed bench")]

use std::hint::black_box;
use std::io::Write;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use shared::audit::{
    AuditChain, AuditRecord, AuditSink, ChainMac, CheckpointWhen, LocalChainMac, MemoryAuditSink, Outcome, RecordKind,
};
use shared::authz::AuthzDecision;

/// A summary call of a large patient: 40 resources read, a permit by one policy, a writer and guardrail.
fn final_record(i: u64) -> AuditRecord {
    let mut r = AuditRecord::new(
        "patient-summary",
        "patient_summary",
        "summarize",
        "bedrock_agent",
        &format!("8f14e45f-ceea-467f-a0e6-{i:012}"),
    );
    r.session_id = Some("demo-Q2xpbmljYWxBZ2VudFNlc3Npb25JZDEyMzQ1Njc4".to_owned());
    r.subject = Some("3f0c2a9e-1b2c-4d5e-8f90-123456789abc".to_owned());
    r.roles = vec!["clinician"];
    r.organization = Some("org-1".to_owned());
    r.patient = Some("Patient/fdc61ab3-9be9-412c-b470-dfa65cb5e6e6".to_owned());
    r.decision = Some(AuthzDecision { allowed: true, policies: vec!["clinician-care-team".to_owned()], errors: 0 });
    r.relationship_reads = vec!["Patient/fdc61ab3-9be9-412c-b470-dfa65cb5e6e6".to_owned()];
    r.resources_read = (0..40).map(|n| format!("Observation/0b6a2f1e-7c3d-4e5f-9a8b-{n:012}")).collect();
    r.model = Some("local-deterministic".to_owned());
    r.guardrail_action = Some("none".to_owned());
    r.outcome = Outcome::Ok;
    r.latency_ms = 186;
    r
}

fn bench(c: &mut Criterion) {
    let chain = AuditChain::default();
    let final_line = chain.seal(final_record(0));
    let mut intent = final_record(1);
    intent.record_kind = RecordKind::Intent;
    intent.resources_read.clear();
    intent.outcome = Outcome::Pending;
    let intent_line = chain.seal(intent);
    let key: Arc<dyn ChainMac> = Arc::new(LocalChainMac::from_bytes(&[3u8; 32]).unwrap());
    let sink = MemoryAuditSink::with_mac(key.clone(), 1);
    sink.write(final_record(2));
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(sink.checkpoint(CheckpointWhen::Now));
    let checkpoint_line = sink.lines().pop().unwrap_or_default();
    eprintln!(
        "bytes per line: final (40 reads) {}, intent {}, checkpoint {}",
        final_line.len() + 1,
        intent_line.len() + 1,
        checkpoint_line.len() + 1
    );

    let mut i = 0u64;
    c.bench_function("seal+serialise a final record (40 reads)", |b| {
        b.iter(|| {
            i += 1;
            chain.seal_and(final_record(i), |line| {
                let _ = writeln!(std::io::sink(), "{line}");
            });
        });
    });
    c.bench_function("build the final record alone (baseline)", |b| b.iter(|| black_box(final_record(7))));
    let sink = MemoryAuditSink::with_mac(key, 1);
    c.bench_function("checkpoint with the local key", |b| {
        b.iter(|| {
            sink.write(final_record(3));
            rt.block_on(sink.checkpoint(CheckpointWhen::Now));
        });
    });
    c.bench_function("cold start: a new chain (random instance id)", |b| b.iter(|| black_box(AuditChain::default())));
    let key_file = std::env::temp_dir().join(format!("audit-bench-key-{}", std::process::id()));
    std::fs::write(&key_file, "ab".repeat(32)).unwrap();
    // What `Deployment::from_env` does at cold start on the local stack: read the key file, derive
    // the key id, draw the instance id (the environment lookup is left out: edition 2024 forbids setting it).
    c.bench_function("cold start: key file + key id + new chain", |b| {
        b.iter(|| {
            let text = std::fs::read_to_string(&key_file).unwrap();
            black_box((LocalChainMac::from_hex(&text).unwrap(), AuditChain::default()))
        })
    });
    let _ = std::fs::remove_file(&key_file);

    // A summary call's spans: the invocation and eleven searches, then the shipment after the reply.
    let spans_file = std::env::temp_dir().join(format!("audit-bench-spans-{}.jsonl", std::process::id()));
    shared::telemetry::init();
    shared::telemetry::export_to(
        shared::telemetry::TraceExport::File(spans_file.clone()),
        shared::telemetry::Resource { service_name: "patient-summary".into(), attributes: vec![] },
    );
    let one_call = |n: u64| {
        let request = format!("8f14e45f-ceea-467f-a0e6-{n:012}");
        shared::telemetry::begin_trace(
            Some("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8"),
            &request,
        );
        let root = tracing::info_span!("tool_call", function = "patient-summary", request_id = %request);
        shared::telemetry::link_to_caller(
            &root,
            Some("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8"),
        );
        let _entered = root.enter();
        shared::telemetry::set_session_id("demo-Q2xpbmljYWxBZ2VudFNlc3Npb25JZDEyMzQ1Njc4");
        for _ in 0..11 {
            let search = tracing::info_span!("fhir_search", resource_type = "Observation", pages = 1);
            drop(search.enter());
        }
    };
    one_call(0);
    rt.block_on(shared::telemetry::ship());
    eprintln!("bytes per shipment (12 spans): {}", std::fs::metadata(&spans_file).map(|m| m.len()).unwrap_or(0));
    let mut n = 0u64;
    c.bench_function("trace: 12 spans recorded and shipped to the spans file", |b| {
        b.iter(|| {
            n += 1;
            one_call(n);
            rt.block_on(shared::telemetry::ship());
        })
    });
    let _ = std::fs::remove_file(&spans_file);
}

criterion_group!(benches, bench);
criterion_main!(benches);
