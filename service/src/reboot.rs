//! Restarting the machine through logind without overriding logind's own rules. berthd is
//! root, and logind lets root reboot past block inhibitors (a backup, a package install) and
//! other users' sessions; so, as `systemctl reboot` does on a user's behalf, berthd first
//! asks logind who would be cut off and refuses with `RebootBlocked` naming them, then
//! reboots with `RebootWithFlags(SD_LOGIND_ROOT_CHECK_INHIBITORS)`, which makes logind itself
//! honour block inhibitors even for root.

use crate::bus_error::BusError;
use zbus::zvariant::OwnedObjectPath;
use zbus::Connection;

/// logind's flag: check inhibitors even when the caller is root.
const ROOT_CHECK_INHIBITORS: u64 = 1;

#[zbus::proxy(
    interface = "org.freedesktop.login1.Manager",
    default_service = "org.freedesktop.login1",
    default_path = "/org/freedesktop/login1",
    gen_blocking = false
)]
trait Login1 {
    fn reboot_with_flags(&self, flags: u64) -> zbus::Result<()>;
    /// (what, who, why, mode, uid, pid)
    fn list_inhibitors(&self) -> zbus::Result<Vec<(String, String, String, String, u32, u32)>>;
    /// (id, uid, user, seat, object path)
    fn list_sessions(&self) -> zbus::Result<Vec<(String, u32, String, String, OwnedObjectPath)>>;
}

#[zbus::proxy(
    interface = "org.freedesktop.login1.Session",
    default_service = "org.freedesktop.login1",
    gen_blocking = false
)]
trait Login1Session {
    #[zbus(property)]
    fn class(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn state(&self) -> zbus::Result<String>;
    #[zbus(property)]
    fn remote(&self) -> zbus::Result<bool>;
    #[zbus(property, name = "TTY")]
    fn tty(&self) -> zbus::Result<String>;
}

/// Reboots for `requester` (the uid that asked), unless a block inhibitor or (with
/// `check_sessions`) another user's session stands in the way.
pub async fn reboot(
    conn: &Connection,
    requester: u32,
    check_sessions: bool,
) -> Result<(), BusError> {
    let login1 = Login1Proxy::new(conn)
        .await
        .map_err(|e| BusError::failed(format!("logind is unavailable: {e}")))?;
    let mut blockers = inhibitors(&login1).await?;
    if check_sessions {
        blockers.extend(other_sessions(conn, &login1, Some(requester)).await?);
    }
    if !blockers.is_empty() {
        return Err(blocked(format!(
            "the restart would cut off {}; try again when they are done, or have them log out",
            blockers.join(", ")
        )));
    }
    tracing::info!("rebooting through logind");
    login1
        .reboot_with_flags(ROOT_CHECK_INHIBITORS)
        .await
        .map_err(|e| match e {
            // A block inhibitor taken in between.
            zbus::Error::MethodError(name, msg, _) if name.contains("Inhibit") => {
                blocked(msg.unwrap_or_default())
            }
            e => BusError::failed(format!("logind refused to reboot: {e}")),
        })
}

/// Who a restart now would cut off.
#[derive(Debug, Default)]
pub struct People {
    /// Block inhibitors of shutdown, as "who (why)".
    pub inhibitors: Vec<String>,
    /// People logged in (other than `requester`), as "user logged in on TTY".
    pub sessions: Vec<String>,
}

/// Asks logind; without logind (a sandbox, an emulated sysroot) nobody is cut off.
pub async fn who_would_be_cut_off(conn: &Connection, requester: Option<u32>) -> People {
    let Ok(login1) = Login1Proxy::new(conn).await else {
        return People::default();
    };
    let inhibitors = inhibitors(&login1).await;
    let sessions = other_sessions(conn, &login1, requester).await;
    match (inhibitors, sessions) {
        (Ok(inhibitors), Ok(sessions)) => People {
            inhibitors,
            sessions,
        },
        (Err(e), _) | (_, Err(e)) => {
            tracing::debug!("logind: {}", e.message());
            People::default()
        }
    }
}

fn blocked(message: String) -> BusError {
    BusError::berth("RebootBlocked", message)
}

/// Block inhibitors of shutdown, as "who (why)".
async fn inhibitors(login1: &Login1Proxy<'_>) -> Result<Vec<String>, BusError> {
    let all = login1
        .list_inhibitors()
        .await
        .map_err(|e| BusError::failed(format!("cannot list logind's inhibitors: {e}")))?;
    Ok(all
        .into_iter()
        .filter(|(what, _, _, mode, ..)| {
            mode == "block" && what.split(':').any(|w| w == "shutdown")
        })
        .map(|(_, who, why, ..)| {
            format!(
                "{} ({})",
                berth_engine::text::outside(&who),
                berth_engine::text::outside(&why)
            )
        })
        .collect())
}

/// Other users' open login sessions, as "user on TTY".
async fn other_sessions(
    conn: &Connection,
    login1: &Login1Proxy<'_>,
    requester: Option<u32>,
) -> Result<Vec<String>, BusError> {
    let sessions = login1
        .list_sessions()
        .await
        .map_err(|e| BusError::failed(format!("cannot list logind's sessions: {e}")))?;
    let mut out = Vec::new();
    for (id, uid, user, _, path) in sessions {
        if Some(uid) == requester {
            continue;
        }
        let user = berth_engine::text::outside(&user);
        let Ok(s) = Login1SessionProxy::builder(conn).path(path)?.build().await else {
            // Not knowing who is there is no licence to cut them off.
            out.push(format!("{user} in session {id}"));
            continue;
        };
        // Greeters, lock screens and background sessions are not people at work; a closing
        // session is leaving.
        let (class, state) = (
            s.class().await.unwrap_or_default(),
            s.state().await.unwrap_or_default(),
        );
        let not_a_person = matches!(class.as_str(), "greeter" | "lock-screen" | "background");
        if not_a_person || state == "closing" {
            continue;
        }
        let place = match (
            s.remote().await.unwrap_or(false),
            s.tty().await.unwrap_or_default(),
        ) {
            (true, _) => "remotely".to_string(),
            (false, tty) if !tty.is_empty() => format!("on {tty}"),
            _ => format!("in session {id}"),
        };
        out.push(format!("{user} logged in {place}"));
    }
    Ok(out)
}
