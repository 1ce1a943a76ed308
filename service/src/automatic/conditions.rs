//! What holds an automatic step back, asked of the machine right before the step: a
//! metered connection (NetworkManager), battery power (UPower), free space, and before a
//! reboot the window, logind's block inhibitors and logged-in users. A service that is not
//! there holds nothing back (a server has no UPower).

use berth_engine::config::Automatic;
use std::path::Path;
use zbus::proxy::CacheProperties;
use zbus::Connection;

#[derive(Debug, Clone, PartialEq)]
pub enum Blocker {
    Metered,
    OnBattery,
    BatteryLow {
        percent: f64,
        floor: u8,
    },
    LowSpace {
        free: u64,
        floor: u64,
    },
    Rollout {
        at: u64,
    },
    OutsideWindow {
        opens: Option<u64>,
    },
    Inhibited(Vec<String>),
    Sessions(Vec<String>),
    /// Every reboot slot of the fleet's group is held, by these machines.
    RebootSlots {
        group: String,
        holders: Vec<String>,
    },
    /// The reboot coordination cannot be asked: no slot, no reboot.
    Coordination(String),
}

impl Blocker {
    /// The Blocked property's value.
    pub fn code(&self) -> &'static str {
        match self {
            Blocker::Metered => "metered",
            Blocker::OnBattery => "on-battery",
            Blocker::BatteryLow { .. } => "battery-low",
            Blocker::LowSpace { .. } => "low-space",
            Blocker::Rollout { .. } => "rollout",
            Blocker::OutsideWindow { .. } => "outside-window",
            Blocker::Inhibited(_) => "inhibited",
            Blocker::Sessions(_) => "sessions",
            Blocker::RebootSlots { .. } => "reboot-slots",
            Blocker::Coordination(_) => "coordination",
        }
    }

    pub fn message(&self) -> String {
        match self {
            Blocker::Metered => "the network connection is metered".into(),
            Blocker::OnBattery => "the machine runs on battery".into(),
            Blocker::BatteryLow { percent, floor } => {
                format!("the battery is at {percent:.0}%, below {floor}%")
            }
            Blocker::LowSpace { free, floor } => format!(
                "{} MB free, {} MB needed",
                free / 1_000_000,
                floor / 1_000_000
            ),
            Blocker::Rollout { at } => format!(
                "phased rollout: this machine takes the image from {}",
                when(*at)
            ),
            Blocker::OutsideWindow { opens: Some(t) } => {
                format!("outside the reboot windows; the next opens {}", when(*t))
            }
            Blocker::OutsideWindow { opens: None } => "outside the reboot windows".into(),
            Blocker::Inhibited(who) => format!("a restart is inhibited by {}", who.join(", ")),
            Blocker::Sessions(who) => format!("{} (reboot-with-sessions is off)", who.join(", ")),
            Blocker::RebootSlots { group, holders } => format!(
                "the reboot slots of group {group} are taken (by {})",
                holders.join(", ")
            ),
            Blocker::Coordination(why) => {
                format!("the fleet's reboot coordination cannot be asked: {why}")
            }
        }
    }
}

#[zbus::proxy(
    interface = "org.freedesktop.NetworkManager",
    default_service = "org.freedesktop.NetworkManager",
    default_path = "/org/freedesktop/NetworkManager",
    gen_blocking = false
)]
trait NetworkManager {
    /// NMMetered: 0 unknown, 1 yes, 2 no, 3 guess yes, 4 guess no.
    #[zbus(property)]
    fn metered(&self) -> zbus::Result<u32>;
}

#[zbus::proxy(
    interface = "org.freedesktop.UPower",
    default_service = "org.freedesktop.UPower",
    default_path = "/org/freedesktop/UPower",
    gen_blocking = false
)]
trait UPower {
    #[zbus(property)]
    fn on_battery(&self) -> zbus::Result<bool>;
}

