//! Wall time of one summary for the largest shared patient against the local FHIR server, next to the
//! slowest single FHIR search it issues. Needs the local stack's FHIR server (`local/stack.sh up`, or
//! `FHIR_BASE_URL`); run with `cargo bench -p patient-summary --bench summary_wall`.
//!
//! Prints medians over `BENCH_ITERATIONS` (default 30) runs; the machine is shared and noisy, so the
//! ratio is what to read.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code: a failed step is a failed test")]

use std::time::{Duration, Instant};

use bytes::Bytes;
use patient_summary::{PatientSummary, fetch};
use serde_json::json;
use shared::audit::MemoryAuditSink;
use shared::fhir::{FhirEndpoint, FhirId, FhirStore, HttpFhirStore, SearchQuery, Signing};
use shared::runtime::{Handler, Invocation};
use shared::session::{SessionContext, SessionId};
use shared::testing::TokenSpec;
use shared::tool::Shell;
use shared::writer::LocalWriter;

/// Fletcher Hyatt: the largest shared bundle (3.9 MB).
const PATIENT: &str = "c5ed5d78-5b3f-4a75-bdfb-5f318b068a20";
/// The local seed makes this practitioner Fletcher Hyatt's general practitioner.
const PRACTITIONER: &str = "bfa88186-6c31-4534-93b0-77674d9e5739";

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let base = std::env::var("FHIR_BASE_URL").unwrap_or_else(|_| "http://127.0.0.1:8103/fhir".to_owned());
    let iterations: usize = std::env::var("BENCH_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(30);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let http = reqwest::Client::new();
        let store = HttpFhirStore::new(http, FhirEndpoint::parse(&base).unwrap(), Signing::None);
        let action = PatientSummary { store: store.clone(), writer: LocalWriter, care_lookback_days: 730, as_of: None };
        let tool = Shell::for_tests(action, MemoryAuditSink::default(), "bench", "org-synthea-ma");
        let token = TokenSpec { org: Some("org-synthea-ma".into()), ..TokenSpec::clinician(PRACTITIONER) }.mint();
        let event = json!({"tool": "patient_summary", "session_id": "bench-session-0001", "identity_token": token, "arguments": {"patient_id": PATIENT}});
        let payload = Bytes::from(serde_json::to_vec(&event).unwrap());
        let invocation = || Invocation {
            request_id: "bench".into(),
            deadline: Instant::now() + Duration::from_secs(30),
            payload: payload.clone(),
            client_context: None,
            trace_header: None,
        };

        // Warm up connections and the server's caches, and check the call really succeeds.
        let reply = tool.call(invocation()).await;
        assert_eq!(reply["ok"], true, "the bench call failed; is the local FHIR server up at {base}? {reply}");

        let patient = FhirId::parse(PATIENT).unwrap();
        let q = fetch::chart_queries(&patient);
        // The relationship search as `shared::fhir::relationship` sends it. The practitioner is this patient's GP,
        // so the Encounter-by-participant search is never sent and is not in the list.
        let relationship = SearchQuery::new("Patient")
            .patient(&patient)
            .param("general-practitioner", format!("Practitioner/{PRACTITIONER}"))
            .elements(&["id", "generalPractitioner"])
            .count(1)
            .pages(1);
        let queries = [
            ("Patient (relationship)", relationship),
            ("Patient", q.patient),
            ("Condition", q.conditions),
            ("MedicationRequest", q.medications),
            ("AllergyIntolerance", q.allergies),
            ("Observation (labs)", q.labs),
            ("Observation (vitals)", q.vitals),
            ("Immunization", q.immunizations),
            ("Encounter", q.encounters),
            ("Procedure (screening)", q.screenings),
        ];
        let session = SessionContext::new(SessionId::parse("bench-session-0001").unwrap(), "bench", Instant::now() + Duration::from_secs(3600));
        // Interleaved: each round runs the summary, then every search alone, so a change in the machine's load
        // moves both sides of a round's ratio together; the median of the rounds' ratios is the figure to read.
        let mut whole = Vec::new();
        let mut singles: Vec<Vec<Duration>> = vec![Vec::new(); queries.len()];
        let mut counts = vec![0usize; queries.len()];
        let mut round_ratios = Vec::new();
        for _ in 0..iterations {
            let started = Instant::now();
            let reply = tool.call(invocation()).await;
            let summary = started.elapsed();
            assert_eq!(reply["ok"], true);
            whole.push(summary);
            let mut slowest_this_round = Duration::ZERO;
            for (i, (_, query)) in queries.iter().enumerate() {
                let started = Instant::now();
                counts[i] = store.search(&session, query).await.unwrap().len();
                let took = started.elapsed();
                singles[i].push(took);
                slowest_this_round = slowest_this_round.max(took);
            }
            round_ratios.push(summary.as_secs_f64() / slowest_this_round.as_secs_f64());
        }
        println!("search                      median ms  resources");
        let mut slowest = (Duration::ZERO, "");
        let mut sum = Duration::ZERO;
        for (i, (name, _)) in queries.iter().enumerate() {
            let m = median(singles[i].clone());
            println!("{name:<28}{:>9.2}  {:>9}", ms(m), counts[i]);
            sum += m;
            if m > slowest.0 {
                slowest = (m, name);
            }
        }
        let whole = median(whole);
        round_ratios.sort_by(f64::total_cmp);
        println!();
        println!("summary wall time (median of {iterations}): {:.2} ms", ms(whole));
        println!("slowest single search ({}): {:.2} ms", slowest.1, ms(slowest.0));
        println!("ratio of the medians: {:.2}x (goal <= 1.3x)", whole.as_secs_f64() / slowest.0.as_secs_f64());
        println!(
            "ratio per round (summary / that round's slowest search): median {:.2}x, quartiles {:.2}x-{:.2}x (goal <= 1.3x)",
            round_ratios[round_ratios.len() / 2],
            round_ratios[round_ratios.len() / 4],
            round_ratios[round_ratios.len() * 3 / 4],
        );
        // A server that serves one search at a time makes the wall time approach this sum, however
        // concurrently the tool asks.
        println!("sum of all single searches: {:.2} ms", ms(sum));

        // The same searches from a plain Python httpx + asyncio.gather client against the same server.
        let spec = json!({
            "base": format!("{}/", base.trim_end_matches('/')),
            "session_id": "bench-session-0001",
            "queries": queries.iter().map(|(_, q)| json!({
                "type": q.resource_type,
                "form": q.form_body(),
                "max_pages": q.max_pages,
            })).collect::<Vec<_>>(),
        });
        let repo = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
        let spec_path = std::env::temp_dir().join("bench_fhir_fanout_queries.json");
        std::fs::write(&spec_path, spec.to_string()).unwrap();
        let python = std::env::var("BENCH_PYTHON").unwrap_or_else(|_| format!("{repo}/.venv/bin/python"));
        let output = std::process::Command::new(&python)
            .arg(format!("{repo}/local/bench_fhir_fanout.py"))
            .arg(&spec_path)
            .arg(iterations.to_string())
            .output();
        match output {
            Ok(out) if out.status.success() => {
                let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                let python_ms = line["median_ms"].as_f64().unwrap();
                println!("python httpx + asyncio.gather, same searches (median of {iterations}): {python_ms:.2} ms");
                println!("ratio vs python: {:.2}x (goal <= 1.0x)", ms(whole) / python_ms);
            }
            Ok(out) => println!("python baseline failed: {}", String::from_utf8_lossy(&out.stderr)),
            Err(e) => println!("python baseline not run ({python}: {e}); `local/stack.sh install` puts httpx in .venv"),
        }
    });
}
