//! The schedule file (TOML).
//!
//! 1. [`load_file`] / [`parse`]: read `[[schedule]]` tables into
//!    [`ScheduleEntry`] values, checking every field.
//! 2. Errors name the file, the entry (by name, or `#N` when it has none)
//!    and the field, and say what is expected.
//!
//! ```toml
//! timezone = "Europe/Berlin"     # optional default for cron and naive `at`
//!
//! [[schedule]]
//! name = "top-entities"          # unique; the key of its stored last run
//! task = "tasks.count_top_named_entities"
//! every = "300s"                 # or: cron = "*/5 * * * *"  or: at = "2025-01-01 09:00:00"
//! timezone = "UTC"               # cron / at only; default: the file's, else UTC
//! args = [10, "{now-24h}", "{now}", "my_worker:scheduled:top_named_entities"]
//! kwargs = {}
//! queue = "celery"               # optional; also priority = 0..9
//! expires = "240s"               # optional: not run if not started by then
//! catch_up = "once"              # or "skip": what to do with runs missed while down
//! ```

use std::path::Path;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde_json::{Map, Value};

use super::schedule::parse_duration;
use super::{template, BeatError, CatchUp, Schedule, ScheduleEntry};

const ENTRY_KEYS: [&str; 13] = [
    "name", "task", "every", "cron", "at", "timezone", "args", "kwargs", "queue", "priority",
    "expires", "catch_up", "options",
];

/// Read the schedule file at `path`.
///
/// # Errors
/// [`BeatError::File`] when it cannot be read or an entry is invalid.
pub fn load_file(path: &Path) -> Result<Vec<ScheduleEntry>, BeatError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| BeatError::File {
        path: origin.clone(),
        entry: None,
        field: None,
        reason: format!("cannot read it: {e}"),
    })?;
    parse(&text, &origin)
}

/// Parse schedule file text; `origin` names it in errors.
///
/// # Errors
/// [`BeatError::File`] naming the entry and field at fault.
pub fn parse(text: &str, origin: &str) -> Result<Vec<ScheduleEntry>, BeatError> {
    let file_err = |field: Option<&str>, reason: String| BeatError::File {
        path: origin.to_owned(),
        entry: None,
        field: field.map(str::to_owned),
        reason,
    };
    let table: toml::Table = toml::from_str(text).map_err(|e| file_err(None, e.to_string()))?;
    let mut zone = "UTC".to_owned();
    let mut items = Vec::new();
    for (key, value) in &table {
        match (key.as_str(), value) {
            ("timezone", toml::Value::String(z)) => {
                z.parse::<chrono_tz::Tz>().map_err(|_| {
                    file_err(
                        Some("timezone"),
                        BeatError::UnknownTimeZone(z.clone()).to_string(),
                    )
                })?;
                zone = z.clone();
            }
            ("timezone", _) => {
                return Err(file_err(
                    Some("timezone"),
                    "expected a string such as \"UTC\"".into(),
                ))
            }
            ("schedule", toml::Value::Array(list)) => items = list.clone(),
            ("schedule", _) => {
                return Err(file_err(
                    Some("schedule"),
                    "expected [[schedule]] tables".into(),
                ))
            }
            (other, _) => {
                return Err(file_err(
                    None,
                    format!("unknown key `{other}` (expected `timezone` and [[schedule]] tables)"),
                ))
            }
        }
    }
    let mut entries: Vec<ScheduleEntry> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let toml::Value::Table(t) = item else {
            return Err(file_err(
                Some("schedule"),
                format!("item #{} is not a table", i + 1),
            ));
        };
        let label = match t.get("name") {
            Some(toml::Value::String(n)) if !n.trim().is_empty() => format!("{n:?}"),
            _ => format!("#{}", i + 1),
        };
        let reader = Reader {
            origin,
            label: &label,
            table: t,
            zone: &zone,
        };
        let entry = reader.entry()?;
        if entries.iter().any(|e| e.name() == entry.name()) {
            return Err(reader.err("name", "another entry has the same name".into()));
        }
        entries.push(entry);
    }
    Ok(entries)
}

