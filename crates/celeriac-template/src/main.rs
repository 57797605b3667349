use celeriac::{task, TaskError};

#[task(name = "my_tasks.multiply")]
fn multiply(x: i64, y: i64) -> Result<i64, TaskError> {
    Ok(x * y)
}

#[task(name = "my_tasks.greet")]
async fn greet(name: String) -> Result<String, TaskError> {
    Ok(format!("Hello, {name}!"))
}

fn main() -> std::process::ExitCode {
    celeriac_cli::Project::new("my-tasks")
        .tasks(|app| app.task(multiply).task(greet))
        .run()
}
