//! berthd's life on the bus: connect, put the Manager in place, own the name, forget
//! clients that leave, and exit when idle or told to.

use crate::daemon::Daemon;
use crate::manager::ManagerObject;
use berth_dbus::{BUS_NAME, MANAGER_PATH};
use berth_engine::Engine;
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::{Duration, Instant};
pub struct ServeOptions {
    pub bus_address: Option<String>,
    /// Exit after this long with nothing running and nobody registered; None = never.
    pub idle_timeout: Option<Duration>,
    pub sources: berth_engine::config::Sources,
}

/// Serves the bus API until idle exit or SIGTERM.
pub async fn serve(engine: Engine, opts: ServeOptions) -> anyhow::Result<()> {
    let started = Instant::now();
    let builder = match &opts.bus_address {
        Some(a) => zbus::connection::Builder::address(a.as_str())?,
        None => zbus::connection::Builder::system()?,
    };
    let conn = builder.build().await?;
    let daemon = Daemon::new(engine, conn.clone(), opts.sources.clone());
    daemon.recover_in_flight();
    let rolled_back = daemon.recover_rolled_back();
    daemon.refresh().await;
    conn.object_server()
        .at(MANAGER_PATH, ManagerObject::new(daemon.clone()))
        .await?;
    // Ask for the name last: once it is ours, every object is in place.
    conn.request_name(BUS_NAME).await?;
    if let Some(failed) = rolled_back {
        ManagerObject::announce_rollback(&conn, &failed).await;
    }
    tracing::info!(
        "serving {BUS_NAME} for {} (ready in {:?})",
        daemon.engine.sysroot_path().display(),
        started.elapsed()
    );
    tokio::spawn(forget_departed_clients(daemon.clone()));
    tokio::spawn(crate::automatic::run(daemon.clone()));
    tokio::spawn(reload_on_hangup(daemon.clone()));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let idle = async {
        let Some(limit) = opts.idle_timeout else {
            return std::future::pending().await;
        };
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if daemon.idle_for().is_some_and(|d| d >= limit) {
                return;
            }
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: exiting"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted: exiting"),
        _ = idle => tracing::info!("idle: exiting"),
    }
    if let Some(t) = daemon.active() {
        // Stop work cleanly (the engine leaves the system as it was), but do not hang.
        t.cancel.cancel();
        for _ in 0..100 {
            if daemon.active().is_none() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    conn.release_name(BUS_NAME).await.ok();
    Ok(())
}

/// SIGHUP (`systemctl reload berthd`): the scheduler re-reads the configuration now.
async fn reload_on_hangup(daemon: Arc<Daemon>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        return;
    };
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP: reading the configuration again");
        daemon.wake_scheduler.notify_one();
    }
}

/// A registered client that leaves the bus no longer keeps berthd alive.
async fn forget_departed_clients(daemon: Arc<Daemon>) {
    let Ok(bus) = zbus::fdo::DBusProxy::new(&daemon.conn).await else {
        return;
    };
    let Ok(mut changes) = bus.receive_name_owner_changed().await else {
        return;
    };
    while let Some(change) = changes.next().await {
        if let Ok(args) = change.args() {
            if args.new_owner().is_none() {
                daemon.unregister_client(args.name().as_str());
            }
        }
    }
}
