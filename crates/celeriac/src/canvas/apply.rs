//! Sending a signature as Celery's `apply_async` does, for producers and for
//! workers (callbacks, the next link of a chain, a chord's body).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::signature::{Shape, Signature, STARMAP_TASK};
use super::CanvasError;
use crate::protocol::time;
use crate::{App, SendOptions};

/// Where a signature is applied from: the value passed in and the workflow
/// it continues. The default is a fresh call by a producer.
#[derive(Debug, Clone, Default)]
pub(crate) struct Origin {
    /// The parent's result, put before the arguments of a mutable signature.
    pub prepend: Option<Value>,
    /// The task that sent this one.
    pub parent_id: Option<String>,
    /// The first task of the workflow.
    pub root_id: Option<String>,
    /// The parent's priority, used when the signature sets none.
    pub priority: Option<u8>,
    /// Steps to run after this one, in wire order (the last runs next).
    pub chain: Vec<Value>,
    /// The group this is a member of, with its index.
    pub group: Option<(String, i64)>,
    /// The chord body this is a header part of.
    pub chord: Option<Value>,
}

/// What applying a signature sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Sent {
    /// One task, by id (for a chain: its last task; for a chord: its body).
    Task(String),
    /// A group: its id and its members.
    Group(String, Vec<Sent>),
}

impl Sent {
    /// The id of what was sent: the task's, or the group's.
    pub fn id(&self) -> &str {
        match self {
            Sent::Task(id) | Sent::Group(id, _) => id,
        }
    }

    /// Celery's `as_tuple()` form, as stored in a result's `children`:
    /// `[[id, null], null]` for a task, `[[id, null], [members…]]` for a
    /// group.
    pub fn as_tuple(&self) -> Value {
        match self {
            Sent::Task(id) => json!([[id, null], null]),
            Sent::Group(id, members) => {
                let members: Vec<Value> = members.iter().map(Sent::as_tuple).collect();
                json!([[id, null], members])
            }
        }
    }
}

impl App {
    /// The [`GroupResult`](crate::GroupResult) of a sent group (a task
    /// becomes a group of one).
    pub fn group_result(&self, sent: &Sent) -> crate::GroupResult {
        match sent {
            Sent::Group(id, members) => crate::GroupResult::new(
                id.clone(),
                members.iter().map(|m| self.async_result(m.id())).collect(),
                Arc::clone(self.backend()),
            ),
            Sent::Task(id) => crate::GroupResult::new(
                id.clone(),
                vec![self.async_result(id)],
                Arc::clone(self.backend()),
            ),
        }
    }

    /// The group saved under `group_id` ([`crate::GroupResult::save`], or
    /// Python's `GroupResult.save()`), or `None`.
    ///
    /// # Errors
    /// When the backend cannot be reached or the document is not a group.
    pub async fn restore_group(&self, group_id: &str) -> crate::Result<Option<crate::GroupResult>> {
        crate::GroupResult::restore(Arc::clone(self.backend()), group_id).await
    }

    /// Send `signature` as Celery's `apply_async()` would: a task, a chain,
    /// a group, a chord, chunks or a map. Returns what was sent (for a chord,
    /// the body's id, whose result is the chord's).
    ///
    /// # Errors
    /// [`crate::Error::Canvas`] when the signature cannot be read or
    /// honoured, or the broker's or backend's error when a part cannot be
    /// sent (parts sent before the error stay sent).
    pub async fn apply_signature(&self, signature: &Signature) -> crate::Result<Sent> {
        Ok(self.apply_from(signature, Origin::default()).await?)
    }

    /// Send `signature` from `origin` (a parent's result and workflow).
    pub(crate) async fn apply_from(
        &self,
        signature: &Signature,
        origin: Origin,
    ) -> Result<Sent, CanvasError> {
        // Boxed: chains and chords nest.
        Box::pin(async move {
            match signature.shape()? {
                Shape::Task | Shape::Map { .. } => self.send_one(signature, origin).await,
                Shape::Chain(steps) => {
                    self.apply_chain(with_chain_options(steps, &signature.options), origin)
                        .await
                }
                Shape::Group(members) => {
                    let group_id = option_str(&signature.options, "task_id").unwrap_or_else(new_id);
                    self.apply_group(&group_id, members, origin).await
                }
                Shape::Chord {
                    header,
                    body,
                    header_options,
                } => {
                    let group_id = option_str(&header_options, "task_id")
                        .or_else(|| option_str(&signature.options, "task_id"))
                        .unwrap_or_else(new_id);
                    self.apply_chord(&group_id, header, *body, origin).await
                }
                Shape::Chunks { task, items, size } => {
                    let group_id = option_str(&signature.options, "task_id").unwrap_or_else(new_id);
                    let parts = items
                        .chunks(size)
                        .map(|chunk| {
                            let mut kwargs = Map::new();
                            kwargs.insert("task".into(), task.to_value());
                            kwargs.insert("it".into(), Value::Array(chunk.to_vec()));
                            Signature::new(STARMAP_TASK, Vec::new(), kwargs)
                        })
                        .collect();
                    self.apply_group(&group_id, parts, origin).await
                }
            }
        })
        .await
    }

