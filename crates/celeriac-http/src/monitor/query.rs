//! `GET /api/tasks` over the monitor's table: filters (state, name,
//! worker, time range), search (id, name, arguments, result, exception),
//! order and page, all on the server.
//!
//! One pass over the table under the monitor's lock: filters compare
//! fields in place, search looks in each record's cached lower-case text
//! (rebuilt only for records that changed), and only the requested page is
//! copied out. 100,000 tasks answer a filtered page in a few milliseconds
//! (`examples/task_table_bench.rs`, BENCHMARKS.md).

use std::cmp::Ordering;

use crate::views::{SortOrder, TaskFilter, TaskSort, TaskView};

use super::table::{Interner, Key, TaskTable, NONE};
use super::tasks::TaskRecord;

/// Largest page.
pub(crate) const MAX_LIMIT: usize = 1000;
/// Page size when none is given.
const DEFAULT_LIMIT: usize = 100;
/// Longest search or filter text.
const MAX_TEXT: usize = 512;

/// A checked [`TaskFilter`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Query {
    states: Vec<String>,
    name: Option<String>,
    worker: Option<String>,
    text: Option<String>,
    since: Option<f64>,
    until: Option<f64>,
    sort: TaskSort,
    order: SortOrder,
    offset: usize,
    limit: usize,
}

/// Unix seconds from a number or an ISO 8601 time.
fn parse_time(field: &str, value: &str) -> Result<f64, String> {
    let value = value.trim();
    if let Ok(n) = value.parse::<f64>() {
        if n.is_finite() {
            return Ok(n);
        }
    }
    celeriac::protocol::time::parse(value)
        .map(|t| t.timestamp_micros() as f64 / 1e6)
        .ok_or_else(|| format!("{field} must be Unix seconds or an ISO 8601 time, got {value:?}"))
}

fn text(field: &str, value: Option<&String>) -> Result<Option<String>, String> {
    let Some(value) = value.map(|v| v.trim()).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if value.len() > MAX_TEXT {
        return Err(format!("{field} is longer than {MAX_TEXT} bytes"));
    }
    Ok(Some(value.to_owned()))
}

impl Query {
    /// Check `filter`; the error names the bad parameter.
    pub(crate) fn parse(filter: &TaskFilter) -> Result<Query, String> {
        let states = text("state", filter.state.as_ref())?
            .map(|s| {
                s.split(',')
                    .map(|s| s.trim().to_ascii_uppercase())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let since = filter
            .since
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .map(|s| parse_time("since", s))
            .transpose()?;
        let until = filter
            .until
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .map(|s| parse_time("until", s))
            .transpose()?;
        let limit = filter.limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(format!("limit must be 1 to {MAX_LIMIT}, got {limit}"));
        }
        Ok(Query {
            states,
            name: text("name", filter.name.as_ref())?,
            worker: text("worker", filter.worker.as_ref())?,
            text: text("q", filter.q.as_ref())?.map(|q| q.to_lowercase()),
            since,
            until,
            sort: filter.sort.unwrap_or_default(),
            order: filter.order.unwrap_or_default(),
            offset: filter.offset.unwrap_or(0),
            limit,
        })
    }

    /// The page size.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Matches skipped.
    pub(crate) fn offset(&self) -> usize {
        self.offset
    }
}

/// `query`'s filters as numbers to compare with [`Key`]s.
struct Compiled {
    /// Interned states wanted (empty: any).
    states: Vec<u32>,
    /// Per interned name: whether it matches the name filter (`None`: no filter).
    names: Option<Vec<bool>>,
    /// Interned worker wanted.
    worker: Option<u32>,
    since: f64,
    until: f64,
    timed: bool,
}

impl Compiled {
    fn new(query: &Query, interner: &Interner) -> Option<Compiled> {
        let states: Vec<u32> = query.states.iter().filter_map(|s| interner.id(s)).collect();
        if !query.states.is_empty() && states.is_empty() {
            return None;
        }
        let names = query.name.as_deref().map(|wanted| {
            let mut table = Vec::new();
            for (id, text) in interner.all() {
                let at = id as usize;
                if table.len() <= at {
                    table.resize(at + 1, false);
                }
                table[at] = text.contains(wanted);
            }
            table
        });
        let worker = match query.worker.as_deref() {
            Some(w) => Some(interner.id(w)?),
            None => None,
        };
        Some(Compiled {
            states,
            names,
            worker,
            since: query.since.unwrap_or(f64::NEG_INFINITY),
            until: query.until.unwrap_or(f64::INFINITY),
            timed: query.since.is_some() || query.until.is_some(),
        })
    }

