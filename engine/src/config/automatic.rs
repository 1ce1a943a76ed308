//! The `[automatic]` table: how far berthd's scheduler takes updates by itself, when it looks,
//! and what holds it back. Every value is checked while the file is read, so a bad one is
//! an error naming its file, line and key.

use serde::{Deserialize, Deserializer, Serialize};

/// How far an automatic update goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Nothing automatic.
    #[default]
    Off,
    /// Look for updates and say so.
    Check,
    /// Also download them.
    Download,
    /// Also stage them and reboot into them (inside a reboot window, if any are set).
    Apply,
}

impl Policy {
    pub const ALL: [Policy; 4] = [Policy::Off, Policy::Check, Policy::Download, Policy::Apply];

    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Off => "off",
            Policy::Check => "check",
            Policy::Download => "download",
            Policy::Apply => "apply",
        }
    }
}

/// `[automatic]` in berth.toml. Times are seconds unless the name says otherwise.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Automatic {
    pub policy: Policy,
    /// The first check of a boot comes this long after berthd starts.
    pub first_check_delay: u64,
    #[serde(deserialize_with = "at_least_one")]
    pub check_interval: u64,
    /// Up to this much is added at random to each interval, so a fleet does not check at once.
    pub jitter: u64,
    /// A blocked step is tried again after this; a failed one after this, doubled per failure.
    #[serde(deserialize_with = "at_least_one")]
    pub retry_interval: u64,
    /// The longest a failure backs off.
    #[serde(deserialize_with = "at_least_one")]
    pub max_backoff: u64,
    /// Phased rollout: a machine takes an image once `created + wariness × rollout-period`
    /// has passed. 0: every machine at once.
    pub rollout_period: u64,
    /// This machine's place in the rollout, in [0, 1); default: derived from the machine id.
    #[serde(deserialize_with = "wariness", skip_serializing_if = "Option::is_none")]
    pub wariness: Option<f64>,
    /// Download on a metered connection (NetworkManager's Metered).
    pub on_metered: bool,
    /// Download and reboot on battery power (UPower's OnBattery).
    pub on_battery: bool,
    /// Even when on-battery is allowed: not below this charge.
    #[serde(deserialize_with = "percent")]
    pub min_battery_percent: u8,
    /// Bytes that must be free on the sysroot's filesystem before a download.
    pub min_free_space: u64,
    /// When the apply policy may reboot; none: any time.
    pub reboot_windows: Vec<Window>,
    /// Reboot at most this many hours after staging, even outside the windows and under
    /// logged-in users (block inhibitors still hold it). 0: no deadline.
    pub reboot_deadline_hours: u64,
    /// Reboot while other users are logged in.
    pub reboot_with_sessions: bool,
}

impl Default for Automatic {
    fn default() -> Self {
        Automatic {
            policy: Policy::Off,
            first_check_delay: 5 * 60,
            check_interval: 24 * 3600,
            jitter: 3600,
            retry_interval: 15 * 60,
            max_backoff: 24 * 3600,
            rollout_period: 0,
            wariness: None,
            on_metered: false,
            on_battery: false,
            min_battery_percent: 30,
            min_free_space: 1 << 30,
            reboot_windows: Vec::new(),
            reboot_deadline_hours: 0,
            reboot_with_sessions: false,
        }
    }
}

impl Automatic {
    /// The settable keys, as in berth.toml's `[automatic]` (and Configure over D-Bus).
    pub const KEYS: [&'static str; 15] = [
        "policy",
        "first-check-delay",
        "check-interval",
        "jitter",
        "retry-interval",
        "max-backoff",
        "rollout-period",
        "wariness",
        "on-metered",
        "on-battery",
        "min-battery-percent",
        "min-free-space",
        "reboot-windows",
        "reboot-deadline-hours",
        "reboot-with-sessions",
    ];

    /// Whether a reboot may start at this local time (no windows: any time).
    pub fn in_reboot_window(&self, local: chrono::NaiveDateTime) -> bool {
        self.reboot_windows.is_empty() || self.reboot_windows.iter().any(|w| w.contains(local))
    }

    /// The next local time a reboot window opens after `local`, within a week.
    pub fn next_reboot_window(
        &self,
        local: chrono::NaiveDateTime,
    ) -> Option<chrono::NaiveDateTime> {
        self.reboot_windows
            .iter()
            .filter_map(|w| w.next_start(local))
            .min()
    }
}

fn at_least_one<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let v = u64::deserialize(d)?;
    if v == 0 {
        return Err(serde::de::Error::custom("must be at least 1 (seconds)"));
    }
    Ok(v)
}

fn percent<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    let v = u8::deserialize(d)?;
    if v > 100 {
        return Err(serde::de::Error::custom("a percentage is 0 to 100"));
    }
    Ok(v)
}

fn wariness<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    let v = f64::deserialize(d)?;
    if !(0.0..1.0).contains(&v) {
        return Err(serde::de::Error::custom(format!(
            "wariness is at least 0 and below 1, not {v}"
        )));
    }
    Ok(Some(v))
}

