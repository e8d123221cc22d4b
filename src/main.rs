//! The `lakeward` command line: parses arguments and configuration, then hands over to the
//! library. Configuration errors are all reported before any port is bound (exit code 78).

use anyhow::Context;
use clap::{Parser, Subcommand};
use lakeward::config::Config;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

// A proxy allocates and frees small buffers on every request; under load glibc's malloc was
// about a tenth of the gateway's CPU, and mimalloc's thread-local free lists cut that down.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// sysexits' EX_CONFIG: the configuration is wrong.
const EX_CONFIG: u8 = 78;
/// sysexits' EX_DATAERR: the input (policies, request) is wrong.
const EX_DATAERR: u8 = 65;

#[derive(Parser)]
#[command(
    name = "lakeward",
    version,
    about = "A policy-enforcing gateway for a Databricks-style data platform"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the gateway, the control plane and the runtime on this machine.
    Serve {
        /// The TOML configuration file (see deploy/lakeward.example.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// The data directory (overrides `data_dir`).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// The gateway's TLS listener (overrides `gateway.listen`).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// The admin listener with /metrics, /healthz and /readyz (overrides `gateway.admin_listen`).
        #[arg(long)]
        admin_listen: Option<SocketAddr>,
        /// Which parts to run: all (default), or one of gateway, control, runtime alone.
        #[arg(long, default_value = "all")]
        role: lakeward::Role,
    },
    /// Loads and validates a configuration file, then exits.
    CheckConfig { file: PathBuf },
    /// Cedar policy tools.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Checks a policy directory (one .cedarschema and any number of .cedar files).
    Validate { dir: PathBuf },
    /// Answers what the gateway would decide for one request.
    Check {
        /// The policy directory.
        #[arg(long, default_value = "lakeward-data/policies")]
        policies: PathBuf,
        /// For example 'Lakeward::User::"42"'.
        #[arg(long)]
        principal: String,
        /// For example 'Lakeward::Action::"CreateToken"'.
        #[arg(long)]
        action: String,
        /// For example 'Lakeward::Workspace::"1234"'.
        #[arg(long)]
        resource: String,
        /// The request context as JSON.
        #[arg(long)]
        context: Option<String>,
        /// A file of entities in Cedar's JSON format.
        #[arg(long)]
        entities: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            config,
            data_dir,
            listen,
            admin_listen,
            role,
        } => {
            let mut config = match load_config(config.as_deref()) {
                Ok(config) => config,
                Err(code) => return code,
            };
            if let Some(dir) = data_dir {
                config.data_dir = dir;
            }
            if let Some(addr) = listen {
                config.gateway.listen = addr;
            }
            if let Some(addr) = admin_listen {
                config.gateway.admin_listen = addr;
            }
            if let Err(problems) = config.validate() {
                return report_config_problems(&problems);
            }
            init_tracing();
            match serve(config, role) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    eprintln!("lakeward: {err:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::CheckConfig { file } => {
            let config = match load_config(Some(&file)) {
                Ok(config) => config,
                Err(code) => return code,
            };
            match config.validate() {
                Ok(()) => {
                    println!("{}: ok", file.display());
                    ExitCode::SUCCESS
                }
                Err(problems) => report_config_problems(&problems),
            }
        }
        Command::Policy { command } => policy_command(command),
    }
}

fn load_config(path: Option<&std::path::Path>) -> Result<Config, ExitCode> {
    match path {
        None => Ok(Config::default()),
        Some(path) => Config::from_file(path).map_err(|problems| report_config_problems(&problems)),
    }
}

fn report_config_problems(problems: &[String]) -> ExitCode {
    for problem in problems {
        eprintln!("config error: {problem}");
    }
    eprintln!(
        "{} configuration problem(s); nothing was started",
        problems.len()
    );
    ExitCode::from(EX_CONFIG)
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LAKEWARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn serve(config: Config, role: lakeward::Role) -> anyhow::Result<()> {
    // One worker thread means no one to steal work from: the current-thread scheduler does the
    // same job without the work-stealing bookkeeping, which a pinned, single-core gateway pays
    // on every wakeup.
    let mut builder = match config.gateway.worker_threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(threads) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(threads);
            builder
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    builder.enable_all();
    let runtime = builder.build().context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let stop = shutdown_signal()?;
        if role != lakeward::Role::All {
            let part = lakeward::start_part(config, role).await?;
            say(&part.hint);
            part.run_until(stop).await?;
            tell("lakeward: stopped");
            return Ok(());
        }
        let running = lakeward::start(config).await?;
        say(&lakeward::startup_hint(&running));
        running.run_until(stop).await?;
        tell("lakeward: stopped");
        Ok(())
    })
}

/// Prints to stdout for the operator. A server must outlive its stdout: `println!` panics when
/// the reader has gone (`lakeward serve | head`, a log collector restarting), so errors are
/// ignored here.
fn say(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}").and_then(|()| out.flush());
}

/// [`say`] for stderr.
fn tell(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// Ctrl-C or SIGTERM. The listeners are registered when this is built, not when it is first
/// awaited: a signal that arrives right after the start-up hint is printed must drain, not hit
/// the default action and kill the process.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

fn policy_command(command: PolicyCommand) -> ExitCode {
    match command {
        PolicyCommand::Validate { dir } => match lakeward_policy::validate_dir(&dir) {
            Ok(report) => {
                for warning in &report.warnings {
                    eprintln!("warning: {warning}");
                }
                println!(
                    "{}: {} policies, version {}: ok",
                    dir.display(),
                    report.policy_count,
                    report.version
                );
                ExitCode::SUCCESS
            }
            Err(errors) => {
                for error in &errors {
                    eprintln!("error: {error}");
                }
                ExitCode::from(EX_DATAERR)
            }
        },
        PolicyCommand::Check {
            policies,
            principal,
            action,
            resource,
            context,
            entities,
        } => {
            let bundle = match lakeward_policy::PolicyBundle::load_dir(&policies) {
                Ok(bundle) => bundle,
                Err(errors) => {
                    for error in &errors {
                        eprintln!("error: {error}");
                    }
                    return ExitCode::from(EX_DATAERR);
                }
            };
            let entities = match entities.map(std::fs::read_to_string).transpose() {
                Ok(entities) => entities,
                Err(err) => {
                    eprintln!("error: cannot read entities: {err}");
                    return ExitCode::from(EX_DATAERR);
                }
            };
            match lakeward_policy::check(
                &bundle,
                &principal,
                &action,
                &resource,
                context.as_deref(),
                entities.as_deref(),
            ) {
                Ok(decision) => {
                    println!(
                        "decision: {}",
                        if decision.allowed { "ALLOW" } else { "DENY" }
                    );
                    println!("determining policies: {:?}", decision.determining_policies);
                    for error in &decision.errors {
                        println!("evaluation error: {error}");
                    }
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("error: {err}");
                    ExitCode::from(EX_DATAERR)
                }
            }
        }
    }
}
