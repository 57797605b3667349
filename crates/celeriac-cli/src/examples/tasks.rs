//! The example tasks: what the `celeriac` binary registers (and `bench`
//! runs in any project's binary).
//!
//! This module doubles as an example of writing tasks with `#[task]`: a plain
//! `fn` runs on the blocking pool, an `async fn` on the runtime, `bind` gives
//! the [`Context`] (task id, progress reports), and errors are
//! [`TaskError`]s carrying a Python-style exception type.
//!
//! 1. The seed's example tasks, under the names Python producers use:
//!    `tasks.add(x, y)`, `tasks.wait_and_return()`, `tasks.sum_to_n_job(n)`.
//! 2. Tasks for tests and benchmarks, mirroring `tests/python/pytasks.py`
//!    where the names overlap: `tasks.noop()`, `tasks.echo(x)`,
//!    `tasks.fail(msg)`, `tasks.panic()`, `tasks.sleep(s)`, and
//!    `tasks.xsum(values)`, a chord body (Celery's own test suite has one
//!    by that name).
//!
//! [`register`] registers them all on an [`AppBuilder`];
//! [`producer_routes`] declares the seed's HTTP producer routes that send
//! two of them (a binary's `serve` gets them through
//! [`crate::Project::producer_routes`]). None of them
//! touches the file system; the test tasks that do (`tasks.record`) live in
//! [`crate::test_tasks`] and are registered only on request.

use std::sync::Mutex;
use std::time::Duration;

use celeriac::{task, AppBuilder, Context, TaskError};
use celeriac_http::{ArgType, ProducerRoute};
use serde_json::{json, Number, Value};

/// Environment variable overriding how long `tasks.wait_and_return` sleeps.
pub(crate) const WAIT_AND_RETURN_ENV: &str = "CELERIAC_WAIT_AND_RETURN_SECS";
/// The seed's `wait_and_return` sleeps 20 seconds.
const WAIT_AND_RETURN_DEFAULT_SECS: f64 = 20.0;

/// The `wait_and_return` sleep set in this process, if any (wins over the
/// environment).
static WAIT_AND_RETURN_OVERRIDE: Mutex<Option<f64>> = Mutex::new(None);

/// Register every example task on `builder`.
pub fn register(builder: AppBuilder) -> AppBuilder {
    builder
        .task(add)
        .task(wait_and_return)
        .task(sum_to_n_job)
        .task(noop)
        .task(echo)
        .task(fail)
        .task(panic)
        .task(sleep)
        .task(xsum)
}

/// Set how long `tasks.wait_and_return` sleeps in this process (the demo's
/// in-process worker uses a short sleep), overriding the environment.
pub(crate) fn set_wait_and_return_secs(seconds: f64) {
    *WAIT_AND_RETURN_OVERRIDE
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = Some(seconds.max(0.0));
}

/// The `wait_and_return` sleep: the override, else the environment, else 20 s.
fn wait_and_return_secs() -> Result<f64, TaskError> {
    let set_here = *WAIT_AND_RETURN_OVERRIDE
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(seconds) = set_here {
        return Ok(seconds);
    }
    match std::env::var(WAIT_AND_RETURN_ENV) {
        Ok(text) => text
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .ok_or_else(|| {
                TaskError::new(
                    "ValueError",
                    format!("{WAIT_AND_RETURN_ENV} must be a number of seconds, got {text:?}"),
                )
            }),
        Err(_) => Ok(WAIT_AND_RETURN_DEFAULT_SECS),
    }
}

/// `x + y`. Integers stay integers (`add(2, 3)` is `5`); any float makes the
/// sum a float (`add(2.5, 1)` is `3.5`), as in Python.
#[task(name = "tasks.add")]
pub(crate) fn add(x: Number, y: Number) -> Result<Number, TaskError> {
    if let (Some(a), Some(b)) = (as_integer(&x), as_integer(&y)) {
        let sum = a + b;
        return i64::try_from(sum)
            .map(Number::from)
            .or_else(|_| u64::try_from(sum).map(Number::from))
            .map_err(|_| {
                TaskError::new(
                    "OverflowError",
                    format!("{x} + {y} does not fit in 64 bits"),
                )
            });
    }
    let (a, b) = (number_as_f64(&x), number_as_f64(&y));
    Number::from_f64(a + b)
        .ok_or_else(|| TaskError::new("OverflowError", format!("{x} + {y} is not a finite number")))
}

