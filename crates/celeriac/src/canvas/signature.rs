//! Signatures: a task call that can be passed around, sent later, linked to
//! another task or combined into chains, groups and chords.
//!
//! On the wire a signature is Celery's dict (`celery.canvas.Signature`):
//! `{"task", "args", "kwargs", "options", "subtask_type", "immutable"}`.
//! Chains, groups and chords are signatures too, told apart by
//! `subtask_type` (`"chain"`, `"group"`, `"chord"`, `"chunks"`, `"xmap"`,
//! `"xstarmap"`) with their parts in `kwargs`; [`Signature::shape`] reads
//! them into a [`Shape`].

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::CanvasError;

/// A task call as Celery serializes it, or a combination of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signature {
    /// The task name (`celery.chain`, `celery.group`, `celery.chord` for
    /// combinations).
    pub task: String,
    /// Positional arguments; a parent's result is put before them unless
    /// the signature is immutable.
    #[serde(default, deserialize_with = "null_as_default")]
    pub args: Vec<Value>,
    /// Keyword arguments.
    #[serde(default, deserialize_with = "null_as_default")]
    pub kwargs: Map<String, Value>,
    /// `apply_async` options: `task_id`, `queue`, `priority`, `countdown`,
    /// `link`, `link_error`, `group_id`…
    #[serde(default, deserialize_with = "null_as_default")]
    pub options: Map<String, Value>,
    /// `None` for a task, else what kind of combination this is.
    #[serde(default)]
    pub subtask_type: Option<String>,
    /// When set, a parent's result is not passed in (`.si()`).
    #[serde(default, deserialize_with = "null_as_default")]
    pub immutable: bool,
    /// Celery sets it on some chord parts; kept so re-sending loses nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chord_size: Option<Value>,
}

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// What a signature stands for, read from its `subtask_type`.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// One task call.
    Task,
    /// Run these one after the other, each result into the next.
    Chain(Vec<Signature>),
    /// Run these in parallel.
    Group(Vec<Signature>),
    /// Run the header group, then the body with the list of its results.
    Chord {
        /// The parts run in parallel.
        header: Vec<Signature>,
        /// Called with the ordered results of the header.
        body: Box<Signature>,
        /// The header group's own options (its `task_id` is the group id).
        header_options: Map<String, Value>,
    },
    /// `task.chunks(it, n)`: a group of `celery.starmap` tasks over `n`
    /// items each.
    Chunks {
        /// The task applied to each item.
        task: Box<Signature>,
        /// The argument tuples.
        items: Vec<Value>,
        /// Items per chunk.
        size: usize,
    },
    /// `task.map(it)` / `task.starmap(it)`: one `celery.map` /
    /// `celery.starmap` task.
    Map {
        /// `celery.map` or `celery.starmap`.
        builtin: &'static str,
    },
}

/// Names of the tasks that stand for a combination.
pub(crate) const CHAIN_TASK: &str = "celery.chain";
pub(crate) const GROUP_TASK: &str = "celery.group";
pub(crate) const CHORD_TASK: &str = "celery.chord";
/// Celery's built-in `celery.map(task, it)`.
pub const MAP_TASK: &str = "celery.map";
/// Celery's built-in `celery.starmap(task, it)`.
pub const STARMAP_TASK: &str = "celery.starmap";
/// Celery's built-in `celery.chunks(task, it, n)`.
pub const CHUNKS_TASK: &str = "celery.chunks";

impl Signature {
    /// A call of `task` with `args` and `kwargs`, no options.
    pub fn new(task: impl Into<String>, args: Vec<Value>, kwargs: Map<String, Value>) -> Self {
        Signature {
            task: task.into(),
            args,
            kwargs,
            options: Map::new(),
            subtask_type: None,
            immutable: false,
            chord_size: None,
        }
    }

    /// `chain(steps…)`: each step gets the previous one's result (Celery's
    /// `chain` / `|`).
    pub fn chain(steps: Vec<Signature>) -> Self {
        Self::combination(CHAIN_TASK, "chain", "tasks", list(steps))
    }

