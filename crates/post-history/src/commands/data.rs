//! `sample-data`, `preprocess` and `seed`: building the posts database.
//!
//! Thin wrappers: flags → options of [`posts::sample`], [`posts::raw`] and
//! [`posts::seed`], then a short summary on stdout.

use anyhow::Context;
use posts::raw::{PreprocessOptions, DEFAULT_SALT};
use posts::sample::SampleOptions;
use posts::seed::{ActivityDistribution, IfExists, PlatformDistribution, SeedOptions};
use std::io::IsTerminal;
use std::path::PathBuf;

/// Arguments of `post-history sample-data`.
#[derive(Debug, clap::Args)]
pub(crate) struct SampleDataArgs {
    /// Directory to write the raw files into (created if needed).
    #[arg(long, default_value = "data/raw")]
    out: PathBuf,
    /// Random seed: the same seed and size give byte-identical files.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Total number of items (posts and their comments) over the three platforms.
    #[arg(long, default_value_t = 20_000)]
    posts: usize,
}

/// Arguments of `post-history preprocess`.
#[derive(Debug, clap::Args)]
pub(crate) struct PreprocessArgs {
    /// Directory of the raw files (facebook_posts.csv, facebook_comments.csv, reddit.csv, twitter.jsonl).
    #[arg(long = "in", default_value = "data/raw")]
    input: PathBuf,
    /// Directory to write facebook.jsonl, reddit.jsonl and twitter.jsonl into.
    #[arg(long, default_value = "data/normalized")]
    out: PathBuf,
    /// Salt of the SHA-256 ids and author hashes.
    #[arg(long, env = "CELERIAC_SALT", default_value = DEFAULT_SALT)]
    salt: String,
}

/// Arguments of `post-history seed`.
#[derive(Debug, clap::Args)]
pub(crate) struct SeedArgs {
    /// Directory of the normalized files (facebook.jsonl, reddit.jsonl, twitter.jsonl).
    #[arg(long, default_value = "data/normalized")]
    data: PathBuf,
    /// Number of users to simulate.
    #[arg(long, default_value_t = 500)]
    n_users: usize,
    /// Sessions per user per day at activity level 1.
    #[arg(long, default_value_t = 1.0)]
    baseline_sessions_per_day: f64,
    /// Items (posts) per session.
    #[arg(long, default_value_t = 10)]
    items_per_session: usize,
    /// Activity level → relative share of users, e.g. "0.2:20,1:65,5:15".
    #[arg(long, default_value = "1:1")]
    activity_distribution: String,
    /// Platform → relative share of users, e.g. "facebook:11,reddit:7.4,twitter:1.25", or "auto" (by number of posts).
    #[arg(long, default_value = "auto")]
    platform_distribution: String,
    /// One super-feed session per platform, one test user, original timestamps.
    #[arg(long)]
    no_user_pool: bool,
    /// The posts database file.
    #[arg(long, env = "POSTS_DB_PATH", default_value = "posts.db")]
    dbname: PathBuf,
    /// Drop an existing posts table first.
    #[arg(long, conflicts_with = "upsert")]
    drop_table: bool,
    /// Update rows of an existing posts table (same post and user) and insert the rest.
    #[arg(long)]
    upsert: bool,
    /// Random seed: the same seed, data and time give an identical database.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Salt of the user ids (the test user is sha256("test_user" + salt)).
    #[arg(long, env = "CELERIAC_SALT", default_value = DEFAULT_SALT)]
    salt: String,
}

pub(crate) fn sample_data(args: SampleDataArgs) -> anyhow::Result<()> {
    let opts = SampleOptions {
        seed: args.seed,
        total_items: args.posts,
    };
    let r = posts::sample::generate(&args.out, &opts)?;
    println!(
        "wrote {} items to {}: facebook {} posts + {} comments, reddit {} posts + {} comments, twitter {} tweets + {} replies",
        r.total(),
        args.out.display(),
        r.facebook_posts,
        r.facebook_comments,
        r.reddit_posts,
        r.reddit_comments,
        r.tweets,
        r.replies
    );
    Ok(())
}

pub(crate) fn preprocess(args: PreprocessArgs) -> anyhow::Result<()> {
    let reports = posts::raw::preprocess(
        &args.input,
        &args.out,
        &PreprocessOptions { salt: args.salt },
    )?;
    for r in reports {
        println!(
            "{}: {} posts, {} comments{} -> {}",
            r.platform,
            r.posts,
            r.comments,
            if r.skipped > 0 {
                format!(" ({} raw rows skipped)", r.skipped)
            } else {
                String::new()
            },
            r.output.display()
        );
    }
    Ok(())
}

pub(crate) fn seed(args: SeedArgs) -> anyhow::Result<()> {
    let activity: ActivityDistribution = args.activity_distribution.parse()?;
    let platforms: PlatformDistribution = args.platform_distribution.parse()?;
    let if_exists = match (args.drop_table, args.upsert) {
        (true, _) => IfExists::Drop,
        (_, true) => IfExists::Upsert,
        _ => IfExists::Fail,
    };
    let opts = SeedOptions {
        data_dir: args.data,
        db_path: args.dbname,
        n_users: args.n_users,
        baseline_sessions_per_day: args.baseline_sessions_per_day,
        items_per_session: args.items_per_session,
        activity,
        platforms,
        user_pool: !args.no_user_pool,
        if_exists,
        seed: args.seed,
        salt: args.salt,
        progress: std::io::stderr().is_terminal(),
    };
    let r = posts::seed::seed(&opts, chrono::Utc::now()).context("seeding failed")?;
    println!(
        "seeded {}: {} rows inserted, {} updated, {} users, {:.0} rows/s",
        r.db_path.display(),
        r.rows_inserted,
        r.rows_updated,
        r.users_with_sessions,
        r.rows_per_sec()
    );
    for p in &r.platforms {
        let span = match (p.first_session, p.last_session) {
            (Some(a), Some(b)) => format!(
                ", sessions {} .. {}",
                a.format("%Y-%m-%d %H:%M"),
                b.format("%Y-%m-%d %H:%M")
            ),
            _ => String::new(),
        };
        println!(
            "  {}: {} items, {} users, {} sessions{span}",
            p.platform, p.items, p.users, p.sessions
        );
    }
    Ok(())
}