/// An integral JSON number, widened so that any two add up exactly.
fn as_integer(n: &Number) -> Option<i128> {
    n.as_i64()
        .map(i128::from)
        .or_else(|| n.as_u64().map(i128::from))
}

fn number_as_f64(n: &Number) -> f64 {
    n.as_f64().unwrap_or(f64::NAN)
}

/// The seed's producer routes, served by `celeriac serve` under
/// `/producer/api/`: `POST /producer/api/wait_and_return` (no body) sends
/// [`wait_and_return`]; `POST /producer/api/sum` `{"number": n}` sends
/// [`sum_to_n_job`]`(n)`. Each answers `{"message": "job published",
/// "job_id"}`, and `GET /producer/api/{name}/{job_id}` `{"ready", "result"}`.
pub fn producer_routes() -> Vec<ProducerRoute> {
    vec![
        ProducerRoute::new("wait_and_return", wait_and_return::NAME)
            .description("Queue the task that waits 20 s and returns \"Hello World!\"."),
        ProducerRoute::new("sum", sum_to_n_job::NAME)
            .arg("number", ArgType::UnsignedInteger)
            .description("Queue the sum of 1..=number."),
    ]
}

/// Sleep (20 s, or `CELERIAC_WAIT_AND_RETURN_SECS`), then return
/// `"Hello World!"`.
#[task(name = "tasks.wait_and_return")]
pub(crate) async fn wait_and_return() -> Result<String, TaskError> {
    tokio::time::sleep(Duration::from_secs_f64(wait_and_return_secs()?)).await;
    Ok("Hello World!".to_owned())
}

/// Add up 1..=n, reporting `PROGRESS` with `{"current", "total"}` about
/// every 5 % for large `n` (over a million).
#[task(name = "tasks.sum_to_n_job", bind)]
pub(crate) fn sum_to_n_job(ctx: &Context, n: u64) -> Result<u64, TaskError> {
    const REPORT_ABOVE: u64 = 1_000_000;
    let step = if n > REPORT_ABOVE {
        n.div_ceil(20)
    } else {
        n.max(1)
    };
    let overflow = || {
        TaskError::new(
            "OverflowError",
            format!("the sum of 1..={n} does not fit in 64 bits"),
        )
    };
    let mut total: u64 = 0;
    let mut start = 1;
    while start <= n {
        let end = start.saturating_add(step - 1).min(n);
        for i in start..=end {
            // black_box keeps the loop a loop, so the progress is real work.
            total = total
                .checked_add(std::hint::black_box(i))
                .ok_or_else(overflow)?;
        }
        if n > REPORT_ABOVE {
            // Progress is best effort: a backend hiccup must not fail the sum.
            if let Err(err) =
                ctx.update_state_blocking("PROGRESS", json!({"current": end, "total": n}))
            {
                tracing::warn!(error = %err, "could not report progress");
            }
        }
        if end == n {
            break;
        }
        start = end + 1;
    }
    Ok(total)
}

/// Do nothing (benchmarks measure the queue, not the task).
#[task(name = "tasks.noop")]
pub(crate) async fn noop() -> Result<(), TaskError> {
    Ok(())
}

/// Return `x` unchanged.
#[task(name = "tasks.echo")]
pub(crate) async fn echo(x: Value) -> Result<Value, TaskError> {
    Ok(x)
}

/// Fail with `ValueError(msg)`, as `tests/python/pytasks.py` does.
#[task(name = "tasks.fail")]
pub(crate) async fn fail(msg: String) -> Result<(), TaskError> {
    Err(TaskError::new("ValueError", msg))
}

