//! The post-history part of `post-history demo`: the seed's whole system on one
//! machine (SPEC §5).
//!
//! 1. Posts database: use the one given (`--posts-db`/`POSTS_DB_PATH`), or
//!    generate sample data, preprocess it and seed a scratch database
//!    ([`posts::seed::ensure_demo_database`]).
//! 2. The scheduled job: a beat in this process with the
//!    `top-named-entities` entry (every 300 s, the last 24 h), and one run
//!    sent at once, so the key the ranking server reads is there from the
//!    start.
//! 3. The seed's `worker.py`: `tasks.query_posts_db`,
//!    `tasks.substring_matches_by_platform("trump", …)` and
//!    `tasks.count_top_named_entities(10, …, "my_worker:top_named_entities")`
//!    sent with `delay`; results printed; the explicit key read, then deleted.
//! 4. The ranking server on a free localhost port, and an example `/rank`
//!    request built from the database (a reddit feed mixing items that
//!    mention a top entity and items that do not), printed with the answer.
//!
//! Time windows end at the current time, or at the newest post when the
//! database is older than a day (a `--no-user-pool` database keeps the
//! sample data's own dates).

use std::io::IsTerminal as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use celeriac::beat::{Beat, TIME_FORMAT};
use celeriac::shutdown::Shutdown;
use celeriac::{App, SendOptions};
use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use posts::ranking::server::RankServerConfig;
use posts::ranking::{parse_entities, EntityMatcher, MatchOptions};
use posts::tasks::{self, PostsConfig, SCHEDULED_TOP_ENTITIES_KEY};
use serde_json::{json, Map, Value};

/// `println!` that does not tear the progress spinner.
macro_rules! say {
    ($steps:expr, $($arg:tt)*) => {
        $steps.0.suspend(|| println!($($arg)*))
    };
}

/// The explicit key of the `worker.py` flow (read, then deleted).
const WORKER_PY_KEY: &str = "my_worker:top_named_entities";

