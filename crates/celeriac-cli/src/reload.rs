//! `worker --reload` and `beat --reload`: watch the sources, rebuild with
//! cargo, and replace the running process with the new binary.
//!
//! The supervisor (this module) runs the command as a child process of the
//! same binary, without `--reload`, and watches the source directories:
//! the cargo workspace of the current directory (where `cargo run` was
//! typed), or `--reload-dir`s (the build then runs in the first one's
//! workspace).
//! A change to a `.rs` or `.toml` file, once the files have been quiet for
//! [`DEBOUNCE`], starts `cargo build` of this binary with its profile, into
//! its own target directory:
//!
//! - the build fails: the compiler's output is printed, the running child
//!   keeps serving, and the next change tries again;
//! - the build succeeds: the child gets SIGTERM, which for a worker is a
//!   warm shutdown (it stops reserving, gives back the messages it has not
//!   started, lets running tasks finish and acknowledges them), and the new
//!   binary starts with the same arguments. No message is lost (what was
//!   not acknowledged goes back to its queue) and none runs twice (a task
//!   that started finishes in the old process).
//!
//! One log line per reload says what changed, the build time and the
//! restart time. SIGINT/SIGTERM to the supervisor stop the child the same
//! way, then the supervisor.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use notify::{RecursiveMode, Watcher as _};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// Set in the child's environment: the supervisor's process id. The child
/// stops (warmly) when its parent is no longer that process, so a
/// supervisor killed with SIGKILL leaves no worker behind.
const SUPERVISOR_ENV: &str = "CELERIAC_RELOAD_SUPERVISOR";

/// How long the files must be quiet after a change before a rebuild (an
/// editor's save, `git checkout` and formatters write several files).
const DEBOUNCE: Duration = Duration::from_millis(300);

/// Flags of `--reload`.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct ReloadArgs {
    /// Development: watch the sources, rebuild this binary with cargo when
    /// they change, and restart on the new one (warm: running tasks finish,
    /// nothing is lost); a failed build keeps the running one
    #[arg(long)]
    pub(crate) reload: bool,

    /// Directory to watch with --reload (repeatable; the build runs in the
    /// first one's cargo workspace) [default: the current directory's cargo
    /// workspace]
    #[arg(long, value_name = "DIR", requires = "reload")]
    pub(crate) reload_dir: Vec<PathBuf>,
}

/// How to rebuild the running binary.
#[derive(Debug, Clone)]
struct Build {
    /// The binary (the child runs it; cargo replaces it).
    exe: PathBuf,
    /// `cargo build` runs here (the workspace root).
    workspace: PathBuf,
    /// `CARGO_TARGET_DIR` for the build: the one the binary is in.
    target_dir: PathBuf,
    /// The profile's directory name (`debug`, `release`, or a custom one).
    profile: String,
    /// The binary's name (`--bin`).
    bin: String,
}

impl Build {
    /// Work out the build of the running binary, from the cargo workspace
    /// that holds `dir`.
    fn of_current_exe(dir: &Path) -> anyhow::Result<Build> {
        let exe = std::env::current_exe().context("finding this binary")?;
        let (Some(profile_dir), Some(bin)) = (exe.parent(), exe.file_name()) else {
            bail!("--reload: cannot tell the profile of {}", exe.display());
        };
        let (Some(target_dir), Some(profile)) = (profile_dir.parent(), profile_dir.file_name())
        else {
            bail!(
                "--reload: {} is not in a cargo target directory",
                exe.display()
            );
        };
        let workspace = locate_workspace(dir)?;
        Ok(Build {
            exe: exe.clone(),
            workspace,
            target_dir: target_dir.to_path_buf(),
            profile: profile.to_string_lossy().into_owned(),
            bin: bin.to_string_lossy().into_owned(),
        })
    }

    /// `cargo build` of the binary; the compiler's output when it fails.
    async fn run(&self) -> anyhow::Result<Result<(), String>> {
        let mut cargo = Command::new(cargo());
        cargo
            .arg("build")
            .args(["--bin", &self.bin])
            .args(match self.profile.as_str() {
                "debug" => vec![],
                "release" => vec!["--release".to_owned()],
                other => vec!["--profile".to_owned(), other.to_owned()],
            })
            .arg("--color=never")
            .env("CARGO_TARGET_DIR", &self.target_dir)
            .current_dir(&self.workspace)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let out = cargo.output().await.context("running cargo build")?;
        if out.status.success() {
            Ok(Ok(()))
        } else {
            Ok(Err(String::from_utf8_lossy(&out.stderr).into_owned()))
        }
    }
}

