//! berth: the command line client of berthd. Unprivileged: every action goes over D-Bus and
//! polkit decides. Exit codes: 0 ok, 1 failed, 2 invalid arguments or reference,
//! 3 registry/network, 4 bad image, 5 no space, 6 cancelled, 7 busy/wrong state/interrupted,
//! 8 not authorized, 9 berthd unreachable; `check` exits 100 when an update is available,
//! `verify` 101 when the deployment differs from its image.

mod agent;
mod client;
mod progress;
mod settings;
mod status;

use berth_dbus::{exit_code_for, options, CallError, Client};
use berth_l10n::fl;
use clap::{Parser, Subcommand};
use client::run as run_transaction;
use zbus::zvariant::Value;

const UPDATE_AVAILABLE: i32 = 100;
const DRIFTED: i32 = 101;

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
        /// Accept an update the signature policy lets in unsigned although the booted image
        /// was signed (an administrator approves it every time).
        #[arg(long, conflicts_with = "automatic")]
        allow_unverified: bool,
    },
    /// Switch to another image (and follow it from then on).
    Switch {
        image: String,
        #[arg(long)]
        reboot: bool,
        /// Switch even if the signature policy lets the image in unsigned although the booted
        /// image was signed (an administrator approves it every time).
        #[arg(long)]
        allow_unverified: bool,
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
    /// Mark this boot good (ends an update's trial) or bad (the next boot goes back to the
    /// previous deployment, and the image is not installed again by updates).
    MarkBoot {
        #[arg(value_parser = ["good", "bad"])]
        verdict: String,
    },
    /// Compare a deployment's /usr with its image and check the objects behind it (exit 101
    /// when something differs).
    Verify {
        /// The deployment with INDEX (as `berth status` numbers them); default: the booted one.
        #[arg(long)]
        index: Option<u32>,
        /// The timer's scheduled check (only if scheduled-drift-check is on).
        #[arg(long, hide = true, conflicts_with = "index")]
        automatic: bool,
    },
    /// Make /usr writable for local changes until the next boot (an administrator approves).
    Unlock {
        /// Keep the changes across reboots, until the next update or rollback.
        #[arg(long)]
        hotfix: bool,
    },
    /// Cancel what berthd is doing.
    Cancel,
    /// Follow berthd's state and progress until interrupted.
    Monitor,
    /// Show the automatic-update settings and schedule; change them with --set KEY=VALUE
    /// (keys of berth.toml's [automatic]; reboot-windows: "Mon-Fri 02:00-05:00;Sat 03:00-04:00").
    Config {
        /// The policy: off, check, download or apply (as --set policy=...).
        #[arg(long)]
        automatic_updates: Option<String>,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    berth_l10n::init();
    let cli = Cli::parse();
    let code = match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            // berthd's message names the details (in English, as the journal has them);
            // the translated explanation says what it means and what to do.
            eprintln!("berth: {}", e.message);
            eprintln!("       ({})", e.name);
            eprintln!("{}", status::explain(&e));
            exit_code_for(&e.name)
        }
    };
    std::process::exit(code);
}

