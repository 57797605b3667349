//! How a chain is prepared before it is sent, as Celery prepares it:
//! nested chains spliced in, a group followed by a step upgraded to a
//! chord, the chain's own options passed to its steps, and ids frozen so
//! the chain's result (its last step's) is known before anything runs.

use serde_json::{Map, Value};

use super::apply::new_id;
use super::signature::{Shape, Signature};
use super::CanvasError;

/// A chain's own options passed to its steps, as Celery does: `link` and
/// `task_id` go to the last step (the chain's result is the last one's),
/// `link_error` to every step, routing and priority to steps that set none.
pub(super) fn with_chain_options(
    mut steps: Vec<Signature>,
    options: &Map<String, Value>,
) -> Vec<Signature> {
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
pub(super) fn flatten_chain(steps: Vec<Signature>) -> Result<Vec<Signature>, CanvasError> {
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
pub(super) fn normalize_chain(steps: Vec<Signature>) -> Result<Vec<Signature>, CanvasError> {
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
pub(super) fn chain_of(body: Signature, chain: Vec<Value>) -> Result<Signature, CanvasError> {
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
pub(super) fn freeze(step: &mut Signature) -> Result<String, CanvasError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
}