    async fn apply_chain(
        &self,
        steps: Vec<Signature>,
        origin: Origin,
    ) -> Result<Sent, CanvasError> {
        let mut steps = normalize_chain(flatten_chain(steps)?)?;
        if steps.is_empty() {
            return Err(CanvasError::Malformed("an empty chain".to_owned()));
        }
        // Freeze ids so the chain's result (its last step's) is known.
        let mut last = None;
        for step in &mut steps {
            last = Some(freeze(step)?);
        }
        let first = steps.remove(0);
        let mut chain = origin.chain.clone();
        chain.extend(steps.iter().rev().map(Signature::to_value));
        let sent = match first.shape()? {
            Shape::Chord {
                header,
                body,
                header_options,
            } => {
                // The rest of the chain runs after the chord's body.
                let body = chain_of(*body, chain)?;
                let group_id = option_str(&header_options, "task_id")
                    .or_else(|| first.id().map(str::to_owned))
                    .unwrap_or_else(new_id);
                let origin = Origin {
                    chain: Vec::new(),
                    ..origin
                };
                self.apply_chord(&group_id, header, body, origin).await?
            }
            Shape::Group(members) if chain.is_empty() => {
                let group_id = first.id().map(str::to_owned).unwrap_or_else(new_id);
                self.apply_group(&group_id, members, origin).await?
            }
            Shape::Group(_) => {
                return Err(CanvasError::Unsupported(
                    "a group followed by more steps inside a chord body".to_owned(),
                ))
            }
            _ => self.send_one(&first, Origin { chain, ..origin }).await?,
        };
        Ok(match last {
            Some(id) if !steps.is_empty() => Sent::Task(id),
            _ => sent,
        })
    }

    async fn apply_group(
        &self,
        group_id: &str,
        members: Vec<Signature>,
        origin: Origin,
    ) -> Result<Sent, CanvasError> {
        let mut sent = Vec::with_capacity(members.len());
        for (index, member) in members.iter().enumerate() {
            let origin = Origin {
                group: Some((group_id.to_owned(), index as i64)),
                chain: Vec::new(),
                ..origin.clone()
            };
            sent.push(self.apply_from(member, origin).await?);
        }
        Ok(Sent::Group(group_id.to_owned(), sent))
    }

    async fn apply_chord(
        &self,
        group_id: &str,
        header: Vec<Signature>,
        mut body: Signature,
        origin: Origin,
    ) -> Result<Sent, CanvasError> {
        let body_id = match body.id() {
            Some(id) => id.to_owned(),
            None => {
                let id = new_id();
                body.options
                    .insert("task_id".into(), Value::String(id.clone()));
                id
            }
        };
        body.options
            .insert("group_id".into(), Value::String(group_id.to_owned()));
        if header.is_empty() {
            let origin = Origin {
                prepend: Some(Value::Array(Vec::new())),
                group: None,
                ..origin
            };
            self.apply_from(&body, origin).await?;
            return Ok(Sent::Task(body_id));
        }
        for part in &header {
            if part.shape()? != Shape::Task {
                return Err(CanvasError::Unsupported(format!(
                    "a chord header part that is not a single task ({})",
                    part.task
                )));
            }
        }
        self.backend()
            .set_chord_size(group_id, header.len() as u64)
            .await?;
        let body_value = body.to_value();
        for (index, part) in header.iter().enumerate() {
            let origin = Origin {
                group: Some((group_id.to_owned(), index as i64)),
                chord: Some(body_value.clone()),
                chain: Vec::new(),
                ..origin.clone()
            };
            self.send_one(part, origin).await?;
        }
        Ok(Sent::Task(body_id))
    }

