//! Configure over the bus: keys of berth.toml's `[automatic]` table, written to the
//! administrator's drop-in (`/etc/berth/berth.toml.d/90-configure.toml`) after the whole
//! configuration with the change is checked, so a bad value is refused and nothing is written.
//! In /etc: merged on update, gone after a factory reset.

use crate::bus_error::BusError;
use berth_dbus::Options;
use berth_engine::config::{Automatic, Sources};
use std::path::PathBuf;
use zbus::zvariant::Value;

/// The old name of `policy`, still accepted.
const POLICY_ALIAS: &str = "automatic-updates";

/// The settings asked for, as TOML values under their `[automatic]` key.
pub fn changes(options: &Options) -> Result<Vec<(String, toml::Value)>, BusError> {
    let mut out = Vec::new();
    for (key, value) in options {
        let key = if key == POLICY_ALIAS { "policy" } else { key };
        if !Automatic::KEYS.contains(&key) {
            return Err(BusError::invalid_args(format!(
                "unknown setting {key:?} (settable: {})",
                Automatic::KEYS.join(", ")
            )));
        }
        let value = to_toml(value).ok_or_else(|| {
            BusError::invalid_args(format!(
                "setting {key:?} cannot be a {}",
                value.value_signature()
            ))
        })?;
        out.push((key.to_string(), value));
    }
    if out.is_empty() {
        return Err(BusError::invalid_args("no setting given"));
    }
    Ok(out)
}

fn to_toml(v: &Value<'_>) -> Option<toml::Value> {
    Some(match v {
        Value::Str(s) => toml::Value::String(s.to_string()),
        Value::Bool(b) => toml::Value::Boolean(*b),
        Value::U8(n) => toml::Value::Integer(i64::from(*n)),
        Value::U16(n) => toml::Value::Integer(i64::from(*n)),
        Value::I16(n) => toml::Value::Integer(i64::from(*n)),
        Value::U32(n) => toml::Value::Integer(i64::from(*n)),
        Value::I32(n) => toml::Value::Integer(i64::from(*n)),
        Value::U64(n) => toml::Value::Integer(i64::try_from(*n).ok()?),
        Value::I64(n) => toml::Value::Integer(*n),
        Value::F64(f) => toml::Value::Float(*f),
        Value::Array(a) => toml::Value::Array(a.iter().map(to_toml).collect::<Option<_>>()?),
        Value::Value(inner) => to_toml(inner)?,
        _ => return None,
    })
}

/// The drop-in with the changes applied: its path and new text.
fn updated(
    sources: &Sources,
    changes: &[(String, toml::Value)],
) -> Result<(PathBuf, String), BusError> {
    let path = sources
        .configure_dropin()
        .ok_or_else(|| BusError::failed("this configuration has no drop-in directory"))?;
    let mut table: toml::Table = match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text)
            .map_err(|e| BusError::failed(format!("{}: {e}", path.display())))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => toml::Table::new(),
        Err(e) => return Err(BusError::failed(format!("{}: {e}", path.display()))),
    };
    let automatic = table
        .entry("automatic")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let toml::Value::Table(automatic) = automatic else {
        return Err(BusError::failed(format!(
            "{}: automatic is not a table",
            path.display()
        )));
    };
    for (key, value) in changes {
        automatic.insert(key.clone(), value.clone());
    }
    let text = format!(
        "# Written by berthd (Configure over D-Bus); later drop-ins win over it.\n{}",
        toml::to_string(&table).map_err(|e| BusError::failed(e.to_string()))?
    );
    Ok((path, text))
}

/// Refuses changes that would make the configuration bad, naming the key.
pub fn check(sources: &Sources, changes: &[(String, toml::Value)]) -> Result<(), BusError> {
    let (path, text) = updated(sources, changes)?;
    sources
        .load_with(Some((&path, &text)))
        .map(|_| ())
        .map_err(|e| BusError::invalid_args(e.to_string()))
}

/// Checks, then writes the drop-in atomically.
pub fn store(sources: &Sources, changes: &[(String, toml::Value)]) -> Result<(), BusError> {
    check(sources, changes)?;
    let (path, text) = updated(sources, changes)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| BusError::failed(format!("cannot create {}: {e}", dir.display())))?;
        // Others read berth.toml; its drop-ins hold nothing secret either.
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
    }
    berth_engine::write_atomic(&path, text.as_bytes())
        .map_err(|e| BusError::failed(format!("cannot write {}: {e}", path.display())))?;
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use zbus::zvariant::OwnedValue;

    fn opts(pairs: &[(&str, Value<'_>)]) -> Options {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    OwnedValue::try_from(v.try_clone().unwrap()).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn changes_are_checked_then_kept() {
        let dir = std::env::temp_dir().join(format!("berth-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let main = dir.join("berth.toml");
        std::fs::write(&main, "retries = 1\n").unwrap();
        let sources = Sources::new(&main, &dir.join("vendor"));
        let c = changes(&opts(&[
            ("automatic-updates", Value::from("download")),
            ("check-interval", Value::from(600u64)),
            ("reboot-windows", Value::from(vec!["Sat 01:00-02:00"])),
        ]))
        .unwrap();
        store(&sources, &c).unwrap();
        let a = sources.load().unwrap().automatic;
        assert_eq!(a.policy, berth_engine::config::Policy::Download);
        assert_eq!(a.check_interval, 600);
        assert_eq!(a.reboot_windows[0].as_str(), "Sat 01:00-02:00");
        // A later change keeps the earlier ones.
        store(
            &sources,
            &changes(&opts(&[("jitter", Value::from(0u32))])).unwrap(),
        )
        .unwrap();
        assert_eq!(sources.load().unwrap().automatic.check_interval, 600);
        for bad in [
            opts(&[("policy", Value::from("sometimes"))]),
            opts(&[("wariness", Value::from(2.0))]),
            opts(&[("reboot-windows", Value::from(vec!["whenever"]))]),
        ] {
            let e = store(&sources, &changes(&bad).unwrap()).unwrap_err();
            assert!(e.name().ends_with("InvalidArgs"), "{}", e.message());
        }
        assert!(changes(&opts(&[("insecure-registries", Value::from("x"))])).is_err());
        assert_eq!(
            sources.load().unwrap().automatic.jitter,
            0,
            "nothing bad was written"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
