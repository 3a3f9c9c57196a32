//! Dates in replies are ISO 8601 strings, never `time`'s default serde form (`[year, ordinal day]`).

use serde::Serializer;
use serde_json::Value;
use time::Date;

/// `#[serde(serialize_with = "shared::dates::iso")]`: `1958-06-22`.
pub fn iso<S: Serializer>(date: &Date, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&format_args!("{:04}-{:02}-{:02}", date.year(), u8::from(date.month()), date.day()))
}

/// `#[serde(serialize_with = "shared::dates::iso_opt")]`: the date, or `null`.
pub fn iso_opt<S: Serializer>(date: &Option<Date>, serializer: S) -> Result<S::Ok, S::Error> {
    match date {
        Some(date) => iso(date, serializer),
        None => serializer.serialize_none(),
    }
}

/// Where a reply carries a date in a form other than a string: the JSON paths of arrays shaped like
/// `[year, ordinal]` and of date-named fields holding a number or an array. Tests run every reply through it.
pub fn non_string_dates(value: &Value) -> Vec<String> {
    let mut found = Vec::new();
    walk(value, "$", &mut found);
    found
}

fn date_named(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["date", "as_of", "_at", "onset", "abated", "recorded", "effective", "issued", "authored", "timestamp", "birth"]
        .iter()
        .any(|needle| key.contains(needle))
}

fn year_ordinal(items: &[Value]) -> bool {
    matches!(items, [Value::Number(y), Value::Number(d)]
        if y.as_i64().is_some_and(|y| (1800..=2200).contains(&y)) && d.as_i64().is_some_and(|d| (1..=366).contains(&d)))
}

fn walk(value: &Value, path: &str, found: &mut Vec<String>) {
    match value {
        Value::Array(items) => {
            if year_ordinal(items) {
                found.push(path.to_owned());
            }
            for (i, item) in items.iter().enumerate() {
                walk(item, &format!("{path}[{i}]"), found);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let here = format!("{path}.{key}");
                if date_named(key) && matches!(item, Value::Number(_) | Value::Array(_)) {
                    found.push(here.clone());
                }
                walk(item, &here, found);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde::Serialize;
    use serde_json::json;
    use time::macros::date;

    use super::*;

    #[derive(Serialize)]
    struct Evidence {
        #[serde(serialize_with = "iso_opt")]
        date: Option<Date>,
        #[serde(serialize_with = "iso")]
        as_of: Date,
    }

    #[test]
    fn dates_serialize_as_iso_strings() {
        let value = serde_json::to_value(Evidence { date: Some(date!(1958 - 06 - 22)), as_of: date!(2026 - 01 - 02) })
            .unwrap_or_default();
        assert_eq!(value, json!({"date": "1958-06-22", "as_of": "2026-01-02"}));
        assert!(non_string_dates(&value).is_empty());
    }

    #[test]
    fn finds_dates_serialized_as_arrays_or_numbers() {
        let bad = json!({"criteria": [{"evidence": [{"date": [1958, 173]}]}], "issued_at": 1_700_000_000, "n": [3, 4]});
        assert_eq!(
            non_string_dates(&bad),
            vec!["$.criteria[0].evidence[0].date", "$.criteria[0].evidence[0].date", "$.issued_at"]
        );
    }
}