/// A weekly reboot window in local time: `"Mon-Fri 02:00-05:00"`, `"Sat,Sun 01:30-04:00"`,
/// `"22:00-02:00"` (every day; an end before the start is on the next day).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Monday first.
    days: [bool; 7],
    start: u32,
    end: u32,
    text: String,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl Window {
    pub fn parse(text: &str) -> Result<Window, String> {
        let bad =
            |why: &str| format!("reboot window {text:?}: {why} (like \"Mon-Fri 02:00-05:00\")");
        let (days_part, hours_part) = match text.trim().rsplit_once(char::is_whitespace) {
            Some((d, h)) => (Some(d.trim()), h),
            None => (None, text.trim()),
        };
        let mut days = [days_part.is_none(); 7];
        for item in days_part
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.is_empty())
        {
            let (a, b) = item.split_once('-').unwrap_or((item, item));
            let (a, b) = (
                day(a).ok_or_else(|| bad("unknown day"))?,
                day(b).ok_or_else(|| bad("unknown day"))?,
            );
            let mut i = a;
            loop {
                days[i] = true;
                if i == b {
                    break;
                }
                i = (i + 1) % 7;
            }
        }
        let (s, e) = hours_part.split_once('-').ok_or_else(|| bad("no hours"))?;
        let (start, end) = (
            minute(s).ok_or_else(|| bad("bad time"))?,
            minute(e).ok_or_else(|| bad("bad time"))?,
        );
        if start == end {
            return Err(bad("it starts and ends at the same time"));
        }
        Ok(Window {
            days,
            start,
            end,
            text: text.trim().to_string(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn contains(&self, t: chrono::NaiveDateTime) -> bool {
        use chrono::{Datelike, Timelike};
        let day = t.weekday().num_days_from_monday() as usize;
        let m = t.hour() * 60 + t.minute();
        if self.start < self.end {
            self.days[day] && (self.start..self.end).contains(&m)
        } else {
            // Past midnight: the window belongs to the day it opened.
            (self.days[day] && m >= self.start) || (self.days[(day + 6) % 7] && m < self.end)
        }
    }

    /// The first opening strictly after `t`.
    pub fn next_start(&self, t: chrono::NaiveDateTime) -> Option<chrono::NaiveDateTime> {
        use chrono::Datelike;
        (0..8).find_map(|ahead| {
            let date = t.date() + chrono::Days::new(ahead);
            let day = date.weekday().num_days_from_monday() as usize;
            let at = date.and_hms_opt(self.start / 60, self.start % 60, 0)?;
            (self.days[day] && at > t).then_some(at)
        })
    }
}

fn day(s: &str) -> Option<usize> {
    let s = s.trim().to_ascii_lowercase();
    DAYS.iter()
        .position(|d| s.starts_with(d) && d.len() <= s.len() && s.len() <= 9)
}

fn minute(s: &str) -> Option<u32> {
    let (h, m) = s.trim().split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    // 24:00 closes a window at midnight.
    ((h < 24 && m < 60) || (h == 24 && m == 0)).then_some((h * 60 + m) % (24 * 60))
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Window::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Window {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> chrono::NaiveDateTime {
        NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_hms_opt(h, mi, 0)
            .unwrap()
    }

    #[test]
    fn windows_open_and_close() {
        // 2026-12-02 is a Wednesday.
        let w = Window::parse("Mon-Fri 02:00-05:00").unwrap();
        assert!(w.contains(at(2026, 12, 2, 2, 0)));
        assert!(w.contains(at(2026, 12, 2, 4, 59)));
        assert!(!w.contains(at(2026, 12, 2, 5, 0)));
        assert!(!w.contains(at(2026, 12, 5, 3, 0)), "Saturday");
        assert_eq!(
            w.next_start(at(2026, 12, 4, 6, 0)),
            Some(at(2026, 12, 7, 2, 0))
        );
        let night = Window::parse("Sat 22:00-02:00").unwrap();
        assert!(night.contains(at(2026, 12, 5, 23, 0)));
        assert!(
            night.contains(at(2026, 12, 6, 1, 0)),
            "Sunday morning, opened Saturday"
        );
        assert!(!night.contains(at(2026, 12, 7, 1, 0)));
        let daily = Window::parse("03:00-24:00").unwrap();
        assert!(daily.contains(at(2026, 12, 6, 23, 59)));
        let wrap = Window::parse("Sat-Mon 01:00-02:00").unwrap();
        assert!(wrap.contains(at(2026, 12, 7, 1, 30)), "Monday");
        assert!(!wrap.contains(at(2026, 12, 8, 1, 30)), "Tuesday");
        for bad in [
            "Mon 02:00",
            "Funday 01:00-02:00",
            "25:00-26:00",
            "02:00-02:00",
            "",
        ] {
            assert!(Window::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn automatic_defaults_and_windows() {
        let a = Automatic::default();
        assert_eq!(a.policy, Policy::Off);
        assert!(a.in_reboot_window(at(2026, 12, 2, 12, 0)));
        let a = Automatic {
            reboot_windows: vec![
                Window::parse("Wed 14:00-15:00").unwrap(),
                Window::parse("Thu 01:00-02:00").unwrap(),
            ],
            ..a
        };
        assert!(!a.in_reboot_window(at(2026, 12, 2, 12, 0)));
        assert_eq!(
            a.next_reboot_window(at(2026, 12, 2, 12, 0)),
            Some(at(2026, 12, 2, 14, 0))
        );
        assert_eq!(
            a.next_reboot_window(at(2026, 12, 2, 16, 0)),
            Some(at(2026, 12, 3, 1, 0))
        );
    }
}
