//! The `celeriac` command: every command of the [`celeriac_cli`] library for
//! the example tasks, and `demo`, which runs them end to end.

use celeriac_cli::{examples, Project};

// mimalloc instead of glibc's malloc: the worker and the servers allocate
// many short-lived small objects per message and request, and glibc's free
// lists cost a quarter of their CPU time (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The `celeriac` binary's own commands.
#[derive(Debug, clap::Subcommand)]
enum Own {
    /// Run the example tasks end to end on an in-process worker (no server needed).
    Demo(examples::demo::DemoArgs),
}

fn main() -> std::process::ExitCode {
    Project::new("celeriac")
        .about("Celeriac: a Celery-compatible distributed task queue (the example tasks)")
        .version(env!("CARGO_PKG_VERSION"))
        .tasks(examples::register)
        .producer_routes(examples::producer_routes())
        .commands(|own: Own, _| match own {
            Own::Demo(args) => celeriac_cli::block_on(examples::demo::run(args)),
        })
        .run()
}
