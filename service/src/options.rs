//! Method options (`a{sv}`): every key must be known and of the right type, so a typo in a
//! script fails loudly instead of being ignored.

use crate::bus_error::BusError;
use berth_dbus::Options;
use zbus::zvariant::Value;

/// Reads boolean options from `options`, refusing keys outside `allowed`.
pub struct Flags<'a> {
    options: &'a Options,
}

impl<'a> Flags<'a> {
    pub fn parse(options: &'a Options, allowed: &[&str]) -> Result<Self, BusError> {
        if let Some(unknown) = options.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(BusError::invalid_args(format!(
                "unknown option {unknown:?} (known: {})",
                if allowed.is_empty() {
                    "none".to_string()
                } else {
                    allowed.join(", ")
                }
            )));
        }
        Ok(Flags { options })
    }

    pub fn bool(&self, key: &str) -> Result<bool, BusError> {
        match self.options.get(key).map(|v| &**v) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(BusError::invalid_args(format!(
                "option {key:?} must be a boolean (b), got {}",
                other.value_signature()
            ))),
        }
    }

    pub fn u32(&self, key: &str) -> Result<Option<u32>, BusError> {
        match self.options.get(key).map(|v| &**v) {
            None => Ok(None),
            Some(Value::U32(n)) => Ok(Some(*n)),
            Some(other) => Err(BusError::invalid_args(format!(
                "option {key:?} must be an unsigned integer (u), got {}",
                other.value_signature()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_dbus::options;

    #[test]
    fn unknown_keys_and_wrong_types_are_refused() {
        let o = options([("reboot", Value::Bool(true))]);
        let f = Flags::parse(&o, &["reboot"]).unwrap();
        assert!(f.bool("reboot").unwrap());
        assert!(!f.bool("download-only").unwrap());
        let e = Flags::parse(&o, &["download-only"]).err().unwrap();
        assert_eq!(e.name(), "org.freedesktop.DBus.Error.InvalidArgs");
        assert!(e.message().contains("\"reboot\""), "{}", e.message());
        let o = options([("reboot", Value::from("yes"))]);
        let e = Flags::parse(&o, &["reboot"])
            .unwrap()
            .bool("reboot")
            .err()
            .unwrap();
        assert!(e.message().contains("boolean"), "{}", e.message());
    }
}
