//! Time templates in task arguments: `{now}`, `{now-24h}`, `{now+1d}`.
//!
//! 1. [`render`]: replace every template inside every string of a JSON value
//!    (nested arrays and objects included) with the time it names, written
//!    `YYYY-MM-DD HH:MM:SS` in UTC — the posts DB timestamp format — so a
//!    job's window is relative to its run.
//! 2. `now` is the run's *tick* (its scheduled time), not the moment the
//!    message happens to leave: consecutive runs' windows then tile exactly,
//!    with no gap or overlap from wake-up jitter, and every beat renders the
//!    same arguments for the same run.
//! 3. Braces that do not start with `now` followed by `}`, `+` or `-` are
//!    left alone (`{user}`, `{nowhere}`); a malformed offset (`{now-3x}`) is
//!    an error, reported when the schedule is loaded.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::schedule::parse_duration;
use super::BeatError;

/// The format templates render to.
pub const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// `value` with every time template rendered for the run at `now`.
///
/// # Errors
/// [`BeatError::Template`] for a malformed template.
pub fn render(value: &Value, now: DateTime<Utc>) -> Result<Value, BeatError> {
    Ok(match value {
        Value::String(s) => Value::String(render_str(s, now)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| render(v, now))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render(v, now)?)))
                .collect::<Result<_, BeatError>>()?,
        ),
        other => other.clone(),
    })
}

fn render_str(text: &str, now: DateTime<Utc>) -> Result<String, BeatError> {
    if !text.contains("{now") {
        return Ok(text.to_owned());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{now") {
        out.push_str(&rest[..open]);
        let candidate = &rest[open..];
        let after = candidate["{now".len()..].trim_start();
        let is_template =
            after.starts_with('}') || after.starts_with('+') || after.starts_with('-');
        if !is_template {
            out.push_str("{now");
            rest = &candidate["{now".len()..];
            continue;
        }
        let Some(close) = candidate.find('}') else {
            return Err(BeatError::Template {
                template: candidate.to_owned(),
                reason: "missing the closing `}`".into(),
            });
        };
        let template = &candidate[..=close];
        out.push_str(&at(template, now)?.format(TIME_FORMAT).to_string());
        rest = &candidate[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The time `{now±offset}` names.
fn at(template: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, BeatError> {
    let inner = template[1..template.len() - 1]["now".len()..].trim();
    if inner.is_empty() {
        return Ok(now);
    }
    let err = |reason: String| BeatError::Template {
        template: template.to_owned(),
        reason,
    };
    let (sign, offset) = inner.split_at(1);
    let offset = parse_duration(offset.trim()).map_err(|e| match e {
        BeatError::Duration { reason, .. } => err(format!("offset: {reason}")),
        other => err(other.to_string()),
    })?;
    let offset = chrono::Duration::from_std(offset).map_err(|_| err("offset too large".into()))?;
    let shifted = if sign == "+" {
        now.checked_add_signed(offset)
    } else {
        now.checked_sub_signed(offset)
    };
    shifted.ok_or_else(|| err("the time is out of range".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_offsets_inside_nested_values() -> Result<(), BeatError> {
        let now: DateTime<Utc> = "2024-03-01T12:00:00Z".parse().unwrap_or_default();
        let args = json!([10, "{now-24h}", "{now}", {"until": "up to {now+1d} ok"}, "{now - 15m}"]);
        assert_eq!(
            render(&args, now)?,
            json!([
                10,
                "2024-02-29 12:00:00",
                "2024-03-01 12:00:00",
                {"until": "up to 2024-03-02 12:00:00 ok"},
                "2024-03-01 11:45:00"
            ])
        );
        Ok(())
    }

    #[test]
    fn leaves_other_braces_and_refuses_bad_offsets() {
        let now = Utc::now();
        let plain = json!(["{user}", "{nowhere}", "my_worker:scheduled:top"]);
        assert_eq!(render(&plain, now).ok(), Some(plain));
        for bad in ["{now-3x}", "{now-}", "{now+1h", "{now*2}x{now-}"] {
            let err = render(&json!(bad), now)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains("template"), "{bad}: {err}");
        }
    }
}