/// Run the post-history demo on `app` (whose worker is running and has the
/// post tasks registered for `posts`). `work_dir` holds generated data.
pub(crate) async fn run(
    app: &App,
    posts: &PostsConfig,
    work_dir: &Path,
    timeout: Duration,
) -> anyhow::Result<()> {
    let steps = Steps::new();
    say!(steps, "");
    say!(
        steps,
        "post-history system (the seed's worker, scheduled job and ranking server):"
    );

    // 1. The posts database.
    steps.show("posts database: generating sample data, preprocessing, seeding");
    let db = posts.db_path.clone();
    let data_dir = work_dir.join("sample");
    let started = std::time::Instant::now();
    let report =
        tokio::task::spawn_blocking(move || posts::seed::ensure_demo_database(&db, &data_dir))
            .await
            .context("the seeding thread panicked")??;
    let (rows, newest) = db_summary(&posts.db_path)?;
    match report {
        Some(r) => say!(
            steps,
            "  posts database {}: sample data generated, preprocessed and seeded \
             ({} rows) in {:.1} s",
            posts.db_path.display(),
            r.rows_inserted,
            started.elapsed().as_secs_f64()
        ),
        None => say!(
            steps,
            "  posts database {}: {rows} rows (already there)",
            posts.db_path.display()
        ),
    }
    let now = Utc::now();
    let to = match newest {
        Some(newest) if newest < now - chrono::Duration::days(1) => newest,
        _ => now,
    };
    let day = (fmt(to - chrono::Duration::days(1)), fmt(to));
    let hour = (fmt(to - chrono::Duration::hours(1)), fmt(to));
    say!(steps, "  window: {} to {} (the last 24 h)", day.0, day.1);

    // 2. The scheduled job: a beat for the 5-minute runs, and one run now.
    steps.show("scheduled job: top named entities of the last 24 h");
    let entry =
        tasks::top_entities_entry(Duration::from_secs(300), Duration::from_secs(86_400), 10)?;
    let (stop_beat, beat_shutdown) = Shutdown::new();
    let beat = Beat::new(app.clone()).entry(entry).spawn(beat_shutdown);
    call(
        app,
        tasks::COUNT_TOP_NAMED_ENTITIES,
        vec![
            json!(10),
            json!(day.0),
            json!(day.1),
            json!(SCHEDULED_TOP_ENTITIES_KEY),
        ],
        timeout,
    )
    .await?;
    let scheduled = app
        .backend()
        .get_value(SCHEDULED_TOP_ENTITIES_KEY)
        .await?
        .unwrap_or_default();
    say!(
        steps,
        "  beat: every 5m, tasks.count_top_named_entities(10, {{now-24h}}, {{now}}, \
         {SCHEDULED_TOP_ENTITIES_KEY:?}); ran once now:"
    );
    say!(
        steps,
        "  {SCHEDULED_TOP_ENTITIES_KEY} = {}",
        shorten(&scheduled, 400)
    );

    // 3. The seed's worker.py.
    steps.show("worker.py: the three tasks");
    say!(steps, "  worker.py flow:");
    let sql = format!(
        "SELECT platform, post_blob FROM posts WHERE created_at BETWEEN '{}' AND '{}';",
        hour.0, hour.1
    );
    let rows = call(app, tasks::QUERY_POSTS_DB, vec![json!(sql)], timeout).await?;
    let rows = rows.as_array().cloned().unwrap_or_default();
    say!(
        steps,
        "  tasks.query_posts_db({:?}) -> {} rows; the last {}:",
        sql.trim_end_matches(';'),
        rows.len(),
        rows.len().min(5)
    );
    for row in rows.iter().rev().take(5).rev() {
        say!(steps, "    {}", describe_row(row));
    }
    let counts = call(
        app,
        tasks::SUBSTRING_MATCHES_BY_PLATFORM,
        vec![json!("trump"), json!(day.0), json!(day.1)],
        timeout,
    )
    .await?;
    say!(
        steps,
        "  tasks.substring_matches_by_platform(\"trump\", {:?}, {:?}) -> {counts}",
        day.0,
        day.1
    );
    let done = call(
        app,
        tasks::COUNT_TOP_NAMED_ENTITIES,
        vec![json!(10), json!(day.0), json!(day.1), json!(WORKER_PY_KEY)],
        timeout,
    )
    .await?;
    let stored = app.backend().get_value(WORKER_PY_KEY).await?;
    let deleted = app.backend().delete_value(WORKER_PY_KEY).await?;
    let Some(stored) = stored else {
        bail!("tasks.count_top_named_entities returned {done} but stored nothing under {WORKER_PY_KEY}");
    };
    say!(
        steps,
        "  tasks.count_top_named_entities(10, {:?}, {:?}, {WORKER_PY_KEY:?}) -> {done}",
        day.0,
        day.1
    );
    say!(steps, "  read {WORKER_PY_KEY} = {}", shorten(&stored, 400));
    say!(
        steps,
        "  deleted {WORKER_PY_KEY}: {}",
        if deleted {
            "yes"
        } else {
            "it was already gone"
        }
    );

    // 4. The ranking server and an example /rank.
    steps.show("ranking server: example /rank");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the ranking server")?;
    let addr = listener.local_addr()?;
    let (stop_server, server_shutdown) = Shutdown::new();
    let server_config = RankServerConfig {
        refresh_every: Duration::from_secs(1),
        ..RankServerConfig::default()
    };
    let backend = Arc::clone(app.backend());
    let server = tokio::spawn(async move {
        posts::ranking::server::run(listener, backend, &server_config, server_shutdown).await
    });
    say!(
        steps,
        "  ranking server on http://{addr} (entities from {SCHEDULED_TOP_ENTITIES_KEY})"
    );
    let entities = parse_entities(&scheduled).unwrap_or_default();
    let matcher = EntityMatcher::new(entities, MatchOptions::default())?;
    let example = example_request(posts, &matcher, &day)?;
    let outcome = post_rank(addr, &example.body, timeout).await;
    stop_server.fire();
    stop_beat.fire();
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), beat).await;
    steps.finish();
    let answer = outcome?;
    say!(
        steps,
        "  POST /rank, a reddit feed of {} items:",
        example.items.len()
    );
    for (n, (id, text, mention)) in example.items.iter().enumerate() {
        let mention = match mention {
            Some(entity) => format!("mentions {entity:?}"),
            None => "mentions no top entity".to_owned(),
        };
        say!(
            steps,
            "    #{} {}  {mention:<26} {:?}",
            n + 1,
            shorten(id, 10),
            shorten(text, 60)
        );
    }
    let ranked: Vec<String> =
        serde_json::from_value(answer["ranked_ids"].clone()).unwrap_or_default();
    let positions: Vec<String> = ranked
        .iter()
        .map(
            |id| match example.items.iter().position(|(i, _, _)| i == id) {
                Some(n) => format!("#{}", n + 1),
                None => format!("{id:?}?"),
            },
        )
        .collect();
    say!(
        steps,
        "  -> ranked_ids: {}  ({})",
        positions.join(" "),
        shorten(&answer.to_string(), 120)
    );
    if ranked != example.expected {
        bail!(
            "/rank answered {ranked:?}, expected {:?} (items without a top entity first)",
            example.expected
        );
    }
    say!(
        steps,
        "  items without a top entity first, each group in feed order: as expected"
    );
    Ok(())
}

/// Send `name(args)` and wait for its value.
async fn call(app: &App, name: &str, args: Vec<Value>, timeout: Duration) -> anyhow::Result<Value> {
    app.send_task(name, args, Map::new(), SendOptions::new())
        .await
        .with_context(|| format!("sending {name}"))?
        .get(timeout)
        .await
        .with_context(|| format!("waiting for {name}"))
}