    /// Send one task signature.
    async fn send_one(&self, signature: &Signature, origin: Origin) -> Result<Sent, CanvasError> {
        let mut args = Vec::with_capacity(signature.args.len() + 1);
        if let (Some(value), false) = (&origin.prepend, signature.immutable) {
            args.push(value.clone());
        }
        args.extend(signature.args.iter().cloned());
        let mut options = send_options(&signature.options, origin.priority)?;
        options.parent_id = origin.parent_id.clone();
        options.root_id = origin.root_id.clone();
        if let Some((group, index)) = origin.group {
            options.group = Some((group, Some(index)));
        }
        if !origin.chain.is_empty() {
            options.embed.chain = Some(Value::Array(origin.chain));
        }
        if origin.chord.is_some() {
            options.embed.chord = origin.chord;
        }
        let result = self
            .send_task(&signature.task, args, signature.kwargs.clone(), options)
            .await?;
        Ok(Sent::Task(result.id().to_owned()))
    }
}

/// A chain's own options passed to its steps, as Celery does: `link` and
/// `task_id` go to the last step (the chain's result is the last one's),
/// `link_error` to every step, routing and priority to steps that set none.
fn with_chain_options(mut steps: Vec<Signature>, options: &Map<String, Value>) -> Vec<Signature> {
    for (name, value) in options {
        match name.as_str() {
            "link" | "task_id" => {
                if let Some(last) = steps.last_mut() {
                    merge_option(last, name, value);
                }
            }
            "link_error" | "queue" | "routing_key" | "priority" => {
                for step in &mut steps {
                    merge_option(step, name, value);
                }
            }
            _ => {}
        }
    }
    steps
}

/// Set `name` on `step`: callback lists are appended to, other options
/// only filled in where the step has none.
fn merge_option(step: &mut Signature, name: &str, value: &Value) {
    if name == "link" || name == "link_error" {
        let mut list = match step.options.remove(name) {
            Some(Value::Array(items)) => items,
            Some(Value::Null) | None => Vec::new(),
            Some(single) => vec![single],
        };
        match value {
            Value::Array(items) => list.extend(items.iter().cloned()),
            Value::Null => {}
            single => list.push(single.clone()),
        }
        step.options.insert(name.to_owned(), Value::Array(list));
    } else if !step.options.contains_key(name) {
        step.options.insert(name.to_owned(), value.clone());
    }
}

/// A chain's steps with nested chains spliced in.
fn flatten_chain(steps: Vec<Signature>) -> Result<Vec<Signature>, CanvasError> {
    let mut flat = Vec::with_capacity(steps.len());
    for step in steps {
        match step.shape()? {
            Shape::Chain(inner) => flat.extend(flatten_chain(inner)?),
            _ => flat.push(step),
        }
    }
    Ok(flat)
}

/// A group followed by another step is a chord, as Celery upgrades it.
fn normalize_chain(steps: Vec<Signature>) -> Result<Vec<Signature>, CanvasError> {
    let mut out: Vec<Signature> = Vec::with_capacity(steps.len());
    let mut i = 0;
    while i < steps.len() {
        let step = &steps[i];
        match (step.shape()?, steps.get(i + 1)) {
            (Shape::Group(members), Some(body)) => {
                let mut chord = Signature::chord(members, body.clone());
                if let Some(id) = step.id() {
                    chord
                        .options
                        .insert("task_id".into(), Value::String(id.to_owned()));
                }
                chord.args = step.args.clone();
                out.push(chord);
                i += 2;
            }
            _ => {
                out.push(step.clone());
                i += 1;
            }
        }
    }
    Ok(out)
}

/// `body` followed by the steps of `chain` (wire order, last runs next).
fn chain_of(body: Signature, chain: Vec<Value>) -> Result<Signature, CanvasError> {
    if chain.is_empty() {
        return Ok(body);
    }
    let mut steps = vec![body.clone()];
    for step in chain.iter().rev() {
        steps.push(Signature::from_value(step)?);
    }
    let mut sig = Signature::chain(steps);
    // The chain takes the body's id, so the chord's result stays the body's.
    if let Some(id) = body.id() {
        sig.options
            .insert("task_id".into(), Value::String(id.to_owned()));
    }
    Ok(sig)
}