    fn matches(&self, key: &Key) -> bool {
        if !self.states.is_empty() && !self.states.contains(&key.state) {
            return false;
        }
        if let Some(names) = &self.names {
            if !names.get(key.name as usize).copied().unwrap_or(false) {
                return false;
            }
        }
        if self.worker.is_some_and(|w| w != key.worker) {
            return false;
        }
        // NaN (unknown) fails both comparisons: a timed query leaves it out.
        if self.timed && !(key.first_seen >= self.since && key.first_seen < self.until) {
            return false;
        }
        true
    }
}

/// Compare two times, unknown (NaN) last whatever the order.
fn by_time(a: f64, b: f64, order: SortOrder) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (false, false) => {
            let o = a.total_cmp(&b);
            if order == SortOrder::Desc {
                o.reverse()
            } else {
                o
            }
        }
        (false, true) => Ordering::Less,
        (true, false) => Ordering::Greater,
        (true, true) => Ordering::Equal,
    }
}

/// Compare two interned texts by their text, none last.
fn by_text(interner: &Interner, a: u32, b: u32, order: SortOrder) -> Ordering {
    match (a == NONE, b == NONE) {
        (false, false) => {
            let o = interner.text(a).cmp(interner.text(b));
            if order == SortOrder::Desc {
                o.reverse()
            } else {
                o
            }
        }
        (false, true) => Ordering::Less,
        (true, false) => Ordering::Greater,
        (true, true) => Ordering::Equal,
    }
}