/// Panic with the message `"tasks.panic was called"`; the worker must turn
/// it into a FAILURE and go on.
#[task(name = "tasks.panic")]
pub(crate) fn panic() -> Result<(), TaskError> {
    std::panic::panic_any("tasks.panic was called".to_owned())
}

/// Sleep `s` seconds without holding a thread, then return `s` as given
/// (`sleep(3)` returns `3`, as in Python).
#[task(name = "tasks.sleep")]
pub(crate) async fn sleep(s: Number) -> Result<Number, TaskError> {
    let seconds = number_as_f64(&s);
    let duration = Duration::try_from_secs_f64(seconds)
        .map_err(|_| TaskError::new("ValueError", format!("cannot sleep {s} seconds")))?;
    tokio::time::sleep(duration).await;
    Ok(s)
}

/// The sum of a list of numbers, as Python's `sum(values)`: integers stay
/// integers, any float makes it a float. A chord body: `chord(header,
/// xsum.s())` adds up the header's results.
#[task(name = "tasks.xsum")]
pub(crate) fn xsum(values: Vec<Number>) -> Result<Number, TaskError> {
    let mut total = Number::from(0);
    for value in values {
        total = add::run(total, value)?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(v: Value) -> Number {
        match v {
            Value::Number(n) => n,
            other => panic!("not a number: {other}"),
        }
    }

    #[test]
    fn add_keeps_integers_and_promotes_floats() -> Result<(), TaskError> {
        assert_eq!(add::run(n(json!(2)), n(json!(3)))?, n(json!(5)));
        assert_eq!(add::run(n(json!(2.5)), n(json!(1)))?, n(json!(3.5)));
        assert_eq!(add::run(n(json!(-2)), n(json!(3)))?, n(json!(1)));
        let err = add::run(n(json!(i64::MAX)), n(json!(-1i64 + i64::MAX))).map(|_| ());
        assert!(err.is_ok(), "u64 sums still fit");
        let err = add::run(n(json!(u64::MAX)), n(json!(1))).expect_err("overflow");
        assert_eq!(err.exc_type, "OverflowError");
        Ok(())
    }

    #[test]
    fn xsum_adds_a_list_as_python_does() -> Result<(), TaskError> {
        assert_eq!(xsum::run(vec![])?, n(json!(0)));
        let ints = (0..10_000).map(|i| n(json!(i))).collect();
        assert_eq!(xsum::run(ints)?, n(json!(49_995_000)));
        assert_eq!(xsum::run(vec![n(json!(1)), n(json!(0.5))])?, n(json!(1.5)));
        let err = xsum::run(vec![n(json!(u64::MAX)), n(json!(1))]).expect_err("overflow");
        assert_eq!(err.exc_type, "OverflowError");
        Ok(())
    }

    #[test]
    fn the_seeds_producer_routes_are_valid_and_send_shipped_tasks() {
        let routes = producer_routes();
        let config = celeriac_http::HttpConfig {
            producer_routes: routes.clone(),
            ..celeriac_http::HttpConfig::default()
        };
        assert!(config.check().is_ok());
        let names: Vec<(&str, &str)> = routes.iter().map(|r| (r.name(), r.task())).collect();
        assert_eq!(
            names,
            [
                ("wait_and_return", "tasks.wait_and_return"),
                ("sum", "tasks.sum_to_n_job")
            ]
        );
        assert_eq!(routes[1].args().len(), 1);
        assert_eq!(routes[1].args()[0].name, "number");
    }

    #[test]
    fn sum_to_n_adds_up() -> Result<(), TaskError> {
        let ctx = Context::detached("t", "tasks.sum_to_n_job");
        assert_eq!(sum_to_n_job::run(&ctx, 0)?, 0);
        assert_eq!(sum_to_n_job::run(&ctx, 10)?, 55);
        assert_eq!(
            sum_to_n_job::run(&ctx, 2_000_001)?,
            2_000_001 * 2_000_002 / 2
        );
        Ok(())
    }
}