    /// `group(members…)`: the members run in parallel.
    pub fn group(members: Vec<Signature>) -> Self {
        Self::combination(GROUP_TASK, "group", "tasks", list(members))
    }

    /// `chord(header, body)`: the header group runs in parallel, then the
    /// body gets the list of its results, in header order.
    pub fn chord(header: Vec<Signature>, body: Signature) -> Self {
        let mut chord = Self::combination(
            CHORD_TASK,
            "chord",
            "header",
            Signature::group(header).to_value(),
        );
        chord.kwargs.insert("body".into(), body.to_value());
        chord
            .kwargs
            .insert("kwargs".into(), Value::Object(Map::new()));
        chord
    }

    fn combination(task: &str, kind: &str, part: &str, value: Value) -> Self {
        let mut kwargs = Map::new();
        kwargs.insert(part.to_owned(), value);
        let mut sig = Signature::new(task, Vec::new(), kwargs);
        sig.subtask_type = Some(kind.to_owned());
        sig
    }

    /// Read a signature from its JSON form (a dict as Celery sends it).
    ///
    /// # Errors
    /// [`CanvasError::Malformed`] when `value` is not a signature.
    pub fn from_value(value: &Value) -> Result<Self, CanvasError> {
        Signature::deserialize(value).map_err(|e| CanvasError::Malformed(e.to_string()))
    }

    /// Read a list of signatures, as in `callbacks`/`link`: a single dict is
    /// a list of one.
    ///
    /// # Errors
    /// [`CanvasError::Malformed`] when an element is not a signature.
    pub fn list_from_value(value: &Value) -> Result<Vec<Self>, CanvasError> {
        match value {
            Value::Null => Ok(Vec::new()),
            Value::Array(items) => items.iter().map(Signature::from_value).collect(),
            single => Ok(vec![Signature::from_value(single)?]),
        }
    }

    /// The signature as Celery's dict.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The same call with one more positional argument (after those a
    /// parent's result and earlier `arg`s gave it).
    pub fn arg(mut self, value: impl Into<Value>) -> Self {
        self.args.push(value.into());
        self
    }

    /// The same call, ignoring its parent's result (Celery's `.si()`).
    pub fn immutable(mut self) -> Self {
        self.immutable = true;
        self
    }

    /// Set an `apply_async` option (`queue`, `priority`, `countdown`,
    /// `task_id`…), as Celery's `.set()`.
    pub fn set(mut self, option: &str, value: impl Into<Value>) -> Self {
        self.options.insert(option.to_owned(), value.into());
        self
    }

    /// Call `callback` with this one's result when it succeeds (`link`).
    pub fn link(mut self, callback: Signature) -> Self {
        push_option(&mut self.options, "link", callback);
        self
    }

    /// Call `errback` when this one fails (`link_error`).
    pub fn link_error(mut self, errback: Signature) -> Self {
        push_option(&mut self.options, "link_error", errback);
        self
    }

    /// The `task_id` option, when the signature was given (or frozen with)
    /// one.
    pub fn id(&self) -> Option<&str> {
        self.options.get("task_id").and_then(Value::as_str)
    }

