//! Sending a signature as Celery's `apply_async` does, for producers and for
//! workers (callbacks, the next link of a chain, a chord's body).

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::chain::{chain_of, flatten_chain, freeze, normalize_chain, with_chain_options};
use super::options::send_options;
use super::signature::{Shape, Signature, STARMAP_TASK};
use super::CanvasError;
use crate::App;

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

pub(super) fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub(super) fn option_str(options: &Map<String, Value>, name: &str) -> Option<String> {
    options.get(name).and_then(Value::as_str).map(str::to_owned)
}
