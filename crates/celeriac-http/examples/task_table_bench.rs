//! How fast `GET /api/tasks` answers a filtered page over 100,000
//! remembered tasks (the dashboard's task table), over real HTTP.
//!
//! ```text
//! cargo run --release -p celeriac-http --example task_table_bench -- [TASKS] [REQUESTS]
//! ```
//!
//! A real `celeriac_http::serve` on a loopback port, fed `TASKS` tasks
//! (default 100,000) as Celery events (`task-received`, then
//! `task-succeeded` or, one in ten, `task-failed`) through the app's
//! in-process event bus, exactly as a worker's events arrive. Then
//! `REQUESTS` (default 400) sequential requests of each of five queries
//! the dashboard makes: a state + worker filter, a search by argument
//! value, a name filter sorted by runtime on page 3, a time range, and the
//! unfiltered first page. Prints p50/p99/max per query; exits 1 when any
//! p99 is above 50 ms.

use std::time::{Duration, Instant};

use celeriac::protocol::Event;
use celeriac::App;
use celeriac_http::HttpConfig;

const NAMES: [&str; 5] = [
    "tasks.add",
    "tasks.sum_to_n_job",
    "tasks.wait_and_return",
    "posts.rank",
    "posts.extract_entities",
];

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let tasks: usize = args.next().map_or(Ok(100_000), |a| a.parse())?;
    let requests: usize = args.next().map_or(Ok(400), |a| a.parse())?;
    let url = format!("memory://task-table-bench-{}", std::process::id());
    let app = App::builder()
        .broker_url(&url)
        .backend_url(&url)
        .build()
        .await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let config = HttpConfig {
        history: tasks,
        enable_events: false,
        ..HttpConfig::default()
    };
    tokio::spawn(celeriac_http::serve(
        listener,
        app.clone(),
        config,
        std::future::pending(),
    ));
    let client = reqwest::Client::new();
    let remembered = |client: reqwest::Client, base: String| async move {
        let page: serde_json::Value = client
            .get(format!("{base}/api/tasks?limit=1"))
            .send()
            .await?
            .json()
            .await?;
        Ok::<_, reqwest::Error>(page["remembered"].as_u64().unwrap_or(0) as usize)
    };
    // Wait for the server.
    let deadline = Instant::now() + Duration::from_secs(10);
    while remembered(client.clone(), base.clone()).await.is_err() {
        assert!(Instant::now() < deadline, "the server did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Feed the tasks, 1,000 at a time (the bus keeps 4,096 events per
    // listener), waiting for the monitor to have each batch.
    let t0 = 1_700_000_000.0_f64;
    let fed = Instant::now();
    let mut sent = 0;
    while sent < tasks {
        let batch = (tasks - sent).min(1000);
        for i in sent..sent + batch {
            let id = format!("{i:08}-bench-task");
            let worker = format!("w{}@bench", i % 4);
            let at = t0 + i as f64 * 0.01;
            app.events()
                .publish(
                    &Event::new("task-received", &worker, 0)
                        .with("uuid", id.as_str())
                        .with("name", NAMES[i % NAMES.len()])
                        .with("args", format!("({i}, {})", i * 7))
                        .with("kwargs", "{}")
                        .with("timestamp", at),
                )
                .await?;
            let done = if i % 10 == 3 {
                Event::new("task-failed", &worker, 0)
                    .with("exception", format!("ValueError('bad input {i}')"))
            } else {
                Event::new("task-succeeded", &worker, 0)
                    .with("result", format!("{}", i * 8))
                    .with("runtime", (i % 997) as f64 / 1000.0)
            };
            app.events()
                .publish(&done.with("uuid", id.as_str()).with("timestamp", at + 0.5))
                .await?;
        }
        sent += batch;
        let deadline = Instant::now() + Duration::from_secs(30);
        while remembered(client.clone(), base.clone()).await? < sent {
            assert!(
                Instant::now() < deadline,
                "the monitor did not take batch {sent}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    println!(
        "{tasks} tasks remembered in {:.1} s",
        fed.elapsed().as_secs_f64()
    );

    let middle = t0 + tasks as f64 * 0.01 / 2.0;
    let queries = [
        (
            "state + worker filter",
            "state=FAILURE&worker=w3@bench&limit=50".to_owned(),
        ),
        (
            "search by argument value",
            format!("q=({},&limit=50", tasks / 3),
        ),
        (
            "name, sorted by runtime, page 3",
            "name=posts.rank&sort=runtime&order=desc&offset=100&limit=50".to_owned(),
        ),
        (
            "time range, oldest first",
            format!(
                "since={middle}&until={}&sort=received&order=asc&limit=50",
                middle + 600.0
            ),
        ),
        ("first page, no filter", "limit=50".to_owned()),
    ];
    let mut worst = 0.0_f64;
    println!(
        "{:<34} {:>8} {:>9} {:>9} {:>9}",
        "query", "matches", "p50 ms", "p99 ms", "max ms"
    );
    for (label, query) in &queries {
        let url = format!("{base}/api/tasks?{query}");
        let mut times = Vec::with_capacity(requests);
        let mut matches = 0;
        for _ in 0..requests {
            let start = Instant::now();
            let page: serde_json::Value = client.get(&url).send().await?.json().await?;
            times.push(start.elapsed().as_secs_f64() * 1e3);
            matches = page["total"].as_u64().unwrap_or(0);
        }
        times.sort_by(f64::total_cmp);
        let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
        let (p50, p99, max) = (at(0.5), at(0.99), times[times.len() - 1]);
        worst = worst.max(p99);
        println!("{label:<34} {matches:>8} {p50:>9.2} {p99:>9.2} {max:>9.2}");
        assert!(matches > 0, "{label} matched nothing");
    }
    println!("worst p99: {worst:.2} ms (limit 50 ms)");
    if worst > 50.0 {
        std::process::exit(1);
    }
    Ok(())
}
