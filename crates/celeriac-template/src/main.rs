//! `my-tasks`: two tasks of your own, and every `celeriac` command for them.
use celeriac::{task, TaskError};

/// Multiply two numbers.
#[task(name = "my_tasks.multiply")]
fn multiply(x: i64, y: i64) -> Result<i64, TaskError> {
    Ok(x * y)
}

/// Greet someone.
#[task(name = "my_tasks.greet")]
async fn greet(name: String) -> Result<String, TaskError> {
    Ok(format!("Hello, {name}!"))
}

fn main() -> std::process::ExitCode {
    let project = celeriac_cli::Project::new("my-tasks").about("My own tasks on Celeriac");
    project.tasks(|app| app.task(multiply).task(greet)).run()
}
