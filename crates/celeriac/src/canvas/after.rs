//! What a worker sends once a task has an outcome, as Celery's tracer does:
//! callbacks and the next chain step after SUCCESS, errbacks after
//! FAILURE, and the chord part return after any final state.

use serde_json::Value;

use super::apply::{Origin, Sent};
use super::signature::Signature;
use super::CanvasError;
use crate::backend::{ChordPart, ChordProgress};
use crate::protocol::{ExceptionInfo, ResultMeta, TaskMessage, TaskState};
use crate::App;

/// After SUCCESS (before the result is stored): send every callback with
/// `value` put before its arguments (several callbacks go out as one
/// group, as Celery does; a group callback on its own), then the next link
/// of the chain with the rest of the chain. Returns what was sent, for the
/// result's `children`.
///
/// # Errors
/// [`CanvasError`] when a signature is malformed or cannot be sent; the
/// worker then stores the task as FAILURE with that reason.
pub(crate) async fn after_success(
    app: &App,
    message: &TaskMessage,
    priority: Option<u8>,
    value: &Value,
) -> Result<Vec<Sent>, CanvasError> {
    let embed = &message.embed;
    let mut sent = Vec::new();
    let origin = Origin {
        prepend: Some(value.clone()),
        parent_id: Some(message.headers.id.clone()),
        root_id: Some(root_id(message)),
        priority,
        ..Origin::default()
    };
    if let Some(callbacks) = embed.callbacks.as_ref().filter(|v| !v.is_null()) {
        let callbacks = Signature::list_from_value(callbacks)?;
        if callbacks.len() == 1 {
            sent.push(app.apply_from(&callbacks[0], origin.clone()).await?);
        } else {
            let (groups, tasks): (Vec<_>, Vec<_>) = callbacks
                .into_iter()
                .partition(|sig| sig.subtask_type.as_deref() == Some("group"));
            for group in &groups {
                sent.push(app.apply_from(group, origin.clone()).await?);
            }
            if !tasks.is_empty() {
                let group = Signature::group(tasks);
                sent.push(app.apply_from(&group, origin.clone()).await?);
            }
        }
    }
    if let Some(Value::Array(chain)) = embed.chain.as_ref() {
        if let Some((next, rest)) = chain.split_last() {
            let next = Signature::from_value(next)?;
            let origin = Origin {
                chain: rest.to_vec(),
                ..origin
            };
            sent.push(app.apply_from(&next, origin).await?);
        }
    }
    Ok(sent)
}

/// After FAILURE is stored: call the errbacks. Celery calls an errback in
/// the failing worker's process when it is a Python function taking
/// `(request, exc, traceback)` and registered there; otherwise it sends
/// it as a task with the failed task's id as its argument. A Celeriac
/// worker runs no Python, so every errback is sent the second way, as one
/// group (immutable ones keep their own arguments).
pub(crate) async fn after_failure(app: &App, message: &TaskMessage) -> Result<(), CanvasError> {
    let Some(errbacks) = message.embed.errbacks.as_ref().filter(|v| !v.is_null()) else {
        return Ok(());
    };
    let errbacks = Signature::list_from_value(errbacks)?;
    if errbacks.is_empty() {
        return Ok(());
    }
    send_errbacks(app, errbacks, &message.headers.id, &root_id(message)).await
}

async fn send_errbacks(
    app: &App,
    errbacks: Vec<Signature>,
    task_id: &str,
    root_id: &str,
) -> Result<(), CanvasError> {
    let origin = Origin {
        prepend: Some(Value::String(task_id.to_owned())),
        parent_id: Some(task_id.to_owned()),
        root_id: Some(root_id.to_owned()),
        ..Origin::default()
    };
    app.apply_from(&Signature::group(errbacks), origin).await?;
    Ok(())
}

/// After a final state is stored for a chord header part: count it; the
/// worker whose part completes the chord sends the body with the ordered
/// results, or, when a part failed, stores the body as FAILURE with
/// Celery's `ChordError` and calls the body's errbacks.
pub(crate) async fn chord_part_done(
    app: &App,
    message: &TaskMessage,
    meta: &ResultMeta,
) -> Result<(), CanvasError> {
    let headers = &message.headers;
    let (Some(body), Some(group_id)) = (message.embed.chord.as_ref(), headers.group.as_deref())
    else {
        return Ok(());
    };
    if body.is_null() || !meta.status.is_ready() {
        return Ok(());
    }
    let part = ChordPart {
        group_id,
        task_id: &headers.id,
        index: headers.group_index,
        state: &meta.status,
        result: &meta.result,
    };
    let expires = app.config().result_expires;
    let (results, claim) = match app.backend().chord_part_return(&part, expires).await? {
        ChordProgress::Complete { results, claim } => (results, claim),
        ChordProgress::Waiting | ChordProgress::Done => return Ok(()),
    };
    let body = Signature::from_value(body)?;
    let failed = results
        .iter()
        .find(|r| matches!(r.state, TaskState::Failure | TaskState::Revoked));
    let outcome = match failed {
        Some(part) => fail_chord(app, &body, &part.task_id, &part.result).await,
        None => {
            let values: Vec<Value> = results.into_iter().map(|r| r.result).collect();
            let origin = Origin {
                prepend: Some(Value::Array(values)),
                root_id: Some(root_id(message)),
                ..Origin::default()
            };
            app.apply_from(&body, origin).await.map(|_| ())
        }
    };
    app.backend().chord_done(group_id, &claim).await?;
    outcome
}

/// A header part failed: the body fails with `ChordError`, as Celery's
/// `chord_error_from_stack`, and its errbacks are called.
async fn fail_chord(
    app: &App,
    body: &Signature,
    failed_id: &str,
    failed_result: &Value,
) -> Result<(), CanvasError> {
    let Some(body_id) = body.id().map(str::to_owned) else {
        return Err(CanvasError::Malformed(
            "a chord body without a task id".to_owned(),
        ));
    };
    let cause = serde_json::from_value::<ExceptionInfo>(failed_result.clone())
        .map(|exc| format!("{}({:?})", exc.exc_type, exc.message_text()))
        .unwrap_or_else(|_| failed_result.to_string());
    let message = format!("Dependency {failed_id} raised {cause}");
    tracing::warn!(chord_body = %body_id, %message, "a chord header part failed");
    let mut meta =
        ResultMeta::failure_in_module(&body_id, "celery.exceptions", "ChordError", &message, None);
    meta.name = Some(body.task.clone());
    app.backend()
        .store(&meta, app.config().result_expires)
        .await?;
    let errbacks = body
        .options
        .get("link_error")
        .map(Signature::list_from_value)
        .transpose()?
        .unwrap_or_default();
    if !errbacks.is_empty() {
        send_errbacks(app, errbacks, &body_id, &body_id).await?;
    }
    Ok(())
}

/// The workflow's first task: the message's `root_id`, else its own id.
fn root_id(message: &TaskMessage) -> String {
    message
        .headers
        .root_id
        .clone()
        .unwrap_or_else(|| message.headers.id.clone())
}

/// The `children` of a result: Celery's tuples of what was sent.
pub(crate) fn children(sent: &[Sent]) -> Vec<Value> {
    sent.iter().map(Sent::as_tuple).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn children_are_celerys_tuples() {
        let sent = vec![
            Sent::Task("a".into()),
            Sent::Group("g".into(), vec![Sent::Task("b".into())]),
        ];
        assert_eq!(
            Value::Array(children(&sent)),
            json!([[["a", null], null], [["g", null], [[["b", null], null]]]])
        );
    }
}
