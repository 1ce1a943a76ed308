//! `berth config`: the automatic-update settings in effect, the scheduler's record, and
//! changes to them (Configure).

use berth_dbus::{CallError, Client, Options};
use berth_l10n::fl;
use zbus::zvariant::{OwnedValue, Value};

/// `KEY=VALUE` as Configure wants it: the value typed by the key.
pub fn parse(pair: &str) -> Result<(String, OwnedValue), CallError> {
    let bad = |why: String| CallError {
        name: "org.freedesktop.DBus.Error.InvalidArgs".into(),
        message: why,
    };
    let (key, value) = pair
        .split_once('=')
        .ok_or_else(|| bad(format!("{pair:?}: expected KEY=VALUE")))?;
    let (key, value) = (key.trim(), value.trim());
    let typed: Value<'_> = match key {
        "policy" | "automatic-updates" => Value::from(value),
        "reboot-windows" => Value::from(
            value
                .split(';')
                .map(str::trim)
                .filter(|w| !w.is_empty())
                .map(str::to_string)
                .collect::<Vec<String>>(),
        ),
        "on-metered" | "on-battery" | "reboot-with-sessions" => Value::from(match value {
            "true" | "yes" | "1" => true,
            "false" | "no" | "0" => false,
            _ => return Err(bad(format!("{key}: expected true or false, not {value:?}"))),
        }),
        "wariness" => Value::from(
            value
                .parse::<f64>()
                .map_err(|_| bad(format!("{key}: expected a number, not {value:?}")))?,
        ),
        // Unknown keys go as they are: berthd names what it knows.
        _ => match value.parse::<u64>() {
            Ok(n) => Value::from(n),
            Err(_) => Value::from(value),
        },
    };
    Ok((key.to_string(), typed.try_to_owned().expect("plain")))
}

fn text(v: &Value<'_>) -> String {
    match v {
        Value::Str(s) => s.to_string(),
        Value::Array(a) => a.iter().map(|v| text(v)).collect::<Vec<_>>().join("; "),
        Value::Value(v) => text(v),
        other => other.to_string(),
    }
}

fn json(v: &Value<'_>) -> serde_json::Value {
    match v {
        Value::Str(s) => s.as_str().into(),
        Value::Bool(b) => (*b).into(),
        Value::U32(n) => (*n).into(),
        Value::U64(n) => (*n).into(),
        Value::F64(f) => (*f).into(),
        Value::Array(a) => a.iter().map(|v| json(v)).collect(),
        Value::Value(v) => json(v),
        other => other.to_string().into(),
    }
}

fn local(t: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(t);
    chrono::DateTime::<chrono::Local>::from(t)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

fn sorted(o: &Options) -> Vec<(&String, &OwnedValue)> {
    let mut v: Vec<_> = o.iter().collect();
    v.sort_by_key(|(k, _)| *k);
    v
}

pub async fn show(c: &Client, as_json: bool) -> Result<(), CallError> {
    let settings = c.manager.automatic_settings().await?;
    let status = c.manager.automatic_status().await?;
    let blocked = c.manager.blocked().await?;
    let config_error = c.manager.config_error().await?;
    if as_json {
        let map = |o: &Options| -> serde_json::Map<String, serde_json::Value> {
            o.iter().map(|(k, v)| (k.clone(), json(v))).collect()
        };
        let out = serde_json::json!({
            "settings": map(&settings),
            "status": map(&status),
            "blocked": blocked,
            "configError": config_error,
        });
        println!("{out}");
        return Ok(());
    }
    let policy = c.manager.automatic_updates().await?;
    println!("{}", fl!("cli-automatic-updates", policy = policy));
    for (k, v) in sorted(&settings) {
        if k != "policy" {
            println!("  {k} = {}", text(v));
        }
    }
    let num = |k: &str| {
        status
            .get(k)
            .and_then(|v| u64::try_from(v).ok())
            .unwrap_or(0)
    };
    let word = |k: &str| status.get(k).map(|v| text(v)).unwrap_or_default();
    if num("last-check") > 0 {
        let outcome = word("last-outcome");
        println!(
            "{}",
            fl!(
                "cli-automatic-last",
                when = local(num("last-check")),
                outcome = outcome
            )
        );
    }
    if num("next-run") > 0 {
        println!(
            "{}",
            fl!("cli-automatic-next", when = local(num("next-run")))
        );
    }
    if !blocked.is_empty() {
        println!(
            "{}",
            fl!("cli-automatic-blocked", reason = word("blocked-reason"))
        );
    }
    if num("failures") > 0 {
        println!(
            "{}",
            fl!("cli-automatic-failures", failures = num("failures"))
        );
    }
    if !config_error.is_empty() {
        println!("{}", fl!("cli-config-error", error = config_error));
    }
    Ok(())
}
