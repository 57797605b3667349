//! Celery's built-in tasks that producers send by name: `celery.map`,
//! `celery.starmap` (one task running another task's function over a list,
//! in the worker's process, as Celery does) and `celery.chunks` (a group of
//! `celery.starmap` tasks). A worker answers them whatever tasks it has
//! registered; the inner task must be registered on it.

use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::{Map, Value};

use super::signature::{Signature, CHUNKS_TASK, MAP_TASK, STARMAP_TASK};
use crate::task::{ArgReader, Context, Task, TaskCall, TaskError};
use crate::App;

/// The built-in task called `name`, if there is one.
pub(crate) fn task(app: &App, name: &str) -> Option<Arc<dyn Task>> {
    let builtin = match name {
        MAP_TASK => Builtin::Map,
        STARMAP_TASK => Builtin::Starmap,
        CHUNKS_TASK => Builtin::Chunks,
        _ => return None,
    };
    Some(Arc::new(BuiltinTask {
        app: app.clone(),
        builtin,
    }))
}

#[derive(Clone, Copy, PartialEq)]
enum Builtin {
    Map,
    Starmap,
    Chunks,
}

struct BuiltinTask {
    app: App,
    builtin: Builtin,
}

impl Task for BuiltinTask {
    fn name(&self) -> &'static str {
        match self.builtin {
            Builtin::Map => MAP_TASK,
            Builtin::Starmap => STARMAP_TASK,
            Builtin::Chunks => CHUNKS_TASK,
        }
    }

    fn call(
        &self,
        ctx: Context,
        args: Vec<Value>,
        kwargs: Map<String, Value>,
    ) -> Result<TaskCall, TaskError> {
        let mut reader = ArgReader::new(self.name(), args, kwargs);
        let task: Value = reader.next("task")?;
        let items: Vec<Value> = reader.next("it")?;
        let chunk_size: Option<usize> = if self.builtin == Builtin::Chunks {
            Some(reader.next("n")?)
        } else {
            None
        };
        reader.finish(if chunk_size.is_some() { 3 } else { 2 })?;
        let signature = Signature::from_value(&task)
            .map_err(|e| TaskError::type_error(format!("{}: {e}", self.name())))?;
        let app = self.app.clone();
        let builtin = self.builtin;
        let future: BoxFuture<'static, Result<Value, TaskError>> = Box::pin(async move {
            match (builtin, chunk_size) {
                (Builtin::Chunks, Some(size)) => send_chunks(&app, signature, items, size).await,
                (Builtin::Starmap, _) => run_each(&app, &ctx, &signature, items, true).await,
                _ => run_each(&app, &ctx, &signature, items, false).await,
            }
        });
        Ok(TaskCall::Async(future))
    }
}

/// Run `signature`'s task here for each item (as its only argument, or as
/// its argument list with `star`), in order; the list of results.
async fn run_each(
    app: &App,
    ctx: &Context,
    signature: &Signature,
    items: Vec<Value>,
    star: bool,
) -> Result<Value, TaskError> {
    let Some(task) = app.task(&signature.task).cloned() else {
        return Err(TaskError::new(
            "NotRegistered",
            format!(
                "Task of kind '{}' is not registered on this worker",
                signature.task
            ),
        )
        .in_module("celery.exceptions"));
    };
    let mut results = Vec::with_capacity(items.len());
    for item in items {
        let args = match (star, item) {
            (true, Value::Array(args)) => args,
            (true, other) => {
                return Err(TaskError::type_error(format!(
                    "celery.starmap needs argument lists, got {other}"
                )))
            }
            (false, item) => vec![item],
        };
        let call = task.call(ctx.clone(), args, signature.kwargs.clone())?;
        results.push(call.run_to_end().await?);
    }
    Ok(Value::Array(results))
}

/// `celery.chunks`: a group of `celery.starmap` tasks of `size` items.
async fn send_chunks(
    app: &App,
    signature: Signature,
    items: Vec<Value>,
    size: usize,
) -> Result<Value, TaskError> {
    if size == 0 {
        return Err(TaskError::new("ValueError", "chunks need a positive size"));
    }
    let mut kwargs = Map::new();
    kwargs.insert("task".into(), signature.to_value());
    kwargs.insert("it".into(), Value::Array(items));
    kwargs.insert("n".into(), Value::from(size));
    let mut chunks = Signature::new(CHUNKS_TASK, Vec::new(), kwargs);
    chunks.subtask_type = Some("chunks".into());
    let sent = app
        .apply_from(&chunks, super::apply::Origin::default())
        .await
        .map_err(|e| e.to_task_error())?;
    Ok(sent.as_tuple())
}