/// The number of posts and the newest `created_at`.
fn db_summary(path: &Path) -> anyhow::Result<(i64, Option<DateTime<Utc>>)> {
    let conn = posts::db::open_read_only(path)?;
    let (rows, newest): (i64, Option<String>) = conn
        .query_row("SELECT count(*), max(created_at) FROM posts", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .with_context(|| format!("reading {}", path.display()))?;
    let newest = newest.and_then(|s| posts::models::datetime::parse_datetime(&s).ok());
    Ok((rows, newest))
}

/// A time as the posts database writes it.
fn fmt(t: DateTime<Utc>) -> String {
    t.format(TIME_FORMAT).to_string()
}

/// An example feed and the order `/rank` must give it.
struct Example {
    body: Value,
    /// Item id, text, and the entity it mentions.
    items: Vec<(String, String, Option<String>)>,
    expected: Vec<String>,
}

/// A reddit feed from the window: up to three items mentioning a top entity
/// and three not, alternating, starting with one that mentions.
fn example_request(
    posts: &PostsConfig,
    matcher: &EntityMatcher,
    window: &(String, String),
) -> anyhow::Result<Example> {
    let conn = posts::db::open_read_only(&posts.db_path)?;
    let mut stmt = conn.prepare(
        "SELECT post_blob FROM posts WHERE platform = 'reddit' AND created_at BETWEEN ?1 AND ?2 \
         ORDER BY created_at DESC LIMIT 2000",
    )?;
    let blobs = stmt
        .query_map([&window.0, &window.1], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for blob in blobs {
        let Ok(item) = posts::models::from_json::<posts::models::ContentItem>(blob.as_bytes())
        else {
            continue;
        };
        let mention = matcher.find(&item.text).map(str::to_owned);
        let bucket = if mention.is_some() {
            &mut with
        } else {
            &mut without
        };
        if bucket.len() < 3 {
            bucket.push((item, mention));
        }
        if with.len() == 3 && without.len() == 3 {
            break;
        }
    }
    let mut chosen = Vec::new();
    let (mut a, mut b) = (with.into_iter(), without.into_iter());
    loop {
        let (x, y) = (a.next(), b.next());
        if x.is_none() && y.is_none() {
            break;
        }
        chosen.extend(x);
        chosen.extend(y);
    }
    if chosen.is_empty() {
        bail!(
            "no reddit posts between {} and {} to build an example feed",
            window.0,
            window.1
        );
    }
    let expected: Vec<String> = chosen
        .iter()
        .filter(|(_, m)| m.is_none())
        .chain(chosen.iter().filter(|(_, m)| m.is_some()))
        .map(|(item, _)| item.id.clone())
        .collect();
    let items = chosen
        .iter()
        .map(|(item, m)| (item.id.clone(), item.text.clone(), m.clone()))
        .collect();
    let body = json!({
        "session": {
            "user_id": "demo-user",
            "user_name_hash": "6511c5688bbb87798128695a283411a26da532df06e6e931a53416e379ddda0e",
            "platform": "reddit",
            "cohort": "AB",
            "current_time": window.1,
        },
        "items": chosen.iter().map(|(item, _)| item).collect::<Vec<_>>(),
    });
    Ok(Example {
        body,
        items,
        expected,
    })
}

/// POST `body` to `http://addr/rank`; the JSON answer.
async fn post_rank(
    addr: std::net::SocketAddr,
    body: &Value,
    timeout: Duration,
) -> anyhow::Result<Value> {
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .context("building the HTTP client")?;
    let response = client
        .post(format!("http://{addr}/rank"))
        .json(body)
        .send()
        .await
        .context("POST /rank")?;
    let status = response.status();
    let answer: Value = response.json().await.context("reading the /rank answer")?;
    if !status.is_success() {
        bail!("POST /rank answered {status}: {answer}");
    }
    Ok(answer)
}

/// A `[platform, post_blob]` row as `[platform, "text…"]`.
fn describe_row(row: &Value) -> String {
    let platform = row[0].as_str().unwrap_or("?");
    let text = row[1]
        .as_str()
        .and_then(|blob| serde_json::from_str::<Value>(blob).ok())
        .and_then(|item| item["text"].as_str().map(str::to_owned))
        .unwrap_or_default();
    format!("[{platform:?}, {{\"text\": {:?}, …}}]", shorten(&text, 70))
}

/// `s`, cut to `max` characters with an ellipsis.
fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

/// A spinner on stderr naming the current step (terminal only).
struct Steps(ProgressBar);

impl Steps {
    fn new() -> Steps {
        if !std::io::stderr().is_terminal() {
            return Steps(ProgressBar::hidden());
        }
        let bar = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(100));
        Steps(bar)
    }

    fn show(&self, step: &'static str) {
        self.0.set_message(step);
    }

    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

impl Drop for Steps {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDateTime;

    #[test]
    fn shorten_cuts_on_characters() {
        assert_eq!(shorten("héllo", 2), "hé…");
        assert_eq!(shorten("ok", 5), "ok");
    }

    #[test]
    fn times_use_the_database_format() {
        let t = NaiveDateTime::parse_from_str("2024-01-20 18:41:20", TIME_FORMAT)
            .map(|t| t.and_utc())
            .unwrap_or_default();
        assert_eq!(fmt(t), "2024-01-20 18:41:20");
    }
}
