//! `audit session <sessionId>` and `audit verify <file|dir>...`; see the README ("Audit").

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use audit::{AuditError, parse_journal, read_lines, read_spans, render, session_records, timeline};
use clap::{Arg, ArgAction, Command};
use shared::audit::LocalChainMac;
use shared::audit::verify::{Keyring, verify_lines};

fn cli() -> Command {
    Command::new("audit")
        .about("Reconstruct a session from audit records; verify audit chains")
        .subcommand_required(true)
        .subcommand(
            Command::new("session")
                .about("Print the timeline of one agent session")
                .arg(Arg::new("session_id").required(true))
                .arg(Arg::new("json").long("json").action(ArgAction::SetTrue).help("JSON for machines"))
                .arg(
                    Arg::new("log")
                        .long("log")
                        .action(ArgAction::Append)
                        .help("function log file or directory (default: $STACK_DIR/logs/lambda.log)"),
                )
                .arg(Arg::new("journal").long("journal").help(
                    "FHIR journal: a URL or a file (default: http://127.0.0.1:$FHIR_PORT/__journal; `none` to skip)",
                ))
                .arg(
                    Arg::new("spans")
                        .long("spans")
                        .help("local span file (default: $STACK_DIR/logs/spans.jsonl if present)"),
                )
                .arg(Arg::new("aws_log_group").long("aws-log-group").action(ArgAction::Append).help(
                    "read the records from these CloudWatch log groups with Logs Insights (AWS credentials and \
                     region from the environment) instead of --log; the journal defaults to none",
                ))
                .arg(
                    Arg::new("hours")
                        .long("hours")
                        .value_parser(clap::value_parser!(u64).range(1..=2160))
                        .default_value("168")
                        .help("with --aws-log-group: how far back to query"),
                ),
        )
        .subcommand(
            Command::new("verify")
                .about("Check audit chains: sequence gaps, hash chain, keyed checkpoints; exit 1 on any finding")
                .arg(Arg::new("paths").required(true).action(ArgAction::Append).help("log files or directories"))
                .arg(
                    Arg::new("key_file")
                        .long("key-file")
                        .help("local MAC key (64 hex digits); default $AUDIT_MAC_KEY_FILE"),
                )
                .arg(Arg::new("kms_key").long("kms-key").action(ArgAction::Append).help(
                    "KMS HMAC key ARN whose checkpoints are checked with VerifyMac (AWS credentials from the \
                     environment)",
                ))
                .arg(
                    Arg::new("open_tail")
                        .long("open-tail-ok")
                        .action(ArgAction::SetTrue)
                        .help("a live log: records after the last checkpoint are not a finding"),
                )
                .arg(Arg::new("json").long("json").action(ArgAction::SetTrue)),
        )
}

/// The AWS SDK configuration from the environment (`AWS_REGION`, credentials, `AWS_ENDPOINT_URL` for moto).
async fn sdk() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await
}

fn stack_dir() -> PathBuf {
    std::env::var_os("STACK_DIR").map_or_else(|| PathBuf::from(".local-stack"), PathBuf::from)
}

async fn journal(source: Option<&String>) -> Result<Vec<audit::JournalEntry>, AuditError> {
    let default =
        format!("http://127.0.0.1:{}/__journal", std::env::var("FHIR_PORT").unwrap_or_else(|_| "8103".to_owned()));
    let source = source.cloned().unwrap_or(default);
    if source == "none" {
        return Ok(Vec::new());
    }
    let text = if source.starts_with("http://") || source.starts_with("https://") {
        let response = reqwest::get(&source).await.map_err(|_| AuditError::Journal)?;
        response.error_for_status().map_err(|_| AuditError::Journal)?.text().await.map_err(|_| AuditError::Journal)?
    } else {
        std::fs::read_to_string(&source).map_err(|_| AuditError::Read(source.clone()))?
    };
    parse_journal(&text)
}

