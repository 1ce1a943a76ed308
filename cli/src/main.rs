//! berth: the command line client of berthd. Unprivileged: every action goes over D-Bus and
//! polkit decides. Exit codes: 0 ok, 1 failed, 2 invalid arguments or reference,
//! 3 registry/network, 4 bad image, 5 no space, 6 cancelled, 7 busy/wrong state/interrupted,
//! 8 not authorized, 9 berthd unreachable; `check` exits 100 when an update is available.

mod agent;
mod client;
mod progress;
mod status;

use berth_dbus::{exit_code_for, options};
use clap::{Parser, Subcommand};
use client::{CallError, Client};
use zbus::zvariant::Value;

const UPDATE_AVAILABLE: i32 = 100;

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "Update, roll back and reset this image-based system"
)]
struct Cli {
    /// Never ask for a password (fail if polkit wants one).
    #[arg(long, global = true)]
    no_ask_password: bool,
    /// Print results as JSON (bootc's BootcHost for status).
    #[arg(long, global = true)]
    json: bool,
    /// No progress output.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show the booted, staged and rollback deployments and what berthd is doing.
    Status,
    /// Look for an update of the booted image (exit 100 if there is one).
    Check,
    /// Download and stage the newest version of the booted image.
    Update {
        /// Download only; stage later with `berth update --from-downloaded`.
        #[arg(long, conflicts_with_all = ["from_downloaded", "reboot"])]
        download_only: bool,
        /// Stage what an earlier --download-only fetched, without the network.
        #[arg(long)]
        from_downloaded: bool,
        /// Reboot into the update once it is staged.
        #[arg(long)]
        reboot: bool,
        /// Run as the automatic update does, as far as the configured policy allows.
        #[arg(long, hide = true)]
        automatic: bool,
    },
    /// Switch to another image (and follow it from then on).
    Switch {
        image: String,
        #[arg(long)]
        reboot: bool,
    },
    /// Go back to the previous deployment at the next boot.
    Rollback {
        #[arg(long)]
        reboot: bool,
    },
    /// Factory reset: the image as built, local /etc changes and /var data discarded.
    Reset {
        #[arg(long)]
        reboot: bool,
    },
    /// Remove deployments, images and downloads nothing needs.
    Cleanup,
    /// Keep the deployment with INDEX (as `berth status` numbers them) through cleanups.
    Pin {
        index: u32,
    },
    Unpin {
        index: u32,
    },
    /// Reboot into the default deployment.
    Reboot,
    /// Cancel what berthd is doing.
    Cancel,
    /// Follow berthd's state and progress until interrupted.
    Monitor,
    /// Change settings: --automatic-updates off|check|download|apply.
    Config {
        #[arg(long)]
        automatic_updates: Option<String>,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = Cli::parse();
    let code = match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("berth: {}", e.message);
            eprintln!("       ({})", e.name);
            exit_code_for(&e.name)
        }
    };
    std::process::exit(code);
}