/// The cargo that runs us (`cargo run` sets `CARGO`), else the one on `PATH`.
fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// The cargo workspace that holds `dir` (`cargo locate-project`).
fn locate_workspace(dir: &Path) -> anyhow::Result<PathBuf> {
    let out =
        std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .args(["locate-project", "--workspace", "--message-format", "plain"])
            .current_dir(dir)
            .output()
            .context("--reload: running cargo locate-project")?;
    if !out.status.success() {
        bail!(
            "--reload: {} is not in a cargo workspace; run from the project or give --reload-dir ({})",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let manifest = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    Ok(manifest
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf))
}

/// The command line for the child: this process's own, without the
/// reload flags.
fn child_args() -> Vec<OsString> {
    let mut args = Vec::new();
    let mut skip_value = false;
    for arg in std::env::args_os().skip(1) {
        if skip_value {
            skip_value = false;
            continue;
        }
        let text = arg.to_string_lossy();
        if text == "--reload" || text.starts_with("--reload-dir=") {
            continue;
        }
        if text == "--reload-dir" {
            skip_value = true;
            continue;
        }
        args.push(arg);
    }
    args
}

/// Whether a changed path is a source: `.rs` or `.toml`, outside the
/// target directory and hidden directories (`.git`) below the watched
/// `roots` (a root may itself be hidden, as temp directories are).
fn is_source(path: &Path, roots: &[PathBuf], target_dir: &Path) -> bool {
    if path.starts_with(target_dir) {
        return false;
    }
    let below = roots
        .iter()
        .find_map(|root| path.strip_prefix(root).ok())
        .unwrap_or(path);
    let hidden = below
        .components()
        .any(|c| c.as_os_str().to_string_lossy().starts_with('.') && c.as_os_str().len() > 1);
    let ext = path.extension().and_then(|e| e.to_str());
    !hidden && matches!(ext, Some("rs" | "toml"))
}

/// Watch `dir` itself and, recursively, each directory in it but the
/// target directory and hidden ones: a build writes thousands of files
/// there, and each watched directory costs an inotify watch.
fn watch_sources(
    watcher: &mut notify::RecommendedWatcher,
    dir: &Path,
    target_dir: &Path,
) -> anyhow::Result<()> {
    let watch = |watcher: &mut notify::RecommendedWatcher, path: &Path, mode| {
        watcher
            .watch(path, mode)
            .with_context(|| format!("--reload: watching {}", path.display()))
    };
    watch(watcher, dir, RecursiveMode::NonRecursive)?;
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("--reload: reading {}", dir.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        let is_target =
            path == target_dir || path.canonicalize().is_ok_and(|p| p.starts_with(target_dir));
        if path.is_dir() && !hidden && !is_target {
            watch(watcher, &path, RecursiveMode::Recursive)?;
        }
    }
    Ok(())
}

/// Supervise `command` (`worker` or `beat`) until SIGINT/SIGTERM.
pub(crate) fn supervise(args: &ReloadArgs, command: &str) -> anyhow::Result<()> {
    crate::block_on(run(args.clone(), command.to_owned()))
}

async fn run(args: ReloadArgs, command: String) -> anyhow::Result<()> {
    let start = match args.reload_dir.first() {
        Some(dir) => dir.clone(),
        None => std::env::current_dir().context("--reload: reading the current directory")?,
    };
    let build = Build::of_current_exe(&start)?;
    let dirs = if args.reload_dir.is_empty() {
        vec![build.workspace.clone()]
    } else {
        args.reload_dir.clone()
    };
    let (changed_tx, mut changed) = mpsc::unbounded_channel::<PathBuf>();
    let target_dir = build.target_dir.clone();
    let roots: Vec<PathBuf> = dirs
        .iter()
        .map(|d| d.canonicalize().unwrap_or_else(|_| d.clone()))
        .collect();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            if matches!(event.kind, notify::EventKind::Access(_)) {
                return;
            }
            for path in event.paths {
                if is_source(&path, &roots, &target_dir) {
                    let _ = changed_tx.send(path);
                }
            }
        }
    })
    .context("--reload: starting the file watcher")?;
    for dir in &dirs {
        watch_sources(&mut watcher, dir, &build.target_dir)?;
    }
    let child_args = child_args();
    tracing::info!(
        binary = %build.exe.display(),
        watching = %dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", "),
        "{command} --reload: rebuilding and restarting on source changes"
    );
    let mut child = Some(spawn(&build.exe, &child_args)?);
    let stop = celeriac::shutdown::terminate_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => {
                tracing::warn!("{command} --reload: stopping");
                if let Some(running) = child.take() {
                    stop_child(running).await?;
                }
                return Ok(());
            }
            status = wait_for(&mut child) => {
                tracing::error!(
                    "the {command} exited ({status}); waiting for a source change to start it again"
                );
                child = None;
            }
            Some(first) = changed.recv() => {
                // Debounce: take changes until the files are quiet.
                while let Ok(Some(_)) = tokio::time::timeout(DEBOUNCE, changed.recv()).await {}
                let started = Instant::now();
                tracing::info!(changed = %first.display(), "source changed: rebuilding {}", build.bin);
                match build.run().await? {
                    Err(compiler) => {
                        eprintln!("{}", compiler.trim_end());
                        tracing::error!(
                            build_secs = started.elapsed().as_secs_f64(),
                            "build failed; the running {command} keeps serving (fix the error and save again)"
                        );
                    }
                    Ok(()) => {
                        let built = started.elapsed();
                        if let Some(running) = child.take() {
                            stop_child(running).await?;
                        }
                        child = Some(spawn(&build.exe, &child_args)?);
                        tracing::info!(
                            changed = %first.display(),
                            build_secs = built.as_secs_f64(),
                            restart_secs = (started.elapsed() - built).as_secs_f64(),
                            "reloaded: the {command} runs the new build"
                        );
                    }
                }
            }
        }
    }
}

