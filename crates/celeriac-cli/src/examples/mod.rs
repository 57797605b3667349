//! The example tasks (the seed's `tasks.add`, `tasks.wait_and_return`,
//! `tasks.sum_to_n_job`, and harmless tasks for tests and benchmarks) and
//! the demo that runs them: what the `celeriac` binary is made of, and a
//! model for a project's own.

pub mod demo;
mod tasks;

pub use tasks::{producer_routes, register};
