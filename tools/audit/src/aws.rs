//! The session's audit records on AWS: a CloudWatch Logs Insights query over the functions' log groups
//! ("Analyzing log data with CloudWatch Logs Insights"; StartQuery / GetQueryResults API reference).
//!
//! The query filters on `record_type` and `session_id`; the rows are filtered again here, so a store that
//! ignores the filter (moto's Logs Insights implements `fields`, `sort` and `limit` only) cannot put another
//! session's records into the timeline.

use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatchlogs::Client;
use aws_sdk_cloudwatchlogs::types::QueryStatus;
use serde_json::Value;
use shared::audit::verify::{Located, Position};

use crate::AuditError;

/// At most this many rows (StartQuery's `limit` maximum).
const MAX_ROWS: i32 = 10_000;
/// How long the command waits for the query.
const QUERY_WAIT: Duration = Duration::from_secs(60);

/// The Logs Insights query of one session's audit records. The id is a validated session id (its charset
/// keeps it inside the quoted string).
pub fn query_string(session_id: &str) -> String {
    format!(
        "fields @timestamp, @logStream, @message | filter record_type = \"tool_audit\" and session_id = \
         \"{session_id}\" | sort @timestamp asc | limit {MAX_ROWS}"
    )
}

/// The audit lines of `session_id` in `log_groups` over the last `hours`, each positioned by its log stream.
pub async fn session_lines(
    client: &Client,
    log_groups: &[String],
    session_id: &str,
    hours: u64,
) -> Result<Vec<Located>, AuditError> {
    let session = shared::session::SessionId::parse(session_id).map_err(|_| AuditError::SessionId)?;
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let start = now.saturating_sub(hours.saturating_mul(3600));
    let started = client
        .start_query()
        .set_log_group_names(Some(log_groups.to_vec()))
        .start_time(i64::try_from(start).unwrap_or(0))
        // Epoch seconds, compared with millisecond event times: a minute ahead keeps this second's records.
        .end_time(i64::try_from(now.saturating_add(60)).unwrap_or(i64::MAX))
        .query_string(query_string(session.as_str()))
        .limit(MAX_ROWS)
        .send()
        .await
        .map_err(|e| AuditError::Logs(code(&e)))?;
    let query_id = started.query_id().ok_or_else(|| AuditError::Logs("no query id".into()))?.to_owned();
    let deadline = std::time::Instant::now() + QUERY_WAIT;
    loop {
        let results =
            client.get_query_results().query_id(&query_id).send().await.map_err(|e| AuditError::Logs(code(&e)))?;
        match results.status() {
            Some(QueryStatus::Complete) => return Ok(lines_of(results.results(), session.as_str())),
            Some(QueryStatus::Scheduled | QueryStatus::Running) | None => {}
            Some(other) => return Err(AuditError::Logs(format!("query ended {}", other.as_str()))),
        }
        if std::time::Instant::now() > deadline {
            return Err(AuditError::Logs("query did not complete in 60 s".into()));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Rows → audit lines of the session: `@message` as the line (unwrapped when Lambda's JSON log format put
/// the function's line in a `message` string), positioned `logs:<stream>:<row>`.
fn lines_of(rows: &[Vec<aws_sdk_cloudwatchlogs::types::ResultField>], session_id: &str) -> Vec<Located> {
    let mut out = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let field = |name: &str| row.iter().find(|f| f.field() == Some(name)).and_then(|f| f.value());
        let Some(message) = field("@message") else { continue };
        let text = unwrap_message(message);
        let Some((_, record)) = shared::audit::verify::audit_json(&text) else { continue };
        if record.get("session_id").and_then(Value::as_str) != Some(session_id) {
            continue;
        }
        let stream = field("@logStream").unwrap_or("?");
        out.push(Located { position: Position { source: format!("logs:{stream}"), line: i + 1 }, text });
    }
    out
}

fn unwrap_message(message: &str) -> String {
    let inner = serde_json::from_str::<Value>(message)
        .ok()
        .filter(|v| v.get("record_type").is_none())
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned));
    inner.unwrap_or_else(|| message.to_owned())
}

/// The service's error code, never its message.
fn code<E: aws_sdk_cloudwatchlogs::error::ProvideErrorMetadata>(error: &E) -> String {
    error.code().unwrap_or("request failed").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapped_line_is_unwrapped_and_a_plain_one_kept() {
        let record = r#"{"record_type":"tool_audit","session_id":"s-1"}"#;
        assert_eq!(unwrap_message(record), record);
        let wrapped = serde_json::json!({"timestamp": "t", "message": record}).to_string();
        assert_eq!(unwrap_message(&wrapped), record);
    }
}
