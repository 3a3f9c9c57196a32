//! Coder latency per note and the cold-start cost of the embedded code table.
//!
//! Prints p50/p95 per note over the dev cases in `../shared/icd10` (and per KB of note), then criterion
//! figures for parsing the table and reading the embedded code index, each from scratch as at cold start.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use icd10_coding::code_data;
use icd10_coding::coder::{Index, code_note_with};
use icd10_coding::table::CodeTable;

/// The 14 dev notes and the 100 of the second set (145 B to 2.1 KB; `DEV_CASES` names other files, comma-separated).
fn dev_notes() -> Vec<String> {
    let shared = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/icd10/");
    let paths =
        std::env::var("DEV_CASES").unwrap_or_else(|_| format!("{shared}dev_cases.jsonl,{shared}dev_cases_2.jsonl"));
    paths
        .split(',')
        .flat_map(|path| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            text.lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter_map(|v| v["note"].as_str().map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn latency_report(table: &CodeTable, index: &Index, notes: &[String]) {
    let mut per_note = Vec::new();
    let mut per_kb = Vec::new();
    for _ in 0..20 {
        for note in notes {
            let t = Instant::now();
            black_box(code_note_with(table, index, black_box(note)));
            let us = t.elapsed().as_secs_f64() * 1e6;
            per_note.push(us);
            per_kb.push(us / (note.len() as f64 / 1024.0));
        }
    }
    per_note.sort_by(f64::total_cmp);
    per_kb.sort_by(f64::total_cmp);
    println!(
        "coder latency over {} notes x20: per note p50 {:.0} us, p95 {:.0} us; per KB p50 {:.0} us, p95 {:.0} us \
         (goal p50 <= 2000 us/KB)",
        notes.len(),
        percentile(&per_note, 0.5),
        percentile(&per_note, 0.95),
        percentile(&per_kb, 0.5),
        percentile(&per_kb, 0.95)
    );
}

fn cold_start_report(text: &'static str) {
    let (mut inflate, mut parse, mut read, mut ready, mut build) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..15 {
        let t = Instant::now();
        black_box(code_data::inflate());
        let inflated = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let table = CodeTable::parse(text).ok();
        let parsed = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        black_box(code_data::inflate_index());
        black_box(Index::read_embedded());
        black_box(icd10_coding::coder::read_index_paths());
        let loaded = t.elapsed().as_secs_f64() * 1e3;
        inflate.push(inflated);
        parse.push(parsed);
        read.push(loaded);
        ready.push(inflated + parsed + loaded);
        let t = Instant::now();
        if let Some(table) = &table {
            black_box(Index::build(table));
        }
        build.push(t.elapsed().as_secs_f64() * 1e3);
    }
    for v in [&mut inflate, &mut parse, &mut read, &mut ready, &mut build] {
        v.sort_by(f64::total_cmp);
    }
    println!(
        "cold start: code data ready (inflate + table parse + embedded index read, on a background thread) median \
         {:.1} ms (goal <= 30 ms): inflate {:.1} ms, parse {:.1} ms, index inflate + read (with the Alphabetic Index paths) {:.1} ms; building the index from \
         the table instead (what build.rs does) {:.1} ms",
        percentile(&ready, 0.5),
        percentile(&inflate, 0.5),
        percentile(&parse, 0.5),
        percentile(&read, 0.5),
        percentile(&build, 0.5)
    );
}

fn benches(c: &mut Criterion) {
    let Ok(text) = code_data::text() else { return };
    let Ok(table) = CodeTable::parse(text) else { return };
    let Some(index) = Index::read_embedded() else { return };
    let notes = dev_notes();
    cold_start_report(text);
    if let Some(note) = notes.get(5) {
        latency_report(&table, &index, &notes);
        c.bench_function("code one dev note (d06)", |b| b.iter(|| code_note_with(&table, &index, black_box(note))));
    }
    let mut group = c.benchmark_group("cold start");
    group.sample_size(10).measurement_time(Duration::from_secs(5));
    group.bench_function("inflate code table", |b| b.iter(code_data::inflate));
    group.bench_function("parse code table", |b| b.iter(|| CodeTable::parse(black_box(text))));
    group.bench_function("inflate embedded index", |b| b.iter(code_data::inflate_index));
    group.bench_function("read embedded index", |b| b.iter(Index::read_embedded));
    group.bench_function("inflate and read Index walk paths", |b| b.iter(icd10_coding::coder::read_index_paths));
    group.finish();
}

criterion_group!(coder, benches);
criterion_main!(coder);
