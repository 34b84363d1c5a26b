//! How the CLI prints: tables and aligned fields for people, the admin API's JSON for scripts,
//! durations and times a person reads at a glance; and standard output written so that a
//! closed pipe (`roster provider list | head -1`) ends the command quietly.

use comfy_table::{presets, CellAlignment, ContentArrangement, Table};
use serde_json::Value;
use std::io::Write;
use std::time::Duration;

/// What a command prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Writes `text` and a newline to standard output.
///
/// Fails when standard output is closed or broken; `main` ends quietly on a broken pipe.
pub fn emit(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    if !text.ends_with('\n') {
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// Writes a JSON value, indented, to standard output.
pub fn emit_json(v: &Value) -> std::io::Result<()> {
    emit(&serde_json::to_string_pretty(v).map_err(std::io::Error::other)?)
}

/// A table with a header row and columns aligned by spaces, without borders; numeric
/// columns (named in `right`) aligned right.
pub fn table(headers: &[&str], right: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut t = Table::new();
    t.load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(headers.iter().map(|h| h.to_uppercase()));
    for row in rows {
        t.add_row(row);
    }
    for (i, h) in headers.iter().enumerate() {
        if let Some(c) = t.column_mut(i) {
            c.set_padding((0, 2));
            if right.contains(h) {
                c.set_cell_alignment(CellAlignment::Right);
            }
        }
    }
    trim_lines(&t.to_string())
}

/// Label and value pairs, one a line, the values aligned.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    pairs
        .iter()
        .map(|(k, v)| format!("{k:width$}  {v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn trim_lines(s: &str) -> String {
    s.lines().map(str::trim_end).collect::<Vec<_>>().join("\n")
}

/// A duration as a person reads it: `350ms`, `4.2s`, `3m 12s`, `2h 5m`.
pub fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1_000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        let rounded = if ms < 3_600_000 {
            Duration::from_secs(d.as_secs())
        } else {
            Duration::from_secs(d.as_secs() / 60 * 60)
        };
        humantime::format_duration(rounded).to_string()
    }
}

/// A JSON string field, or `-` when it is absent or null.
pub fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An RFC 3339 time from the API shown to the second, in UTC: `2026-12-04 04:10:00Z`.
pub fn time(v: &Value) -> String {
    match v
        .as_str()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
    {
        Some(t) => t
            .with_timezone(&chrono::Utc)
            .format("%Y-%m-%d %H:%M:%SZ")
            .to_string(),
        None => text(v),
    }
}

/// Seconds between two RFC 3339 times from the API, as a duration.
pub fn between(start: &Value, end: &Value) -> Option<Duration> {
    let parse = |v: &Value| {
        v.as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
    };
    (parse(end)? - parse(start)?).to_std().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(duration(Duration::from_micros(4_244_394)), "4.2s");
        assert_eq!(duration(Duration::from_micros(350_900)), "350ms");
        assert_eq!(duration(Duration::from_millis(192_500)), "3m 12s");
        assert_eq!(duration(Duration::from_secs(7_530)), "2h 5m");
    }

    #[test]
    fn a_table_aligns_columns_under_upper_case_headers() {
        let t = table(
            &["name", "lag"],
            &["lag"],
            vec![
                vec!["slack".into(), "3".into()],
                vec!["aws".into(), "120".into()],
            ],
        );
        assert_eq!(t, "NAME   LAG\nslack    3\naws    120");
    }
}
