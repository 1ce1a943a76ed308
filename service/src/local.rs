//! berthd's local root commands: drive the engine directly, without the bus.

use crate::{Cli, Command};
use anyhow::{Context, Result};
use berth_engine::{progress, Cancel, Engine, ImageRef, InstallOptions, Progress, UpdateOptions};
use std::sync::Arc;
use std::time::Duration;

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

pub async fn run(cli: Cli) -> Result<()> {
    let config = berth_engine::config::Sources::new(&cli.config, &cli.vendor_config).load()?;
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
        Command::Install { .. } | Command::Serve { .. } => unreachable!("handled by the caller"),
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
                    // Root's own command: an administrator's choice.
                    UpdateOptions {
                        download_only,
                        from_downloaded,
                        approved: berth_engine::Approval::ADMIN,
                    },
                    progress,
                    &cancel,
                )
                .await?,
        )?,
        Command::Switch {
            image,
            allow_unverified,
        } => print_json(
            &engine
                .switch(
                    &ImageRef::parse(&image)?,
                    allow_unverified,
                    progress,
                    &cancel,
                )
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
        Command::FinalizeStaged => match engine.finalize_staged()? {
            Some(id) => println!("finalized the staged update: {id} boots next"),
            None => println!("nothing staged"),
        },
        Command::Unlock { kind } => {
            let kind = berth_engine::unlock::UnlockKind::parse(&kind).expect("clap checked it");
            engine.unlock(kind)?;
            tracing::info!(
                "the booted deployment's /usr is unlocked ({})",
                kind.as_str()
            );
            println!("/usr is unlocked ({})", kind.as_str());
        }
        Command::MountHotfix => {
            if engine.mount_hotfix()? {
                tracing::warn!("/usr is unlocked: the booted deployment's hotfix is mounted");
            }
        }
        Command::Verify { index } => {
            let report = engine.verify(index, progress, &cancel)?;
            print_json(&report)?;
            if !report.is_clean() {
                std::process::exit(101);
            }
        }
        Command::AssessBoot => crate::boot::assess(&engine)?,
        Command::HealthCheck => crate::boot::health_check(&engine).await?,
        Command::BootFailed => {
            if !crate::boot::failed(&engine)? {
                std::process::exit(1);
            }
        }
        Command::MarkBoot { verdict } => {
            if verdict == "good" {
                engine.mark_boot_good()?;
                println!("the booted deployment is marked good");
            } else {
                engine.mark_boot_bad("marked bad by root")?;
                println!("marked bad: the next boot falls back to the previous deployment");
            }
        }
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
        if let Some(v) = d.image.as_ref().and_then(|i| i.verification.as_ref()) {
            println!("           signature: {} (scope {})", v.summary(), v.scope);
        }
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