/// Give `step` the ids it will run under, if it has none yet, and return
/// the id of its result: a task's own, a chord's body's, a group's id.
fn freeze(step: &mut Signature) -> Result<String, CanvasError> {
    if let Shape::Chord { .. } = step.shape()? {
        let Some(Value::Object(body)) = step.kwargs.get_mut("body") else {
            return Err(CanvasError::Malformed("a chord without `body`".to_owned()));
        };
        let options = body
            .entry("options")
            .or_insert_with(|| Value::Object(Map::new()));
        if !options.is_object() {
            *options = Value::Object(Map::new());
        }
        let Some(options) = options.as_object_mut() else {
            return Err(CanvasError::Malformed("a chord body's options".to_owned()));
        };
        let id = options
            .entry("task_id")
            .or_insert_with(|| Value::String(new_id()));
        return Ok(id.as_str().map(str::to_owned).unwrap_or_else(new_id));
    }
    match step.id() {
        Some(id) => Ok(id.to_owned()),
        None => {
            let id = new_id();
            step.options
                .insert("task_id".into(), Value::String(id.clone()));
            Ok(id)
        }
    }
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn option_str(options: &Map<String, Value>, name: &str) -> Option<String> {
    options.get(name).and_then(Value::as_str).map(str::to_owned)
}

/// A signature's `apply_async` options as [`SendOptions`].
fn send_options(
    options: &Map<String, Value>,
    inherited: Option<u8>,
) -> Result<SendOptions, CanvasError> {
    let bad =
        |name: &str, what: &str| CanvasError::Malformed(format!("option `{name}` must be {what}"));
    let seconds = |name: &str| -> Result<Option<f64>, CanvasError> {
        match options.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_f64()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(Some)
                .ok_or_else(|| bad(name, "a number of seconds")),
        }
    };
    let mut send = SendOptions::new();
    if let Some(id) = option_str(options, "task_id") {
        send = send.task_id(id);
    }
    if let Some(queue) = option_str(options, "queue").or_else(|| option_str(options, "routing_key"))
    {
        send = send.queue(queue);
    }
    match options.get("priority") {
        None | Some(Value::Null) => {
            if let Some(p) = inherited {
                send = send.priority(p.min(9));
            }
        }
        Some(v) => {
            let p = v.as_u64().ok_or_else(|| bad("priority", "an integer"))?;
            send = send.priority(p.min(9) as u8);
        }
    }
    if let Some(s) = seconds("countdown")? {
        send = send.countdown(Duration::from_secs_f64(s));
    }
    if let Some(eta) = options.get("eta").filter(|v| !v.is_null()) {
        let at = eta
            .as_str()
            .and_then(time::parse)
            .ok_or_else(|| bad("eta", "an ISO-8601 time"))?;
        send = send.eta(at);
    }
    match options.get("expires") {
        None | Some(Value::Null) => {}
        Some(Value::String(at)) => {
            send = send.expires_at(
                time::parse(at).ok_or_else(|| bad("expires", "an ISO-8601 time or seconds"))?,
            );
        }
        Some(_) => {
            let s = seconds("expires")?.unwrap_or_default();
            send = send.expires_in(Duration::from_secs_f64(s));
        }
    }
    if let Some(s) = seconds("time_limit")? {
        send = send.time_limit(s);
    }
    if let Some(s) = seconds("soft_time_limit")? {
        send = send.soft_time_limit(s);
    }
    if let Some(ignore) = options.get("ignore_result").and_then(Value::as_bool) {
        send = send.ignore_result(ignore);
    }
    for (name, slot) in [
        ("link", &mut send.embed.callbacks),
        ("link_error", &mut send.embed.errbacks),
    ] {
        if let Some(list) = options.get(name).filter(|v| !v.is_null()) {
            let list = match list {
                Value::Array(_) => list.clone(),
                single => Value::Array(vec![single.clone()]),
            };
            *slot = Some(list);
        }
    }
    if let Some(group) = option_str(options, "group_id") {
        let index = options.get("group_index").and_then(Value::as_i64);
        send.group = Some((group, index));
    }
    Ok(send)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(args: Vec<Value>) -> Signature {
        Signature::new("tasks.add", args, Map::new())
    }

    #[test]
    fn a_group_before_another_step_becomes_a_chord() -> Result<(), CanvasError> {
        let group = Signature::group(vec![add(vec![json!(1)])]);
        let steps = normalize_chain(vec![add(vec![json!(1), json!(1)]), group, add(vec![])])?;
        assert_eq!(steps.len(), 2);
        assert!(matches!(steps[1].shape()?, Shape::Chord { .. }));
        Ok(())
    }

    #[test]
    fn options_are_read_or_refused_by_name() {
        let object = |v: Value| v.as_object().cloned().unwrap_or_default();
        let link = add(vec![]).to_value();
        let ok = send_options(
            &object(json!({"queue": "q", "priority": 7, "countdown": 1.5, "link": link})),
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok.task.queue.as_deref(), Some("q"));
        assert_eq!(ok.task.priority, Some(7));
        assert!(matches!(ok.embed.callbacks, Some(Value::Array(ref l)) if l.len() == 1));
        let bad = send_options(&object(json!({"countdown": "soon"})), None);
        let err = bad.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("countdown"), "{err}");
    }
}