    /// What this signature stands for.
    ///
    /// # Errors
    /// [`CanvasError::Malformed`] when a combination's parts cannot be
    /// read, [`CanvasError::Unsupported`] for a `subtask_type` this worker
    /// does not know.
    pub fn shape(&self) -> Result<Shape, CanvasError> {
        let kind = match self.subtask_type.as_deref() {
            Some(kind) => kind,
            None => match self.task.as_str() {
                CHAIN_TASK => "chain",
                GROUP_TASK => "group",
                CHORD_TASK => "chord",
                _ => return Ok(Shape::Task),
            },
        };
        let part = |name: &str| {
            self.kwargs
                .get(name)
                .ok_or_else(|| CanvasError::Malformed(format!("a {kind} without `{name}`")))
        };
        match kind {
            "chain" => Ok(Shape::Chain(Signature::list_from_value(part("tasks")?)?)),
            "group" => Ok(Shape::Group(group_members(part("tasks")?)?)),
            "chord" => {
                let header = part("header")?;
                let (members, header_options) = match Signature::from_value(header) {
                    Ok(group) if group.subtask_type.as_deref() == Some("group") => (
                        group_members(group.kwargs.get("tasks").unwrap_or(&Value::Null))?,
                        group.options,
                    ),
                    _ => (Signature::list_from_value(header)?, Map::new()),
                };
                Ok(Shape::Chord {
                    header: members,
                    body: Box::new(Signature::from_value(part("body")?)?),
                    header_options,
                })
            }
            "chunks" => {
                let size = part("n")?.as_u64().filter(|n| *n > 0).ok_or_else(|| {
                    CanvasError::Malformed("chunks need a positive `n`".to_owned())
                })?;
                Ok(Shape::Chunks {
                    task: Box::new(Signature::from_value(part("task")?)?),
                    items: part("it")?.as_array().cloned().unwrap_or_default(),
                    size: usize::try_from(size).unwrap_or(usize::MAX),
                })
            }
            "xmap" => Ok(Shape::Map { builtin: MAP_TASK }),
            "xstarmap" => Ok(Shape::Map {
                builtin: STARMAP_TASK,
            }),
            other => Err(CanvasError::Unsupported(format!(
                "signatures of type {other:?}"
            ))),
        }
    }
}

fn list(items: Vec<Signature>) -> Value {
    Value::Array(items.iter().map(Signature::to_value).collect())
}

/// A group's `tasks`: a list of signatures (Celery may also send a
/// generator's items as a list).
fn group_members(tasks: &Value) -> Result<Vec<Signature>, CanvasError> {
    Signature::list_from_value(tasks)
}

/// Append `sig` to the list option `name` (a single dict becomes a list).
fn push_option(options: &mut Map<String, Value>, name: &str, sig: Signature) {
    let value = sig.to_value();
    match options.get_mut(name) {
        Some(Value::Array(items)) => items.push(value),
        Some(single) if !single.is_null() => {
            let first = single.take();
            *single = Value::Array(vec![first, value]);
        }
        _ => {
            options.insert(name.to_owned(), Value::Array(vec![value]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_what_celery_sends() {
        // `chain(add.s(1, 1), group(add.s(1), add.s(2)), tsum.s())` as a
        // Celery 5.7 producer embeds its tail: a chord.
        let wire = json!({"task": "celery.chord", "args": [], "kwargs": {"kwargs": {},
            "header": {"task": "celery.group", "args": [], "kwargs": {"tasks": [
                {"task": "tasks.add", "args": [1], "kwargs": {}, "options": {"task_id": "a", "group_index": 0}, "subtask_type": null, "immutable": false},
                {"task": "tasks.add", "args": [2], "kwargs": {}, "options": {"task_id": "b", "group_index": 1}, "subtask_type": null, "immutable": false}]},
                "options": {"task_id": "g", "root_id": null, "parent_id": null}, "subtask_type": "group", "immutable": false},
            "body": {"task": "tasks.tsum", "args": [], "kwargs": {}, "options": {"task_id": "c"}, "subtask_type": null, "immutable": false}},
            "options": {"task_id": "g"}, "subtask_type": "chord", "immutable": false});
        let sig = Signature::from_value(&wire).unwrap_or_else(|e| panic!("{e}"));
        match sig.shape() {
            Ok(Shape::Chord {
                header,
                body,
                header_options,
            }) => {
                assert_eq!(header.len(), 2);
                assert_eq!(header[1].id(), Some("b"));
                assert_eq!(body.task, "tasks.tsum");
                assert_eq!(header_options["task_id"], "g");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(Signature::from_value(&sig.to_value()).ok(), Some(sig));
    }

    #[test]
    fn links_accumulate_and_unknown_kinds_are_named() {
        let sig = Signature::new("t", vec![], Map::new())
            .link(Signature::new("a", vec![], Map::new()))
            .link(Signature::new("b", vec![], Map::new()).immutable());
        let links = Signature::list_from_value(&sig.options["link"]).unwrap_or_default();
        assert_eq!(links.len(), 2);
        assert!(links[1].immutable);
        let odd = Signature {
            subtask_type: Some("weird".into()),
            ..Signature::new("t", vec![], Map::new())
        };
        let err = odd.shape().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("weird"), "{err}");
    }
}