/// Start the binary with `args`, sharing this process's stdio, in a
/// process group of its own: a Ctrl-C on the terminal reaches only the
/// supervisor, which passes one SIGTERM on (two would make a worker exit
/// at once instead of finishing its tasks).
fn spawn(exe: &Path, args: &[OsString]) -> anyhow::Result<Child> {
    Command::new(exe)
        .args(args)
        .env(SUPERVISOR_ENV, std::process::id().to_string())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))
}

/// Resolves on SIGINT/SIGTERM, or, in a child of `--reload`, when the
/// supervisor is gone: what a worker or beat waits on to stop.
pub(crate) async fn stop_requested() {
    tokio::select! {
        () = celeriac::shutdown::terminate_signal() => {}
        () = supervisor_gone() => {
            tracing::warn!("the --reload supervisor is gone: stopping");
        }
    }
}

/// Resolves once this process's parent is no longer the supervisor named
/// by [`SUPERVISOR_ENV`]; never when it is not set.
async fn supervisor_gone() {
    let supervisor = std::env::var(SUPERVISOR_ENV)
        .ok()
        .and_then(|pid| pid.parse::<i32>().ok());
    let Some(supervisor) = supervisor else {
        return std::future::pending().await;
    };
    loop {
        if nix::unistd::getppid().as_raw() != supervisor {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The child's exit status, once it exits; never when there is none.
async fn wait_for(child: &mut Option<Child>) -> String {
    match child {
        Some(running) => match running.wait().await {
            Ok(status) => status.to_string(),
            Err(e) => format!("waiting for it failed: {e}"),
        },
        None => std::future::pending().await,
    }
}

/// SIGTERM (a warm shutdown), then wait for the child to exit.
async fn stop_child(mut child: Child) -> anyhow::Result<()> {
    if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    child
        .wait()
        .await
        .context("waiting for the old process to finish")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_rs_and_toml_outside_target_and_hidden_dirs() {
        let target = Path::new("/w/target");
        let roots = [PathBuf::from("/w"), PathBuf::from("/tmp/.tmpAbc")];
        let source = |path: &str| is_source(Path::new(path), &roots, target);
        assert!(source("/w/src/lib.rs"));
        assert!(source("/w/Cargo.toml"));
        assert!(
            source("/tmp/.tmpAbc/src/main.rs"),
            "a hidden root is watched"
        );
        assert!(!source("/w/target/debug/build/x.rs"));
        assert!(!source("/w/.git/index.toml"));
        assert!(!source("/w/src/.lib.rs.swp"));
        assert!(!source("/w/README.md"));
    }
}
