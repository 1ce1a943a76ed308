//! Stand-ins for NetworkManager, UPower and logind on the private test bus: they speak the
//! real interfaces (the parts berthd reads) and let a test turn each condition on and off.
//! The real daemons cannot run in the test sandbox (no hardware, no systemd as PID 1).

use anyhow::Result;
use std::sync::{Arc, Mutex};
use zbus::interface;
use zbus::zvariant::OwnedObjectPath;

const NM_PATH: &str = "/org/freedesktop/NetworkManager";
const UPOWER_PATH: &str = "/org/freedesktop/UPower";
const DISPLAY_DEVICE: &str = "/org/freedesktop/UPower/devices/DisplayDevice";
const LOGIN1_PATH: &str = "/org/freedesktop/login1";

type Inhibitor = (String, String, String, String, u32, u32);
type SessionEntry = (String, u32, String, String, OwnedObjectPath);

#[derive(Default)]
struct State {
    metered: u32,
    on_battery: bool,
    percent: f64,
    inhibitors: Vec<Inhibitor>,
    sessions: Vec<SessionEntry>,
    reboots: u32,
}

type Shared = Arc<Mutex<State>>;

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

struct NetworkManager(Shared);

#[interface(name = "org.freedesktop.NetworkManager")]
impl NetworkManager {
    #[zbus(property)]
    fn metered(&self) -> u32 {
        lock(&self.0).metered
    }
}

struct UPower(Shared);

#[interface(name = "org.freedesktop.UPower")]
impl UPower {
    fn get_display_device(&self) -> OwnedObjectPath {
        OwnedObjectPath::try_from(DISPLAY_DEVICE).expect("valid path")
    }
    #[zbus(property)]
    fn on_battery(&self) -> bool {
        lock(&self.0).on_battery
    }
}

struct DisplayDevice(Shared);

#[interface(name = "org.freedesktop.UPower.Device")]
impl DisplayDevice {
    #[zbus(property)]
    fn is_present(&self) -> bool {
        true
    }
    #[zbus(property)]
    fn percentage(&self) -> f64 {
        lock(&self.0).percent
    }
}

struct Login1(Shared);

#[interface(name = "org.freedesktop.login1.Manager")]
impl Login1 {
    fn list_inhibitors(&self) -> Vec<Inhibitor> {
        lock(&self.0).inhibitors.clone()
    }
    fn list_sessions(&self) -> Vec<SessionEntry> {
        lock(&self.0).sessions.clone()
    }
    fn reboot_with_flags(&self, _flags: u64) -> zbus::fdo::Result<()> {
        let mut s = lock(&self.0);
        if s.inhibitors.iter().any(|i| i.3 == "block") {
            return Err(zbus::fdo::Error::AccessDenied(
                "Operation inhibited by a block inhibitor".into(),
            ));
        }
        s.reboots += 1;
        Ok(())
    }
}

struct Session {
    tty: String,
}

#[interface(name = "org.freedesktop.login1.Session")]
impl Session {
    #[zbus(property)]
    fn class(&self) -> &str {
        "user"
    }
    #[zbus(property)]
    fn state(&self) -> &str {
        "active"
    }
    #[zbus(property)]
    fn remote(&self) -> bool {
        false
    }
    #[zbus(property, name = "TTY")]
    fn tty(&self) -> &str {
        &self.tty
    }
}

/// The three services, on one connection of their own.
pub struct StandIns {
    conn: zbus::Connection,
    state: Shared,
}

impl StandIns {
    pub async fn start(address: &str) -> Result<StandIns> {
        let state = Shared::new(Mutex::new(State {
            metered: 4,
            percent: 100.0,
            ..State::default()
        }));
        let conn = zbus::connection::Builder::address(address)?
            .serve_at(NM_PATH, NetworkManager(state.clone()))?
            .serve_at(UPOWER_PATH, UPower(state.clone()))?
            .serve_at(DISPLAY_DEVICE, DisplayDevice(state.clone()))?
            .serve_at(LOGIN1_PATH, Login1(state.clone()))?
            .name("org.freedesktop.NetworkManager")?
            .name("org.freedesktop.UPower")?
            .name("org.freedesktop.login1")?
            .build()
            .await?;
        Ok(StandIns { conn, state })
    }

    /// NMMetered: 1 yes, 2 no, 3 guess yes, 4 guess no.
    pub fn set_metered(&self, metered: u32) {
        lock(&self.state).metered = metered;
    }

    pub fn set_battery(&self, on_battery: bool, percent: f64) {
        let mut s = lock(&self.state);
        s.on_battery = on_battery;
        s.percent = percent;
    }

    /// A block inhibitor of shutdown, as `systemd-inhibit --what=shutdown` takes one.
    pub fn inhibit(&self, who: &str, why: &str) {
        lock(&self.state).inhibitors.push((
            "shutdown:sleep".into(),
            who.into(),
            why.into(),
            "block".into(),
            0,
            1,
        ));
    }

    pub fn release_inhibitors(&self) {
        lock(&self.state).inhibitors.clear();
    }

    /// A person logged in on `tty`.
    pub async fn log_in(&self, uid: u32, user: &str, tty: &str) -> Result<()> {
        let id = format!("{}", lock(&self.state).sessions.len() + 1);
        let path = format!("{LOGIN1_PATH}/session/_3{id}");
        self.conn
            .object_server()
            .at(path.as_str(), Session { tty: tty.into() })
            .await?;
        lock(&self.state).sessions.push((
            id,
            uid,
            user.into(),
            "seat0".into(),
            OwnedObjectPath::try_from(path)?,
        ));
        Ok(())
    }

    pub async fn log_everyone_out(&self) -> Result<()> {
        let sessions = std::mem::take(&mut lock(&self.state).sessions);
        for (.., path) in sessions {
            self.conn
                .object_server()
                .remove::<Session, _>(path.as_str())
                .await?;
        }
        Ok(())
    }

    /// Reboots logind was asked for (a real system's; an emulated one reboots itself).
    pub fn reboots(&self) -> u32 {
        lock(&self.state).reboots
    }
}
