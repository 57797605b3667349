//! Groups: send one task over a list of arguments as a Celery group (saved
//! where Celery's `GroupResult.save()` writes), and read a group's status.

use futures::StreamExt;
use serde_json::{Map, Value};

use celeriac::canvas::Sent;
use celeriac::Signature;

use super::{check_sendable, queue_for, send_options};
use crate::error::ApiError;
use crate::monitor::tasks::{is_ready, SentCall};
use crate::server::Shared;
use crate::views::{GroupMember, GroupSent, GroupView, SendGroupRequest, SendOptions};

/// The most members one `POST /api/groups` may send.
pub(crate) const MAX_MEMBERS: usize = 10_000;

/// How many result documents a group read fetches at once.
const FETCH_CONCURRENCY: usize = 16;

/// The API's options as a signature's Celery options (already checked by
/// [`send_options`]); `task_id` is the group's, so it is left out.
fn signature_options(o: &SendOptions) -> Map<String, Value> {
    let mut options = Map::new();
    if let Some(s) = o.countdown {
        options.insert("countdown".into(), s.into());
    }
    if let Some(eta) = &o.eta {
        options.insert("eta".into(), eta.clone().into());
    }
    if let Some(expires) = o.expires.as_ref().filter(|v| !v.is_null()) {
        options.insert("expires".into(), expires.clone());
    }
    if let Some(p) = o.priority {
        options.insert("priority".into(), p.into());
    }
    if let Some(q) = o.queue.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        options.insert("queue".into(), q.into());
    }
    options
}

/// A library error while sending or reading a group: a canvas the library
/// refuses is the caller's input (422), never a 500.
fn canvas_error(err: celeriac::Error) -> ApiError {
    match err {
        celeriac::Error::Canvas(e) => ApiError::unprocessable(e.to_string()),
        other => other.into(),
    }
}

/// Send `request` as a group, save it for [`group_view`] (and Python's
/// `GroupResult.restore`), and remember its members.
///
/// # Errors
/// 422 for no members, too many, or bad options; 404 for an unknown task;
/// 503 when the broker is down (members sent before stay sent).
pub(crate) async fn send_group(
    shared: &Shared,
    request: SendGroupRequest,
) -> Result<GroupSent, ApiError> {
    let SendGroupRequest {
        task,
        args_list,
        kwargs,
        options,
    } = request;
    check_sendable(shared, &task)?;
    if args_list.is_empty() || args_list.len() > MAX_MEMBERS {
        return Err(ApiError::unprocessable(format!(
            "args_list must hold 1 to {MAX_MEMBERS} argument lists (one per member), got {}",
            args_list.len()
        )));
    }
    // Checks every option, and the group id given as `task_id`.
    send_options(&options)?;
    let group_id = options
        .task_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let member_options = signature_options(&options);
    let members: Vec<Signature> = args_list
        .iter()
        .map(|args| {
            let mut sig = Signature::new(task.as_str(), args.clone(), kwargs.clone());
            sig.options.clone_from(&member_options);
            sig
        })
        .collect();
    let group = Signature::group(members).set("task_id", group_id.as_str());
    let sent = shared
        .app
        .apply_signature(&group)
        .await
        .map_err(canvas_error)?;
    let ids: Vec<String> = match &sent {
        Sent::Group(_, members) => members.iter().map(|m| m.id().to_owned()).collect(),
        Sent::Task(id) => vec![id.clone()],
    };
    let queue = queue_for(shared, &task, &options);
    let kwargs_repr = crate::pyrepr::repr(&Value::Object(kwargs.clone()));
    for (index, (id, args)) in ids.iter().zip(args_list).enumerate() {
        shared.monitor.record_group_member(id, &group_id, index);
        let reprs = (crate::pyrepr::repr_args(&args), kwargs_repr.clone());
        let call = SentCall {
            args,
            kwargs: kwargs.clone(),
            priority: options.priority,
        };
        shared.monitor.record_sent(id, &task, &queue, call, reprs);
    }
    let saved = shared
        .app
        .group_result(&sent)
        .save(shared.app.config().result_expires)
        .await;
    if let Err(err) = &saved {
        // The members run anyway; the group is then read from what the
        // monitor sees.
        tracing::warn!(group = %group_id, error = %err, "the sent group could not be saved");
    }
    Ok(GroupSent {
        group_id,
        task,
        queue,
        members: ids,
        saved: saved.is_ok(),
    })
}

/// Group `id`'s members with their states: from the group saved in the
/// result backend, else from the members the monitor has seen.
///
/// # Errors
/// 400 for a malformed id, 404 for a group nobody saved and no member of
/// which was seen, 503 when the backend is down.
pub(crate) async fn group_view(shared: &Shared, id: &str) -> Result<GroupView, ApiError> {
    let id = crate::extract::task_id(id)
        .map_err(|e| ApiError::bad_request(e.message.replace("task id", "group id")))?;
    let mut unreadable = None;
    let saved = match shared.app.restore_group(id).await {
        Ok(saved) => saved,
        Err(err) if err.is_transient() => return Err(err.into()),
        Err(err) => {
            tracing::warn!(group = %celeriac::printable(id), error = %err, "a saved group cannot be read");
            unreadable = Some(err.to_string());
            None
        }
    };
    let (seen, mut chord_id) = shared.monitor.group_members(id);
    let (member_ids, source) = match saved {
        Some(group) => (
            group
                .results()
                .iter()
                .map(|r| r.id().to_owned())
                .collect::<Vec<_>>(),
            "saved",
        ),
        None if !seen.is_empty() => (seen.into_iter().map(|v| v.id).collect(), "seen"),
        None => {
            let why = unreadable
                .map(|e| format!("; the saved group is unreadable: {e}"))
                .unwrap_or_default();
            return Err(ApiError::not_found(format!(
                "no group has id {id}: none is saved in the result backend and this server \
                 has seen no member of it{why}"
            )));
        }
    };
    let metas: Vec<(String, celeriac::Result<_>)> = futures::stream::iter(member_ids)
        .map(|member| async move {
            let meta = shared.app.async_result(&member).info().await;
            (member, meta)
        })
        .buffered(FETCH_CONCURRENCY)
        .collect()
        .await;
    let mut members = Vec::with_capacity(metas.len());
    let (mut completed, mut failed) = (0, 0);
    for (member, meta) in metas {
        let meta = meta?;
        shared.monitor.apply_meta(&member, meta.as_ref());
        let view = shared.monitor.view_with(&member, meta.as_ref());
        match view.state.as_str() {
            "SUCCESS" => completed += 1,
            "FAILURE" | "REVOKED" => failed += 1,
            _ => {}
        }
        if chord_id.is_none() {
            chord_id.clone_from(&view.chord_id);
        }
        let ready = is_ready(&view.state);
        members.push(GroupMember {
            result: ready.then(|| view.result.clone()),
            id: view.id,
            state: view.state,
            ready,
            name: view.name,
        });
    }
    Ok(GroupView {
        id: id.to_owned(),
        total: members.len(),
        completed,
        failed,
        ready: members.iter().all(|m| m.ready),
        source: source.to_owned(),
        chord_id,
        members,
    })
}
