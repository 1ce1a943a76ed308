//! berthd: Berth's privileged service. `berthd serve` is the D-Bus system service every client
//! talks to; the other subcommands are root-only local commands that drive the engine directly.
//! `--sysroot DIR` serves a sysroot that is not the running system.

mod authz;
mod automatic;
mod boot;
mod bus_error;
mod daemon;
mod hostunit;
mod lastgood;
mod local;
mod manager;
mod options;
mod reboot;
mod serve;
mod settings;
mod state;
mod transaction;

use berth_engine::config;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "berthd",
    version,
    about = "Berth update service (local root commands)"
)]
pub struct Cli {
    /// The ostree sysroot to act on ("/" is the running system).
    #[arg(long, global = true, default_value = "/")]
    pub sysroot: PathBuf,
    /// Configuration file.
    #[arg(long, global = true, default_value = config::DEFAULT_CONFIG_PATH)]
    pub config: PathBuf,
    /// The image's configuration drop-ins, read before the configuration file.
    #[arg(long, global = true, default_value = config::VENDOR_DROPIN_DIR)]
    pub vendor_config: PathBuf,
    /// Print progress as JSON lines on stderr.
    #[arg(long, global = true)]
    pub progress_json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Serve the D-Bus API (org.berth.Berth1) on the system bus.
    Serve {
        /// Bus address instead of the system bus (tests, sandboxes).
        #[arg(long)]
        bus_address: Option<String>,
        /// Exit after this many idle seconds (nothing running, no registered client); 0 = never.
        #[arg(long, default_value_t = 60)]
        idle_timeout: u64,
    },
    /// Lay down the first deployment of IMAGE into the (empty) --sysroot directory.
    Install {
        image: String,
        #[arg(long, default_value = "default")]
        stateroot: String,
        /// Kernel argument for the boot entry (repeatable).
        #[arg(long = "karg")]
        kargs: Vec<String>,
    },
    /// Show deployments (bootc-compatible JSON with --json).
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Check for an update of the booted image (or IMAGE) without downloading layers.
    Check {
        image: Option<String>,
    },
    /// Download and import an image without deploying it.
    Pull {
        image: String,
    },
    /// Update the booted image.
    Update {
        #[arg(long, conflicts_with = "from_downloaded")]
        download_only: bool,
        #[arg(long)]
        from_downloaded: bool,
    },
    /// Switch to another image.
    Switch {
        image: String,
        /// Deploy it even if the signature policy lets it in unsigned while the booted
        /// image was verified by a key.
        #[arg(long)]
        allow_unverified: bool,
    },
    /// Make the previous deployment the default; discard a staged one.
    Rollback,
    /// Emulated reboot of a sysroot that is not the running system.
    Reboot,
    /// Pin the deployment with INDEX so cleanup keeps it.
    Pin {
        index: usize,
    },
    Unpin {
        index: usize,
    },
    /// Prune deployments, images, layers and cache entries nothing needs.
    Cleanup,
    /// Factory reset: the booted image, pristine /etc, empty /var, in a new stateroot.
    Reset,
    /// At shutdown (berth-finalize-staged.service): make the staged update the default, with
    /// the boot entries flushed to disk before the old ones are deleted, and put it on trial.
    FinalizeStaged,
    /// Early in every boot (berth-boot-assess.service): on a trial boot, start the health
    /// checks; after a fallback, make the rollback permanent and record the failed update.
    AssessBoot,
    /// Run the health checks in /usr/lib/berth/health.d and /etc/berth/health.d
    /// (berth-health-check.service, before boot-complete.target).
    HealthCheck,
    /// A trial boot failed (berth-boot-failed.service): exits 0 when rebooting would try
    /// again or fall back, 1 when this boot is no trial.
    BootFailed,
    /// Make the booted deployment's /usr writable: transient (until the next boot) or hotfix
    /// (until the next update or rollback). Mounts in the caller's mount namespace: berthd
    /// serve runs it through berth-unlock-KIND.service.
    Unlock {
        #[arg(long, value_parser = ["transient", "hotfix"])]
        kind: String,
    },
    /// Early in each boot (berth-hotfix.service): mount the booted deployment's hotfix
    /// overlay on /usr, if it has one.
    MountHotfix,
    /// Compare a deployment (default: the booted one) with its image; JSON report.
    Verify {
        #[arg(long)]
        index: Option<usize>,
    },
    /// Mark the booted deployment good (ends its trial) or bad (the next boot falls back).
    MarkBoot {
        #[arg(value_parser = ["good", "bad"])]
        verdict: String,
    },
}

fn main() {
    let cli = Cli::parse();
    // What runs under systemd logs at info.
    init_logging(matches!(
        cli.command,
        Command::Serve { .. }
            | Command::FinalizeStaged
            | Command::AssessBoot
            | Command::HealthCheck
            | Command::BootFailed
            | Command::Unlock { .. }
            | Command::MountHotfix
    ));
    let serving = matches!(cli.command, Command::Serve { .. });
    if serving {
        // A long-lived, mostly idle service: few malloc arenas keep idle memory low after
        // bursts of calls on many threads.
        // SAFETY: mallopt only tunes the allocator; called before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Status reads and engine steps run on blocking threads; bound them.
        .max_blocking_threads(if serving { 16 } else { 512 })
        .build()
        .expect("tokio runtime");
    if let Err(e) = rt.block_on(run(cli)) {
        let name = e
            .downcast_ref::<berth_engine::Error>()
            .map(|e| e.name())
            .unwrap_or("Failed");
        let message = berth_engine::text::outside_long(&format!("{e:#}"));
        eprintln!("error (org.berth.Berth1.Error.{name}): {message}");
        std::process::exit(exit_code(name));
    }
}

/// Distinct exit codes let scripts tell the common failures apart (the CLI's codes).
fn exit_code(name: &str) -> i32 {
    berth_dbus::exit_code_for(&format!("{}.{name}", berth_dbus::ERROR_PREFIX))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let Command::Serve {
        bus_address,
        idle_timeout,
    } = &cli.command
    else {
        return local::run(cli).await;
    };
    let sources = config::Sources::new(&cli.config, &cli.vendor_config);
    let config = match sources.load_merged(None) {
        Ok((config, text)) => {
            lastgood::keep(&cli.sysroot, &text);
            config
        }
        // A bad file does not stop the service: it runs on the last good configuration
        // and says why (ConfigError); without one, the error stands.
        Err(e) => match lastgood::load(&cli.sysroot) {
            Some(config) => {
                tracing::error!("{e}; using the last good configuration");
                config
            }
            None => return Err(e.into()),
        },
    };
    let engine = berth_engine::Engine::open(&cli.sysroot, config)?;
    let opts = serve::ServeOptions {
        bus_address: bus_address.clone(),
        idle_timeout: (*idle_timeout > 0).then(|| Duration::from_secs(*idle_timeout)),
        sources,
    };
    serve::serve(engine, opts).await
}

/// Logs go to the journal when systemd started us (it sets JOURNAL_STREAM), else to stderr.
/// Services log at info, local commands at warn; BERTH_LOG overrides both.
fn init_logging(service: bool) {
    use tracing_subscriber::prelude::*;
    let default = if service { "info" } else { "warn" };
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG").unwrap_or_else(|_| default.into());
    let journald = std::env::var_os("JOURNAL_STREAM").and_then(|_| tracing_journald::layer().ok());
    let registry = tracing_subscriber::registry().with(filter);
    match journald {
        Some(j) => registry.with(j).init(),
        None => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    // Colour codes only for a person at a terminal, never into log files.
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
            )
            .init(),
    }
}