/// Reads one `[[schedule]]` table.
struct Reader<'a> {
    origin: &'a str,
    label: &'a str,
    table: &'a toml::Table,
    zone: &'a str,
}

impl Reader<'_> {
    fn err(&self, field: &str, reason: String) -> BeatError {
        BeatError::File {
            path: self.origin.to_owned(),
            entry: Some(self.label.to_owned()),
            field: Some(field.to_owned()),
            reason,
        }
    }

    fn string(&self, field: &str) -> Result<Option<&str>, BeatError> {
        match self.table.get(field) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.err(
                field,
                format!("expected a string, found {}", other.type_str()),
            )),
        }
    }

    fn required(&self, field: &str) -> Result<&str, BeatError> {
        match self.string(field)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            _ => Err(self.err(field, "required, and must not be empty".into())),
        }
    }

    fn duration(&self, field: &str) -> Result<Option<std::time::Duration>, BeatError> {
        let text = match self.table.get(field) {
            None => return Ok(None),
            Some(toml::Value::String(s)) => s.clone(),
            Some(toml::Value::Integer(n)) => n.to_string(),
            Some(toml::Value::Float(x)) => x.to_string(),
            Some(other) => {
                return Err(self.err(
                    field,
                    format!(
                        "expected a duration such as \"300s\", found {}",
                        other.type_str()
                    ),
                ))
            }
        };
        parse_duration(&text)
            .map(Some)
            .map_err(|e| self.err(field, e.to_string()))
    }

    fn entry(&self) -> Result<ScheduleEntry, BeatError> {
        if let Some(key) = self
            .table
            .keys()
            .find(|k| !ENTRY_KEYS.contains(&k.as_str()))
        {
            return Err(self.err(
                key,
                format!("unknown field (expected one of: {})", ENTRY_KEYS.join(", ")),
            ));
        }
        if self.table.contains_key("options") {
            return Err(self.err(
                "options",
                "write queue, priority and expires directly in the entry".into(),
            ));
        }
        let name = self.required("name")?;
        let task = self.required("task")?;
        let schedule = self.schedule()?;
        let mut entry = ScheduleEntry::new(name.trim(), task.trim(), schedule);
        let args = match self.table.get("args") {
            None => Vec::new(),
            Some(toml::Value::Array(items)) => items
                .iter()
                .map(to_json)
                .collect::<Result<_, _>>()
                .map_err(|r| self.err("args", r))?,
            Some(other) => {
                return Err(self.err(
                    "args",
                    format!("expected an array, found {}", other.type_str()),
                ))
            }
        };
        template::render(&Value::Array(args.clone()), Utc::now())
            .map_err(|e| self.err("args", e.to_string()))?;
        entry = entry.args(args);
        match self.table.get("kwargs") {
            None => {}
            Some(toml::Value::Table(t)) => {
                let mut kwargs = Map::new();
                for (k, v) in t {
                    kwargs.insert(k.clone(), to_json(v).map_err(|r| self.err("kwargs", r))?);
                }
                template::render(&Value::Object(kwargs.clone()), Utc::now())
                    .map_err(|e| self.err("kwargs", e.to_string()))?;
                entry = entry.kwargs(kwargs);
            }
            Some(other) => {
                return Err(self.err(
                    "kwargs",
                    format!("expected a table, found {}", other.type_str()),
                ))
            }
        }
        if let Some(queue) = self.string("queue")? {
            if queue.trim().is_empty() {
                return Err(self.err("queue", "must not be empty".into()));
            }
            entry = entry.queue(queue.trim());
        }
        match self.table.get("priority") {
            None => {}
            Some(toml::Value::Integer(p)) if (0..=9).contains(p) => {
                entry = entry.priority(*p as u8)
            }
            Some(toml::Value::Integer(p)) => {
                return Err(self.err(
                    "priority",
                    format!("expected 0 (highest) to 9 (lowest), found {p}"),
                ))
            }
            Some(other) => {
                return Err(self.err(
                    "priority",
                    format!("expected an integer 0 to 9, found {}", other.type_str()),
                ))
            }
        }
        if let Some(expires) = self.duration("expires")? {
            entry = entry.expires(expires);
        }
        match self.string("catch_up")? {
            None | Some("once") => {}
            Some("skip") => entry = entry.catch_up(CatchUp::Skip),
            Some(other) => {
                return Err(self.err(
                    "catch_up",
                    format!("expected \"once\" or \"skip\", found {other:?}"),
                ))
            }
        }
        Ok(entry)
    }

    fn schedule(&self) -> Result<Schedule, BeatError> {
        let given: Vec<&str> = ["every", "cron", "at"]
            .into_iter()
            .filter(|k| self.table.contains_key(*k))
            .collect();
        let zone = self.string("timezone")?.unwrap_or(self.zone);
        match given[..] {
            ["every"] => {
                if self.table.contains_key("timezone") {
                    return Err(self.err(
                        "timezone",
                        "applies to `cron` and `at` only; `every` ticks in UTC".into(),
                    ));
                }
                let every = self.duration("every")?.unwrap_or_default();
                Schedule::every(every).map_err(|e| self.err("every", e.to_string()))
            }
            ["cron"] => {
                let expression = self.required("cron")?;
                Schedule::cron(expression, zone).map_err(|e| match e {
                    BeatError::UnknownTimeZone(_) => self.err("timezone", e.to_string()),
                    other => self.err("cron", other.to_string()),
                })
            }
            ["at"] => Ok(Schedule::at(self.at(zone)?)),
            [] => Err(self.err(
                "every",
                "each entry needs one of `every`, `cron` or `at`".into(),
            )),
            _ => Err(self.err(
                given[1],
                format!(
                    "give only one of `every`, `cron` and `at`, found {}",
                    given.join(" and ")
                ),
            )),
        }
    }

    fn at(&self, zone: &str) -> Result<DateTime<Utc>, BeatError> {
        let text = match self.table.get("at") {
            Some(toml::Value::String(s)) => s.trim().to_owned(),
            Some(toml::Value::Datetime(d)) => d.to_string(),
            _ => {
                return Err(self.err(
                    "at",
                    "expected a date and time such as \"2025-01-01 09:00:00\"".into(),
                ))
            }
        };
        for candidate in [text.clone(), text.replacen(' ', "T", 1)] {
            if let Ok(t) = DateTime::parse_from_rfc3339(&candidate) {
                return Ok(t.with_timezone(&Utc));
            }
        }
        let tz = zone.parse::<chrono_tz::Tz>().map_err(|_| {
            self.err(
                "timezone",
                BeatError::UnknownTimeZone(zone.to_owned()).to_string(),
            )
        })?;
        for format in [
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%d %H:%M:%S%.f",
            "%Y-%m-%dT%H:%M",
            "%Y-%m-%d %H:%M",
        ] {
            if let Ok(naive) = NaiveDateTime::parse_from_str(&text, format) {
                return tz
                    .from_local_datetime(&naive)
                    .earliest()
                    .map(|t| t.with_timezone(&Utc))
                    .ok_or_else(|| {
                        self.err(
                            "at",
                            format!("{text} does not exist in {zone} (a daylight-saving gap)"),
                        )
                    });
            }
        }
        Err(self.err("at", format!("cannot read {text:?} as a date and time (e.g. \"2025-01-01 09:00:00\" or \"2025-01-01T09:00:00Z\")")))
    }
}

/// A TOML value as JSON (datetimes become strings).
fn to_json(value: &toml::Value) -> Result<Value, String> {
    Ok(match value {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(n) => Value::from(*n),
        toml::Value::Float(x) => serde_json::Number::from_f64(*x)
            .map(Value::Number)
            .ok_or_else(|| format!("{x} cannot be sent as JSON"))?,
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => {
            Value::Array(items.iter().map(to_json).collect::<Result<_, _>>()?)
        }
        toml::Value::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| Ok((k.clone(), to_json(v)?)))
                .collect::<Result<_, String>>()?,
        ),
    })
}