async fn run(cli: Cli) -> Result<i32, CallError> {
    let privileged = match &cli.command {
        Command::Status | Command::Monitor => false,
        Command::Config {
            automatic_updates,
            set,
        } => automatic_updates.is_some() || !set.is_empty(),
        _ => true,
    };
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
            let out = run_transaction(&c, "Check", &(options([]),), quiet).await?;
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
            allow_unverified,
        } => {
            let mut o = options([
                ("download-only", flag(download_only)),
                ("from-downloaded", flag(from_downloaded)),
                ("reboot", flag(reboot)),
                ("allow-unverified", flag(allow_unverified)),
            ]);
            if automatic {
                o.insert(
                    "automatic".into(),
                    Value::Bool(true).try_into().expect("plain"),
                );
            }
            let out = run_transaction(&c, "Update", &(o,), quiet).await?;
            report(&out.result, json);
        }
        Command::Switch {
            image,
            reboot,
            allow_unverified,
        } => {
            let body = (
                image,
                options([
                    ("reboot", flag(reboot)),
                    ("allow-unverified", flag(allow_unverified)),
                ]),
            );
            let out = run_transaction(&c, "Switch", &body, quiet).await?;
            report(&out.result, json);
        }
        Command::Rollback { reboot } => {
            let body = (options([("reboot", flag(reboot))]),);
            run_transaction(&c, "Rollback", &body, quiet).await?;
            if !json {
                println!("{}", fl!("cli-rolled-back"));
            }
        }
        Command::Reset { reboot } => {
            let body = (options([("reboot", flag(reboot))]),);
            let out = run_transaction(&c, "FactoryReset", &body, quiet).await?;
            if json {
                println!("{}", out.result);
            } else {
                let stateroot = out.result["stateroot"].as_str().unwrap_or("?");
                println!("{}", fl!("cli-reset-prepared", stateroot = stateroot));
            }
        }
        Command::Cleanup => {
            let out = run_transaction(&c, "Cleanup", &(options([]),), quiet).await?;
            println!("{}", out.result);
        }
        Command::Pin { index } => c.call_unit("Pin", &(index,)).await?,
        Command::Unpin { index } => c.call_unit("Unpin", &(index,)).await?,
        Command::Reboot => c.call_unit("Reboot", &(options([]),)).await?,
        Command::MarkBoot { verdict } => {
            c.call_unit("MarkBoot", &(verdict.as_str(), options([])))
                .await?;
            if !json {
                match verdict.as_str() {
                    "good" => println!("{}", fl!("cli-marked-good")),
                    _ => println!("{}", fl!("cli-marked-bad")),
                }
            }
        }
        Command::Verify { index, automatic } => {
            let mut o = options([]);
            if let Some(i) = index {
                o.insert("index".into(), Value::U32(i).try_into().expect("plain"));
            }
            if automatic {
                o.insert(
                    "automatic".into(),
                    Value::Bool(true).try_into().expect("plain"),
                );
            }
            let out = run_transaction(&c, "Verify", &(o,), quiet).await?;
            if json {
                println!("{}", out.result);
            } else {
                status::print_drift(&out.result);
            }
            let clean = ["changed", "added", "removed", "corruptObjects"]
                .iter()
                .all(|k| out.result[*k].as_array().is_some_and(Vec::is_empty));
            if !clean {
                return Ok(DRIFTED);
            }
        }
        Command::Unlock { hotfix } => {
            let body = (options([("hotfix", flag(hotfix))]),);
            let out = run_transaction(&c, "Unlock", &body, quiet).await?;
            if json {
                println!("{}", out.result);
            } else {
                let kind = out.result["unlocked"].as_str().unwrap_or("?");
                println!("{}", fl!("cli-unlocked", kind = kind));
            }
        }
        Command::Cancel => {
            let active = c.manager.active_transaction().await?;
            if active.as_str() == "/" {
                return Err(CallError::new("WrongState", fl!("cli-nothing-running")));
            }
            let mut signals = c.transaction_signals().await?;
            c.cancel(active.as_str()).await?;
            let path = active.as_str();
            match client::follow(&c, path, &mut signals, true).await {
                Err(e) if e.name.ends_with(".Cancelled") => {
                    println!("{}", fl!("cli-cancelled", path = path))
                }
                Err(e) => return Err(e),
                Ok(_) => println!("{}", fl!("cli-finished-first", path = path)),
            }
        }
        Command::Monitor => status::monitor(&c, json).await?,
        Command::Config {
            automatic_updates,
            set,
        } => {
            // Only a change needs authorization; showing the settings does not.
            let mut o = options([]);
            if let Some(p) = automatic_updates {
                o.insert("policy".into(), Value::from(p).try_into().expect("plain"));
            }
            for pair in &set {
                let (key, value) = settings::parse(pair)?;
                o.insert(key, value);
            }
            if !o.is_empty() {
                c.call_unit("Configure", &(o,)).await?;
            }
            settings::show(&c, json).await?;
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
        Some("no-update") => println!("{}", fl!("cli-up-to-date")),
        Some("downloaded") => println!("{}", fl!("cli-downloaded", version = version(result))),
        Some("staged") => println!("{}", fl!("cli-staged", version = version(result))),
        Some("known-bad") => {
            let failed = &result["failed"];
            println!(
                "{}",
                fl!(
                    "cli-known-bad",
                    version = failed["version"]
                        .as_str()
                        .or(failed["digest"].as_str())
                        .unwrap_or("?"),
                    message = failed["detail"].as_str().unwrap_or("?")
                )
            )
        }
        _ => println!("{result}"),
    }
}
