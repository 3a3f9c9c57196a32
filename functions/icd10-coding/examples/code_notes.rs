//! Codes notes from a JSON-lines file (`{"id", "note"}` per line) with the deterministic coder and prints
//! predictions in the scorer's format (`{"id", "codes"}`), for `scripts/score_dev_cases.sh`.
//!
//! `--explain` adds the evidence quotes and the skipped concepts on stderr.

use std::io::{BufRead, Write};

use icd10_coding::coder::code_note;
use icd10_coding::table::CodeTable;

fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: code_notes <cases.jsonl> [--explain]");
        return std::process::ExitCode::FAILURE;
    };
    let explain = args.any(|a| a == "--explain");
    let Ok(table) = CodeTable::embedded() else {
        eprintln!("code table failed to load");
        return std::process::ExitCode::FAILURE;
    };
    let Ok(file) = std::fs::File::open(&path) else {
        eprintln!("cannot open `{path}`");
        return std::process::ExitCode::FAILURE;
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for line in std::io::BufReader::new(file).lines().map_while(Result::ok) {
        let Ok(case) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
        let (Some(id), Some(note)) = (case["id"].as_str(), case["note"].as_str()) else { continue };
        let coding = code_note(table, note);
        let codes: Vec<&str> = coding.proposals.iter().map(|p| p.code).collect();
        let _ = writeln!(out, "{}", serde_json::json!({ "id": id, "codes": codes }));
        if explain {
            eprintln!("== {id}");
            for p in &coding.proposals {
                let quotes: Vec<&str> = p.evidence.iter().map(|s| &note[s.start..s.end]).collect();
                eprintln!("  + {} {:?} {:?} {:.2} {:?}", p.code, p.basis, p.assertion, p.match_strength, quotes);
            }
            for s in &coding.skipped {
                eprintln!("  - {:?} {:?} {:?}", s.code, s.reason, &note[s.span.start..s.span.end]);
            }
        }
    }
    std::process::ExitCode::SUCCESS
}
