//! How tasks relate: parent, root, group, chord body, children — read from
//! task events, result documents and this server's own sends — and the
//! members of a group as far as the monitor has seen them.
//!
//! Sources, per field:
//! - `parent_id`, `root_id`: the `task-received` event (Celery sends both)
//!   and the result document (`parent_id`);
//! - `group_id`: the document (`group_id`), Celeriac's `task-received`
//!   (`group`, `group_index`) and the groups sent through this API;
//! - `chord_id`: Celeriac's `task-received` (`chord`, the body's task id);
//! - `children`: the document (Celery's result tuples).

use std::collections::HashSet;

use celeriac::protocol::{Event, ResultMeta};
use serde_json::Value;

use super::table::TaskTable;
use crate::views::TaskView;

fn text(event: &Event, key: &str) -> Option<String> {
    event
        .fields
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Fill what a `task-sent`/`task-received` event says about relations;
/// fields it leaves out (or null) keep what was known.
pub(crate) fn from_event(v: &mut TaskView, event: &Event) {
    v.parent_id = text(event, "parent_id").or(v.parent_id.take());
    v.root_id = text(event, "root_id").or(v.root_id.take());
    v.group_id = text(event, "group").or(v.group_id.take());
    v.chord_id = text(event, "chord").or(v.chord_id.take());
    if let Some(index) = event.fields.get("group_index").and_then(Value::as_i64) {
        v.group_index = Some(index);
    }
}

/// Fill what a result document says about relations.
pub(crate) fn from_meta(v: &mut TaskView, meta: &ResultMeta) {
    if meta.parent_id.is_some() {
        v.parent_id.clone_from(&meta.parent_id);
    }
    if meta.group_id.is_some() {
        v.group_id.clone_from(&meta.group_id);
    }
    if !meta.children.is_empty() {
        let (tasks, groups) = children(&meta.children);
        v.children = tasks;
        v.child_groups = groups;
    }
}

/// The task ids and group ids in a document's `children`: Celery's tuples,
/// `[[id, parent], null]` for a task, `[[group_id, parent], [members…]]`
/// for a group (whose members' ids go with the tasks). Anything else is
/// skipped.
pub(crate) fn children(tuples: &[Value]) -> (Vec<String>, Vec<String>) {
    let mut tasks = Vec::new();
    let mut groups = Vec::new();
    for tuple in tuples {
        collect(tuple, &mut tasks, &mut groups, 0);
    }
    (tasks, groups)
}

fn collect(tuple: &Value, tasks: &mut Vec<String>, groups: &mut Vec<String>, depth: usize) {
    // Nesting is bounded so a hostile document cannot recurse deeply.
    let Some([head, members]) = tuple.as_array().map(Vec::as_slice).and_then(|t| match t {
        [a, b] => Some([a, b]),
        _ => None,
    }) else {
        return;
    };
    let Some(id) = head.get(0).and_then(Value::as_str) else {
        return;
    };
    match members {
        Value::Array(members) if depth < 8 => {
            groups.push(id.to_owned());
            for member in members {
                collect(member, tasks, groups, depth + 1);
            }
        }
        Value::Null => tasks.push(id.to_owned()),
        _ => {}
    }
}

/// The members of group `group_id` the table knows, in group order (by
/// `group_index`, then by when they were seen), without the chord body
/// (which Celery sends with the header's group id), and the chord body's
/// id when the group is a chord's header.
pub(crate) fn members(table: &TaskTable, group_id: &str) -> (Vec<TaskView>, Option<String>) {
    let in_group: Vec<&TaskView> = table
        .newest()
        .map(|r| &r.view)
        .filter(|v| v.group_id.as_deref() == Some(group_id))
        .collect();
    let bodies: HashSet<&str> = in_group
        .iter()
        .filter_map(|v| v.chord_id.as_deref())
        .collect();
    let chord_id = bodies.iter().next().map(|s| (*s).to_owned());
    let mut members: Vec<TaskView> = in_group
        .into_iter()
        .filter(|v| !bodies.contains(v.id.as_str()))
        .cloned()
        .collect();
    // `newest()` is newest first; oldest first is the order they were sent.
    members.reverse();
    members.sort_by_key(|v| v.group_index.unwrap_or(i64::MAX));
    (members, chord_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use celeriac::TaskState;
    use serde_json::json;

    #[test]
    fn children_name_tasks_and_groups() {
        let tuples = vec![
            json!([["a", null], null]),
            json!([["g", null], [[["b", null], null], [["c", null], null]]]),
            json!("garbage"),
            json!([[1, null], null]),
        ];
        let (tasks, groups) = children(&tuples);
        assert_eq!(tasks, ["a", "b", "c"]);
        assert_eq!(groups, ["g"]);
    }

    #[test]
    fn events_and_documents_fill_relations_without_erasing() {
        let mut v = TaskView::default();
        let event = Event::new("task-received", "w@h", 1)
            .with("uuid", "t")
            .with("parent_id", "p")
            .with("root_id", "r")
            .with("group", "g")
            .with("group_index", 2)
            .with("chord", "body");
        from_event(&mut v, &event);
        assert_eq!(v.parent_id.as_deref(), Some("p"));
        assert_eq!(v.group_index, Some(2));
        assert_eq!(v.chord_id.as_deref(), Some("body"));
        from_event(
            &mut v,
            &Event::new("task-received", "w@h", 2).with("parent_id", Value::Null),
        );
        assert_eq!(
            v.parent_id.as_deref(),
            Some("p"),
            "a null keeps what was known"
        );
        let mut meta = ResultMeta::new("t", TaskState::Success, json!(1));
        meta.children = vec![json!([["child", null], null])];
        from_meta(&mut v, &meta);
        assert_eq!(v.children, ["child"]);
        assert_eq!(v.group_id.as_deref(), Some("g"));
    }

    #[test]
    fn members_come_in_group_order_without_the_chord_body() {
        let mut table = TaskTable::new(10);
        for (id, index, chord) in [
            ("m1", Some(1), Some("body")),
            ("m0", Some(0), Some("body")),
            ("body", None, None),
        ] {
            let v = &mut table.entry(id).view;
            v.group_id = Some("g".into());
            v.group_index = index;
            v.chord_id = chord.map(str::to_owned);
        }
        table.entry("other");
        let (members, chord) = members(&table, "g");
        let ids: Vec<_> = members.iter().map(|v| v.id.as_str()).collect();
        assert_eq!(ids, ["m0", "m1"]);
        assert_eq!(chord.as_deref(), Some("body"));
    }
}
