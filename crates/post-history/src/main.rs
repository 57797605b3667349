//! `post-history`: the post-history system as one binary. Every `celeriac`
//! command ([`celeriac_cli::Project`]) runs the example tasks and the posts
//! tasks (`worker --posts-db`, `beat`, `call`, `serve`, …); the system's
//! own commands prepare data and serve rankings.

mod commands;

use std::path::{Path, PathBuf};

use celeriac::AppBuilder;
use celeriac_cli::{examples, Project};
use posts::tasks::PostsConfig;

// mimalloc instead of glibc's malloc: the worker, the servers and the seeder
// allocate many short-lived small objects per message, request and row, and
// glibc's free lists cost a quarter of their CPU time (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Options of every command.
#[derive(Debug, Clone, clap::Args)]
struct Options {
    /// Posts database the post-history tasks read (tasks.query_posts_db,
    /// tasks.substring_matches_by_platform, tasks.count_top_named_entities)
    /// [default: posts.db; for demo, a generated scratch database]
    #[arg(long, value_name = "FILE", env = posts::tasks::POSTS_DB_ENV)]
    posts_db: Option<PathBuf>,
}

impl Options {
    /// The tasks' settings, with the database `default` when none is given.
    fn posts(&self, default: &Path) -> PostsConfig {
        PostsConfig::new(self.posts_db.as_deref().unwrap_or(default))
    }
}

/// The system's own commands.
#[derive(Debug, clap::Subcommand)]
enum Own {
    /// Run the example tasks, then the whole post-history system, on an in-process worker
    /// (no server needed): posts database, scheduled job, the seed's worker.py flow, /rank.
    Demo(examples::demo::DemoArgs),
    /// Generate realistic raw sample data (Facebook CSV, Reddit CSV, Twitter JSONL).
    SampleData(commands::data::SampleDataArgs),
    /// Normalize raw sample data into ContentItem JSON Lines, one file per platform.
    Preprocess(commands::data::PreprocessArgs),
    /// Seed the posts database from normalized JSON Lines.
    Seed(commands::data::SeedArgs),
    /// Extract named entities from text, or evaluate the extractor on the shipped labelled set.
    Entities(commands::entities::EntitiesArgs),
    /// Serve POST /rank: feeds reordered by the scheduled top named entities.
    RankServer(commands::rank_server::Args),
}

/// The example tasks and the posts tasks reading `posts`.
fn register(builder: AppBuilder, posts: &PostsConfig) -> AppBuilder {
    posts::tasks::register(examples::register(builder), posts)
}

fn run(own: Own, options: &Options) -> anyhow::Result<()> {
    match own {
        Own::Demo(args) => celeriac_cli::block_on(async {
            let posts = |dir: &Path| options.posts(&dir.join("posts.db"));
            examples::demo::run_then(
                args,
                |builder, dir| register(builder, &posts(dir)),
                async |app, dir, timeout| {
                    commands::demo_posts::run(app, &posts(dir), dir, timeout).await
                },
            )
            .await
        }),
        Own::SampleData(args) => commands::data::sample_data(args),
        Own::Preprocess(args) => commands::data::preprocess(args),
        Own::Seed(args) => commands::data::seed(args),
        Own::Entities(args) => commands::entities::run(args),
        Own::RankServer(args) => celeriac_cli::block_on(commands::rank_server::run(args)),
    }
}

fn main() -> std::process::ExitCode {
    Project::with_options("post-history")
        .about(
            "The post-history system on Celeriac: posts tasks, scheduled entities, ranking server",
        )
        .version(env!("CARGO_PKG_VERSION"))
        .tasks_with_options(|builder, options: &Options| {
            register(
                builder,
                &options.posts(Path::new(posts::tasks::DEFAULT_POSTS_DB)),
            )
        })
        .producer_routes(examples::producer_routes())
        .commands(run)
        .run()
}
