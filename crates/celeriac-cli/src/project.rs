//! [`Project`]: a binary's tasks, options and extra commands, and the one
//! function that parses the command line and runs a command.
//!
//! Parsing is clap's builder API over the derived parts: the built-in
//! commands ([`Builtin`]), the project's options (made global, so
//! `proj worker --db x` and `proj --db x worker` both work) and the
//! project's subcommands ([`clap::Subcommand::augment_subcommands`]). A
//! subcommand the project declares is run by the project's handler; every
//! other one by the library.

use std::sync::Arc;

use celeriac::AppBuilder;
use celeriac_http::ProducerRoute;
use clap::{Arg, ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::commands::Builtin;

/// The root of the command line: the global log level and the built-in
/// commands. A project's name, options and commands are added at run time.
#[derive(Debug, Parser)]
#[command(name = "celeriac", version, long_about = None)]
struct Cli {
    /// Log filter for stderr, e.g. info, debug, celeriac=trace [default: RUST_LOG,
    /// else info for the worker and beat, warn for other commands]
    #[arg(short = 'l', long, global = true, value_name = "LEVEL")]
    loglevel: Option<String>,

    #[command(subcommand)]
    command: Builtin,
}

/// Registers a binary's tasks (and app state) on an [`AppBuilder`].
type Register<O> = Arc<dyn Fn(AppBuilder, &O) -> AppBuilder + Send + Sync>;

/// Runs one of a project's own commands.
type Handler<O, C> = Box<dyn FnOnce(C, &O) -> anyhow::Result<()>>;

/// A binary of your own: its tasks, its options and commands, and every
/// built-in `celeriac` command. See the crate's documentation for a
/// complete `main.rs`.
///
/// `O` are the project's global options (a [`clap::Args`] struct, e.g. a
/// database path); `C` its own subcommands (a [`clap::Subcommand`] enum).
pub struct Project<O = NoOptions, C = NoCommands> {
    name: &'static str,
    about: Option<&'static str>,
    version: Option<&'static str>,
    register: Register<O>,
    producer_routes: Vec<ProducerRoute>,
    handler: Option<Handler<O, C>>,
}

/// No options of the project's own.
#[derive(Debug, Clone, Default, Args)]
pub struct NoOptions {}

/// No commands of the project's own.
#[derive(Debug, Clone, Copy)]
pub enum NoCommands {}

impl FromArgMatches for NoCommands {
    fn from_arg_matches(_: &ArgMatches) -> Result<Self, clap::Error> {
        Err(clap::Error::new(clap::error::ErrorKind::InvalidSubcommand))
    }

    fn update_from_arg_matches(&mut self, _: &ArgMatches) -> Result<(), clap::Error> {
        match *self {}
    }
}

impl Subcommand for NoCommands {
    fn augment_subcommands(cmd: clap::Command) -> clap::Command {
        cmd
    }

    fn augment_subcommands_for_update(cmd: clap::Command) -> clap::Command {
        cmd
    }

    fn has_subcommand(_: &str) -> bool {
        false
    }
}

impl Project {
    /// A project named `name` (the binary's name in `--help` and usage
    /// lines) with no tasks yet.
    pub fn new(name: &'static str) -> Self {
        Project::with_options(name)
    }
}

impl<O> Project<O, NoCommands>
where
    O: Args + FromArgMatches + Send + Sync + 'static,
{
    /// A project with global options `O`, which its task registration
    /// ([`Project::tasks_with_options`]) and its commands receive.
    pub fn with_options(name: &'static str) -> Self {
        Project {
            name,
            about: None,
            version: None,
            register: Arc::new(|builder, _| builder),
            producer_routes: Vec::new(),
            handler: None,
        }
    }
}

impl<O, C> Project<O, C>
where
    O: Args + FromArgMatches + Send + Sync + 'static,
    C: Subcommand + FromArgMatches,
{
    /// The one-line description `--help` shows.
    pub fn about(mut self, about: &'static str) -> Self {
        self.about = Some(about);
        self
    }

    /// The version `--version` prints (e.g. `env!("CARGO_PKG_VERSION")`).
    pub fn version(mut self, version: &'static str) -> Self {
        self.version = Some(version);
        self
    }

    /// Register the binary's tasks (and app state): `worker`, `serve` and
    /// `bench` call `register` on the app they build.
    pub fn tasks(
        self,
        register: impl Fn(AppBuilder) -> AppBuilder + Send + Sync + 'static,
    ) -> Self {
        self.tasks_with_options(move |builder, _| register(builder))
    }

    /// As [`Project::tasks`], with the parsed options (e.g. to put a
    /// database path from a flag into the app's state).
    pub fn tasks_with_options(
        mut self,
        register: impl Fn(AppBuilder, &O) -> AppBuilder + Send + Sync + 'static,
    ) -> Self {
        self.register = Arc::new(register);
        self
    }

    /// Producer routes `serve` offers under `/producer/api/{name}`, each
    /// sending one of the binary's tasks (see [`ProducerRoute`]).
    pub fn producer_routes(mut self, routes: Vec<ProducerRoute>) -> Self {
        self.producer_routes = routes;
        self
    }

    /// Add the project's own subcommands `C2`, run by `handler` (which
    /// also receives the options). Their names must differ from the
    /// built-in commands' (clap refuses a duplicate name).
    pub fn commands<C2: Subcommand + FromArgMatches>(
        self,
        handler: impl FnOnce(C2, &O) -> anyhow::Result<()> + 'static,
    ) -> Project<O, C2> {
        Project {
            name: self.name,
            about: self.about,
            version: self.version,
            register: self.register,
            producer_routes: self.producer_routes,
            handler: Some(Box::new(handler)),
        }
    }

    /// Parse the command line, run the command, and return the exit status
    /// (0 success, 1 the awaited task failed, 2 any other error, 3 timed
    /// out). Usage errors print clap's message and exit 2.
    pub fn run(self) -> std::process::ExitCode {
        crate::finish(self.run_args(std::env::args_os()))
    }

    /// As [`Project::run`], for a given command line (the first item is the
    /// program name); returns the command's outcome.
    ///
    /// # Errors
    /// The command's error. Usage errors (and `--help`) exit the process as
    /// clap does.
    pub fn run_args<I, T>(self, args: I) -> anyhow::Result<()>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = self.command().get_matches_from(args);
        let options = O::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        let loglevel = matches.get_one::<String>("loglevel").cloned();
        let own = matches
            .subcommand_name()
            .is_some_and(|name| C::has_subcommand(name));
        if own {
            let command = C::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
            crate::logging::init(loglevel.as_deref(), "warn");
            return match self.handler {
                Some(handler) => handler(command, &options),
                None => anyhow::bail!("this binary has no commands of its own"),
            };
        }
        let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        crate::logging::init(loglevel.as_deref(), cli.command.default_log_level());
        let options = Arc::new(options);
        let register = Arc::clone(&self.register);
        let tasks = Tasks {
            register: Arc::new(move |builder| register(builder, &options)),
            producer_routes: self.producer_routes,
        };
        cli.command.run(&tasks)
    }

    /// The whole command line: built-ins, the project's options (global)
    /// and its subcommands.
    fn command(&self) -> clap::Command {
        let own_options: Vec<clap::Id> = O::augment_args(clap::Command::new(self.name))
            .get_arguments()
            .map(|a| a.get_id().clone())
            .collect();
        let cmd = O::augment_args(Cli::command()).mut_args(|arg: Arg| {
            if own_options.contains(arg.get_id()) {
                arg.global(true)
            } else {
                arg
            }
        });
        // Name and description last: augmenting with a derived type copies
        // that type's doc comment into the command's description.
        let cmd = C::augment_subcommands(cmd)
            .name(self.name)
            .bin_name(self.name)
            .about(self.about)
            .long_about(None::<&str>);
        match self.version {
            Some(version) => cmd.version(version),
            None => cmd,
        }
    }
}

/// The binary's task registration, with its options applied, and its
/// producer routes: what the `worker` and `serve` commands build their app
/// and routes with.
#[derive(Clone)]
pub(crate) struct Tasks {
    register: Arc<dyn Fn(AppBuilder) -> AppBuilder + Send + Sync>,
    producer_routes: Vec<ProducerRoute>,
}

impl Tasks {
    /// Register the binary's tasks on `builder`.
    pub(crate) fn register(&self, builder: AppBuilder) -> AppBuilder {
        (self.register)(builder)
    }

    /// The binary's producer routes.
    pub(crate) fn producer_routes(&self) -> &[ProducerRoute] {
        &self.producer_routes
    }
}

impl std::fmt::Debug for Tasks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tasks(..)")
    }
}