/// One page of the tasks matching `query`, and how many matched.
pub(crate) fn run(table: &mut TaskTable, query: &Query) -> (Vec<TaskView>, usize) {
    table.refresh(query.text.is_some());
    let Some(filter) = Compiled::new(query, &table.interner) else {
        return (Vec::new(), 0);
    };
    let keys = table.keys();
    // Newest first is the table's own order, reversed.
    let mut hits: Vec<usize> = (0..keys.len())
        .rev()
        .filter(|&at| filter.matches(&keys[at]))
        .collect();
    if let Some(text) = &query.text {
        let texts = table.texts();
        let finder = memchr::memmem::Finder::new(text.as_bytes());
        hits.retain(|&at| finder.find(texts[at].as_bytes()).is_some());
    }
    let order = query.order;
    let interner = &table.interner;
    match query.sort {
        TaskSort::Newest => {
            if order == SortOrder::Asc {
                hits.reverse();
            }
        }
        TaskSort::Received => {
            hits.sort_by(|&a, &b| by_time(keys[a].first_seen, keys[b].first_seen, order));
        }
        TaskSort::Started => {
            hits.sort_by(|&a, &b| by_time(keys[a].started, keys[b].started, order))
        }
        TaskSort::Finished => {
            hits.sort_by(|&a, &b| by_time(keys[a].finished, keys[b].finished, order));
        }
        TaskSort::Runtime => {
            hits.sort_by(|&a, &b| by_time(keys[a].runtime, keys[b].runtime, order))
        }
        TaskSort::Name => {
            hits.sort_by(|&a, &b| by_text(interner, keys[a].name, keys[b].name, order))
        }
        TaskSort::State => {
            hits.sort_by(|&a, &b| by_text(interner, keys[a].state, keys[b].state, order));
        }
        TaskSort::Worker => {
            hits.sort_by(|&a, &b| by_text(interner, keys[a].worker, keys[b].worker, order));
        }
    }
    let total = hits.len();
    let page = hits
        .into_iter()
        .skip(query.offset)
        .take(query.limit)
        .filter_map(|at| table.at(at).map(TaskRecord::to_view))
        .collect();
    (page, total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use celeriac::protocol::Event;
    use serde_json::json;

    fn table() -> TaskTable {
        let mut table = TaskTable::new(100);
        for i in 0..20u32 {
            let id = format!("task-{i:02}");
            let worker = if i % 2 == 0 { "even@h" } else { "odd@h" };
            let record = table.entry(&id);
            record.apply_event(
                &Event::new("task-received", worker, 1)
                    .with("uuid", id.as_str())
                    .with("name", if i < 10 { "tasks.add" } else { "tasks.mul" })
                    .with("args", format!("({}, 7)", 1000 + i))
                    .with("timestamp", 1000.0 + f64::from(i)),
            );
            let kind = if i % 5 == 0 {
                "task-failed"
            } else {
                "task-succeeded"
            };
            record.apply_event(
                &Event::new(kind, worker, 2)
                    .with("uuid", id.as_str())
                    .with("result", format!("{}", i * 3))
                    .with("runtime", f64::from(20 - i))
                    .with("timestamp", 1001.0 + f64::from(i)),
            );
        }
        table
    }

    fn query(q: serde_json::Value) -> Query {
        let filter: TaskFilter = serde_json::from_value(q).expect("filter");
        Query::parse(&filter).expect("valid")
    }

    fn ids(page: &[TaskView]) -> Vec<&str> {
        page.iter().map(|v| v.id.as_str()).collect()
    }

    #[test]
    fn filters_combine() {
        let mut t = table();
        let (page, total) = run(
            &mut t,
            &query(json!({"state": "failure", "worker": "even@h"})),
        );
        assert_eq!(total, 2);
        assert_eq!(ids(&page), ["task-10", "task-00"]);
        assert!(page
            .iter()
            .all(|v| v.state == "FAILURE" && v.worker.as_deref() == Some("even@h")));
        let (_, total) = run(
            &mut t,
            &query(json!({"name": "mul", "state": "SUCCESS,FAILURE"})),
        );
        assert_eq!(total, 10);
        let (page, total) = run(&mut t, &query(json!({"since": "1005", "until": "1008"})));
        assert_eq!(total, 3);
        assert_eq!(ids(&page), ["task-07", "task-06", "task-05"]);
        let (_, total) = run(&mut t, &query(json!({"since": "1970-01-01T00:16:45Z"})));
        assert_eq!(total, 15, "ISO 8601 times: 1005 s and after");
    }

    #[test]
    fn search_finds_arguments_results_and_ids() {
        let mut t = table();
        let (page, total) = run(&mut t, &query(json!({"q": "1013"})));
        assert_eq!((ids(&page), total), (vec!["task-13"], 1));
        let (page, _) = run(&mut t, &query(json!({"q": "TASK-04"})));
        assert_eq!(ids(&page), ["task-04"]);
        let (page, _) = run(&mut t, &query(json!({"q": "57"})));
        assert_eq!(ids(&page), ["task-19"], "result 57");
        // A changed record is searched by its new text.
        t.get_mut("task-01").expect("record").view.argsrepr = Some("('needle',)".into());
        let (page, _) = run(&mut t, &query(json!({"q": "needle"})));
        assert_eq!(ids(&page), ["task-01"]);
    }

    #[test]
    fn sorting_and_paging() {
        let mut t = table();
        let (page, total) = run(&mut t, &query(json!({"limit": 5, "offset": 5})));
        assert_eq!(total, 20);
        assert_eq!(
            ids(&page),
            ["task-14", "task-13", "task-12", "task-11", "task-10"]
        );
        let (page, _) = run(
            &mut t,
            &query(json!({"sort": "runtime", "order": "asc", "limit": 2})),
        );
        assert_eq!(ids(&page), ["task-19", "task-18"]);
        let (page, _) = run(
            &mut t,
            &query(json!({"sort": "received", "order": "asc", "limit": 1})),
        );
        assert_eq!(ids(&page), ["task-00"]);
        let (page, _) = run(&mut t, &query(json!({"sort": "name", "limit": 1})));
        assert_eq!(page[0].name.as_deref(), Some("tasks.mul"));
    }

    #[test]
    fn bad_parameters_are_refused_with_their_name() {
        for (q, says) in [
            (json!({"since": "yesterday"}), "since"),
            (json!({"until": "NaN"}), "until"),
            (json!({"limit": 0}), "limit"),
            (json!({"limit": 5000}), "limit"),
            (json!({"q": "x".repeat(600)}), "q"),
        ] {
            let filter: TaskFilter = serde_json::from_value(q).expect("filter");
            let err = Query::parse(&filter).expect_err("refused");
            assert!(err.contains(says), "{err}");
        }
    }
}
