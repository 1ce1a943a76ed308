//! Running one of Berth's oneshot units through systemd and waiting for its result: for work
//! that must happen in the host's mount namespace, which berthd (PrivateTmp, PrivateDevices,
//! ProtectHome) does not share: an overlay berthd mounted would be seen by nobody else.

use crate::bus_error::BusError;
use futures_util::StreamExt;
use zbus::zvariant::OwnedObjectPath;
use zbus::Connection;

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1",
    gen_blocking = false
)]
trait Systemd1 {
    fn subscribe(&self) -> zbus::Result<()>;
    fn start_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    #[zbus(signal)]
    fn job_removed(
        &self,
        id: u32,
        job: OwnedObjectPath,
        unit: String,
        result: String,
    ) -> zbus::Result<()>;
}

/// Starts `unit` and returns when its job is done; any other result is an error naming it.
pub async fn run(conn: &Connection, unit: &str) -> Result<(), BusError> {
    let unavailable =
        |e: zbus::Error| BusError::failed(format!("systemd cannot start {unit}: {e}"));
    let systemd = Systemd1Proxy::new(conn).await.map_err(unavailable)?;
    // JobRemoved goes to subscribers only; subscribe and listen before starting the job.
    systemd.subscribe().await.map_err(unavailable)?;
    let mut removed = systemd.receive_job_removed().await.map_err(unavailable)?;
    let job = systemd
        .start_unit(unit, "replace")
        .await
        .map_err(unavailable)?;
    while let Some(signal) = removed.next().await {
        let Ok(args) = signal.args() else { continue };
        if args.job != job {
            continue;
        }
        return match args.result.as_str() {
            "done" => Ok(()),
            other => Err(BusError::failed(format!(
                "{unit} ended with \"{other}\" (journalctl -u {unit} says why)"
            ))),
        };
    }
    Err(BusError::failed(format!("lost track of {unit}")))
}