async fn session(args: &clap::ArgMatches) -> Result<ExitCode, AuditError> {
    let session_id = args.get_one::<String>("session_id").cloned().unwrap_or_default();
    let logs: Vec<PathBuf> = match args.get_many::<String>("log") {
        Some(paths) => paths.map(PathBuf::from).collect(),
        None => vec![stack_dir().join("logs").join("lambda.log")],
    };
    let groups: Vec<String> = args.get_many::<String>("aws_log_group").into_iter().flatten().cloned().collect();
    let (lines, journal_source) = if groups.is_empty() {
        (read_lines(&logs)?, args.get_one::<String>("journal").cloned())
    } else {
        let client = aws_sdk_cloudwatchlogs::Client::new(&sdk().await);
        let hours = args.get_one::<u64>("hours").copied().unwrap_or(168);
        let lines = audit::aws::session_lines(&client, &groups, &session_id, hours).await?;
        (lines, Some(args.get_one::<String>("journal").cloned().unwrap_or_else(|| "none".to_owned())))
    };
    let records = session_records(&lines, &session_id);
    let journal = journal(journal_source.as_ref()).await?;
    // The local stack's spans file is the default only for the local stack's records.
    let spans_path = args.get_one::<String>("spans").map(PathBuf::from).or_else(|| {
        let default = stack_dir().join("logs").join("spans.jsonl");
        (groups.is_empty() && default.is_file()).then_some(default)
    });
    let spans = match spans_path {
        Some(path) => read_spans(&path, &session_id)?,
        None => Vec::new(),
    };
    let timeline = timeline(&session_id, &records, &journal, &spans);
    if args.get_flag("json") {
        println!("{}", serde_json::to_string_pretty(&timeline).unwrap_or_default());
    } else {
        print!("{}", render(&timeline));
    }
    Ok(if timeline.calls.is_empty() { ExitCode::from(3) } else { ExitCode::SUCCESS })
}

async fn verify(args: &clap::ArgMatches) -> Result<ExitCode, String> {
    let paths: Vec<PathBuf> = args.get_many::<String>("paths").into_iter().flatten().map(PathBuf::from).collect();
    let mut keys = Keyring::default();
    let key_file = args.get_one::<String>("key_file").cloned().or_else(|| std::env::var("AUDIT_MAC_KEY_FILE").ok());
    if let Some(file) = key_file {
        let text = std::fs::read_to_string(&file).map_err(|_| format!("the key file `{file}` could not be read"))?;
        let key = LocalChainMac::from_hex(&text).map_err(|e| e.to_string())?;
        keys = keys.with(Arc::new(key));
    }
    let kms_keys: Vec<String> = args.get_many::<String>("kms_key").into_iter().flatten().cloned().collect();
    if !kms_keys.is_empty() {
        let client = aws_sdk_kms::Client::new(&sdk().await);
        for key in kms_keys {
            keys = keys.with(Arc::new(shared_aws::kms::KmsChainMac::new(client.clone(), key)));
        }
    }
    keys.open_tail_ok = args.get_flag("open_tail");
    let lines = read_lines(&paths).map_err(|e| e.to_string())?;
    let report = verify_lines(lines, &keys).await;
    if args.get_flag("json") {
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        println!(
            "{} record(s), {} instance(s), {} duplicate(s), {} version-1 record(s) not checkable",
            report.records,
            report.instances.len(),
            report.duplicates,
            report.legacy_records
        );
        for instance in &report.instances {
            println!(
                "  instance {}: {} line(s), {} checkpoint(s), {} .. {}",
                instance.instance_id, instance.records, instance.checkpoints, instance.first, instance.last
            );
        }
        for finding in &report.findings {
            let at = finding.position.as_ref().map_or_else(|| "-".to_owned(), ToString::to_string);
            println!("{at}: {:?} [{}]: {}", finding.kind, finding.instance_id, finding.detail);
        }
        println!("{} finding(s)", report.findings.len());
    }
    Ok(if report.findings.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

#[tokio::main]
async fn main() -> ExitCode {
    let matches = cli().get_matches();
    let result = match matches.subcommand() {
        Some(("session", args)) => session(args).await.map_err(|e| e.to_string()),
        Some(("verify", args)) => verify(args).await,
        _ => Err("unknown command".to_owned()),
    };
    result.unwrap_or_else(|message| {
        eprintln!("audit: {message}");
        ExitCode::from(2)
    })
}