async fn run(cli: Cli) -> Result<i32, CallError> {
    let privileged = !matches!(
        cli.command,
        Command::Status
            | Command::Monitor
            | Command::Config {
                automatic_updates: None
            }
    );
    // Keep the agent alive until we exit: polkit may ask at any privileged call.
    let _agent = (privileged && !cli.no_ask_password)
        .then(agent::TtyAgent::start)
        .flatten();
    let c = Client::connect(!cli.no_ask_password).await?;
    let (json, quiet) = (cli.json, cli.quiet || cli.json);
    let flag = |b: bool| Value::Bool(b);
    match cli.command {
        Command::Status => {
            let text: String = c.call("GetStatus", &()).await?;
            if json {
                println!("{text}");
            } else {
                status::print(&c, &text).await?;
            }
        }
        Command::Check => {
            let out = c.run("Check", &(options([]),), quiet).await?;
            if json {
                println!("{}", out.result);
            } else {
                status::print_check(&out.result);
            }
            if out.result["updateAvailable"] == true {
                return Ok(UPDATE_AVAILABLE);
            }
        }
        Command::Update {
            download_only,
            from_downloaded,
            reboot,
            automatic,
        } => {
            let mut o = options([
                ("download-only", flag(download_only)),
                ("from-downloaded", flag(from_downloaded)),
                ("reboot", flag(reboot)),
            ]);
            if automatic {
                o.insert(
                    "automatic".into(),
                    Value::Bool(true).try_into().expect("plain"),
                );
            }
            let out = c.run("Update", &(o,), quiet).await?;
            report(&out.result, json);
        }
        Command::Switch { image, reboot } => {
            let out = c
                .run(
                    "Switch",
                    &(image, options([("reboot", flag(reboot))])),
                    quiet,
                )
                .await?;
            report(&out.result, json);
        }
        Command::Rollback { reboot } => {
            c.run("Rollback", &(options([("reboot", flag(reboot))]),), quiet)
                .await?;
            if !json {
                println!("The previous deployment is the default now; reboot to use it.");
            }
        }
        Command::Reset { reboot } => {
            let out = c
                .run(
                    "FactoryReset",
                    &(options([("reboot", flag(reboot))]),),
                    quiet,
                )
                .await?;
            if json {
                println!("{}", out.result);
            } else {
                println!(
                    "Factory reset prepared (stateroot {}); reboot to use it.",
                    out.result["stateroot"].as_str().unwrap_or("?")
                );
            }
        }
        Command::Cleanup => {
            let out = c.run("Cleanup", &(options([]),), quiet).await?;
            println!("{}", out.result);
        }
        Command::Pin { index } => c.call_unit("Pin", &(index,)).await?,
        Command::Unpin { index } => c.call_unit("Unpin", &(index,)).await?,
        Command::Reboot => c.call_unit("Reboot", &(options([]),)).await?,
        Command::Cancel => {
            let active = c.manager.active_transaction().await?;
            if active.as_str() == "/" {
                return Err(CallError {
                    name: format!("{}.WrongState", berth_dbus::ERROR_PREFIX),
                    message: "nothing is running".into(),
                });
            }
            let mut signals = c.transaction_signals().await?;
            let t = c.transaction(active.as_str()).await?;
            t.inner()
                .call_with_flags::<_, _, ()>("Cancel", c.flags(), &())
                .await
                .map_err(CallError::from)?;
            match c.follow(active.as_str(), &mut signals, true).await {
                Err(e) if e.name.ends_with(".Cancelled") => {
                    println!("Cancelled {}.", active.as_str())
                }
                Err(e) => return Err(e),
                Ok(_) => println!("{} finished before it could be cancelled.", active.as_str()),
            }
        }
        Command::Monitor => status::monitor(&c, json).await?,
        Command::Config { automatic_updates } => {
            // Only a change needs authorization; showing the setting does not.
            if let Some(p) = automatic_updates {
                let mut o = options([]);
                o.insert(
                    "automatic-updates".into(),
                    Value::from(p).try_into().expect("plain"),
                );
                c.call_unit("Configure", &(o,)).await?;
            }
            println!(
                "automatic-updates: {}",
                c.manager.automatic_updates().await?
            );
        }
    }
    Ok(0)
}

/// Prints an update/switch outcome.
fn report(result: &serde_json::Value, json: bool) {
    if json {
        println!("{result}");
        return;
    }
    let version = |r: &serde_json::Value| {
        r["pulled"]["version"]
            .as_str()
            .or(r["pulled"]["manifestDigest"].as_str())
            .unwrap_or("?")
            .to_string()
    };
    match result["result"].as_str() {
        Some("no-update") => println!("Already up to date."),
        Some("downloaded") => println!(
            "Downloaded version {}; `berth update --from-downloaded` stages it.",
            version(result)
        ),
        Some("staged") => println!(
            "Version {} is staged; it boots at the next restart.",
            version(result)
        ),
        _ => println!("{result}"),
    }
}
