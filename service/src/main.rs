//! berthd: Berth's privileged service. This build offers the root-only local commands that
//! drive the engine directly (`install`, and the same operations the D-Bus API exposes);
//! `--sysroot DIR` serves a sysroot that is not the running system.

use anyhow::{Context, Result};
use berth_engine::{
    config, progress, Cancel, Config, Engine, ImageRef, InstallOptions, Progress, UpdateOptions,
};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "berthd",
    version,
    about = "Berth update service (local root commands)"
)]
struct Cli {
    /// The ostree sysroot to act on ("/" is the running system).
    #[arg(long, global = true, default_value = "/")]
    sysroot: PathBuf,
    /// Configuration file.
    #[arg(long, global = true, default_value = config::DEFAULT_CONFIG_PATH)]
    config: PathBuf,
    /// Print progress as JSON lines on stderr.
    #[arg(long, global = true)]
    progress_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = rt.block_on(run(cli)) {
        let name = e
            .downcast_ref::<berth_engine::Error>()
            .map(|e| e.name())
            .unwrap_or("Failed");
        eprintln!("error (org.berth.Berth1.Error.{name}): {e:#}");
        std::process::exit(exit_code(name));
    }
}

/// Distinct exit codes let scripts tell the common failures apart.
fn exit_code(name: &str) -> i32 {
    match name {
        "InvalidReference" | "InvalidConfiguration" => 2,
        "Network" | "RegistryUnauthorized" | "RegistryForbidden" | "ImageNotFound" => 3,
        "DigestMismatch" | "CorruptLayer" | "HostileLayer" | "BadManifest" | "NotBootable"
        | "Unsupported" => 4,
        "NoSpace" => 5,
        "Cancelled" => 6,
        "WrongState" | "Busy" => 7,
        _ => 1,
    }
}

fn progress_printer(json: bool) -> progress::ProgressFn {
    let print: progress::ProgressFn = Arc::new(move |p: &Progress| {
        if json {
            eprintln!("{}", serde_json::to_string(p).unwrap_or_default());
        } else if p.bytes_total > 0 || p.layers_total > 0 {
            eprintln!(
                "[{}] {}/{} bytes, layers {}/{} {}",
                p.phase.as_str(),
                p.bytes_done,
                p.bytes_total,
                p.layers_done,
                p.layers_total,
                p.message
            );
        } else {
            eprintln!("[{}] {}", p.phase.as_str(), p.message);
        }
    });
    progress::throttled(Duration::from_millis(100), print)
}

fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

async fn run(cli: Cli) -> Result<()> {
    let config = Config::load(&cli.config)?;
    let progress = progress_printer(cli.progress_json);
    let cancel = Cancel::new();
    {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                cancel.cancel();
            }
        });
    }
    if let Command::Install {
        image,
        stateroot,
        kargs,
    } = &cli.command
    {
        let image = ImageRef::parse(image)?;
        let opts = InstallOptions {
            stateroot: stateroot.clone(),
            kargs: kargs.clone(),
        };
        berth_engine::install(&cli.sysroot, &image, &opts, config, progress, &cancel).await?;
        println!("installed {image} into {}", cli.sysroot.display());
        return Ok(());
    }
    let engine = Engine::open(&cli.sysroot, config)
        .with_context(|| format!("sysroot {}", cli.sysroot.display()))?;
    match cli.command {
        Command::Install { .. } => unreachable!("handled above"),
        Command::Status { json } => {
            let host = engine.status()?;
            if json {
                print_json(&host)?;
            } else {
                print_status(&host);
            }
        }
        Command::Check { image } => {
            let image = image.map(|i| ImageRef::parse(&i)).transpose()?;
            print_json(&engine.check(image.as_ref()).await?)?;
        }
        Command::Pull { image } => print_json(
            &engine
                .pull(&ImageRef::parse(&image)?, progress, &cancel)
                .await?,
        )?,
        Command::Update {
            download_only,
            from_downloaded,
        } => print_json(
            &engine
                .update(
                    UpdateOptions {
                        download_only,
                        from_downloaded,
                    },
                    progress,
                    &cancel,
                )
                .await?,
        )?,
        Command::Switch { image } => print_json(
            &engine
                .switch(&ImageRef::parse(&image)?, progress, &cancel)
                .await?,
        )?,
        Command::Rollback => engine.rollback()?,
        Command::Reboot => engine.reboot()?,
        Command::Pin { index } => engine.set_pinned(index, true)?,
        Command::Unpin { index } => engine.set_pinned(index, false)?,
        Command::Cleanup => print_json(&engine.cleanup()?)?,
        Command::Reset => println!(
            "factory reset staged in stateroot {}; reboot to use it",
            engine.factory_reset()?
        ),
    }
    Ok(())
}

fn print_status(host: &berth_engine::status::Host) {
    for d in &host.status.berth.deployments {
        let mark = if d.staged {
            "staged  "
        } else if d.booted {
            "booted  "
        } else if d.rollback {
            "rollback"
        } else {
            "        "
        };
        let (image, version, digest) = match &d.image {
            Some(i) => (
                i.image.image.clone(),
                i.version.clone().unwrap_or_default(),
                i.image_digest.clone(),
            ),
            None => (String::new(), String::new(), String::new()),
        };
        println!(
            "{mark} [{}] {}{} {image} version={version} digest={digest} ostree={}.{}",
            d.index,
            d.stateroot,
            if d.pinned { " (pinned)" } else { "" },
            d.checksum,
            d.deploy_serial
        );
    }
    if let Some(c) = &host.status.berth.cached_update {
        println!(
            "downloaded update: {} version={} digest={}",
            c.image,
            c.version.clone().unwrap_or_default(),
            c.manifest_digest
        );
    }
}