#[zbus::proxy(
    interface = "org.freedesktop.UPower.Device",
    default_service = "org.freedesktop.UPower",
    default_path = "/org/freedesktop/UPower/devices/DisplayDevice",
    gen_blocking = false
)]
trait UPowerDevice {
    #[zbus(property)]
    fn is_present(&self) -> zbus::Result<bool>;
    #[zbus(property)]
    fn percentage(&self) -> zbus::Result<f64>;
}

async fn metered(conn: &Connection) -> Option<Blocker> {
    let nm = NetworkManagerProxy::builder(conn)
        .cache_properties(CacheProperties::No)
        .build()
        .await
        .ok()?;
    let m = nm.metered().await.ok()?;
    matches!(m, 1 | 3).then_some(Blocker::Metered)
}

async fn battery(conn: &Connection, s: &Automatic) -> Option<Blocker> {
    let upower = UPowerProxy::builder(conn)
        .cache_properties(CacheProperties::No)
        .build()
        .await
        .ok()?;
    if !upower.on_battery().await.ok()? {
        return None;
    }
    if !s.on_battery {
        return Some(Blocker::OnBattery);
    }
    let device = UPowerDeviceProxy::builder(conn)
        .cache_properties(CacheProperties::No)
        .build()
        .await
        .ok()?;
    if !device.is_present().await.unwrap_or(false) {
        return None;
    }
    let percent = device.percentage().await.ok()?;
    (percent < f64::from(s.min_battery_percent)).then_some(Blocker::BatteryLow {
        percent,
        floor: s.min_battery_percent,
    })
}

/// Before a download: the connection, the battery, the space.
pub async fn before_download(conn: &Connection, sysroot: &Path, s: &Automatic) -> Vec<Blocker> {
    let mut out = Vec::new();
    if !s.on_metered {
        out.extend(metered(conn).await);
    }
    out.extend(battery(conn, s).await);
    match berth_engine::space::available(sysroot) {
        Ok(free) if free < s.min_free_space => out.push(Blocker::LowSpace {
            free,
            floor: s.min_free_space,
        }),
        Ok(_) => {}
        Err(e) => tracing::warn!("cannot tell the free space: {e}"),
    }
    out
}

/// Before a reboot: the window (unless the deadline passed), the battery, block inhibitors,
/// and logged-in people (unless allowed or the deadline passed).
pub async fn before_reboot(
    conn: &Connection,
    s: &Automatic,
    past_deadline: bool,
    now: u64,
) -> Vec<Blocker> {
    let mut out = Vec::new();
    let local = local_time(now);
    if !past_deadline && !s.in_reboot_window(local) {
        let opens = s.next_reboot_window(local).and_then(to_unix);
        out.push(Blocker::OutsideWindow { opens });
    }
    out.extend(battery(conn, s).await);
    let people = crate::reboot::who_would_be_cut_off(conn, None).await;
    if !people.inhibitors.is_empty() {
        out.push(Blocker::Inhibited(people.inhibitors));
    }
    let sessions_allowed = s.reboot_with_sessions || past_deadline;
    if !people.sessions.is_empty() && !sessions_allowed {
        out.push(Blocker::Sessions(people.sessions));
    }
    out
}

/// A moment in local time, as an administrator reads it in the journal.
pub fn when(unix: u64) -> String {
    use chrono::TimeZone;
    chrono::Local
        .timestamp_opt(unix as i64, 0)
        .single()
        .map_or_else(
            || unix.to_string(),
            |t| t.format("%Y-%m-%d %H:%M %:z").to_string(),
        )
}

fn local_time(unix: u64) -> chrono::NaiveDateTime {
    use chrono::TimeZone;
    chrono::Local
        .timestamp_opt(unix as i64, 0)
        .single()
        .map(|t| t.naive_local())
        .unwrap_or_default()
}

fn to_unix(local: chrono::NaiveDateTime) -> Option<u64> {
    use chrono::TimeZone;
    // A window opening in a skipped hour (DST) opens at the first real moment after.
    let t = chrono::Local
        .from_local_datetime(&local)
        .earliest()
        .or_else(|| {
            chrono::Local
                .from_local_datetime(&(local + chrono::Duration::hours(1)))
                .earliest()
        })?;
    u64::try_from(t.timestamp()).ok()
}
