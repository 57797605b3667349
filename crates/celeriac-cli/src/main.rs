//! The `celeriac` command. It only parses arguments and dispatches; the work
//! lives in the `celeriac` and `posts` libraries.

mod commands;

use clap::{Parser, Subcommand};

/// Celeriac: a Celery-compatible distributed task queue, and the post-history system built on it.
#[derive(Debug, Parser)]
#[command(name = "celeriac", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate realistic raw sample data (Facebook CSV, Reddit CSV, Twitter JSONL).
    SampleData(commands::data::SampleDataArgs),
    /// Normalize raw sample data into ContentItem JSON Lines, one file per platform.
    Preprocess(commands::data::PreprocessArgs),
    /// Seed the posts database from normalized JSON Lines.
    Seed(commands::data::SeedArgs),
    /// Extract named entities from text, or evaluate the extractor on the shipped labelled set.
    Entities(commands::entities::EntitiesArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::SampleData(args) => commands::data::sample_data(args),
        Command::Preprocess(args) => commands::data::preprocess(args),
        Command::Seed(args) => commands::data::seed(args),
        Command::Entities(args) => commands::entities::run(args),
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::from(2)
        }
    }
}
