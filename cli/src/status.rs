//! Human-readable status, check results and the monitor.

use berth_dbus::{CallError, Client};
use berth_l10n::fl;
use futures_util::StreamExt;
use serde_json::Value;

/// What an error means for the user and what to do next, for the lines after berthd's own.
pub fn explain(e: &CallError) -> String {
    let ex = berth_l10n::explain(&e.name, &e.message);
    format!("{}: {}", ex.title, ex.advice)
}

pub async fn print(c: &Client, json: &str) -> Result<(), CallError> {
    let host: Value = serde_json::from_str(json)
        .map_err(|e| CallError::new("Failed", format!("berthd sent malformed status JSON: {e}")))?;
    let berth = &host["status"]["berth"];
    for d in berth["deployments"].as_array().into_iter().flatten() {
        let role = if d["staged"] == true {
            fl!("cli-role-staged")
        } else if d["booted"] == true {
            fl!("cli-role-booted")
        } else if d["rollback"] == true {
            fl!("cli-role-rollback")
        } else {
            String::new()
        };
        let image = &d["image"];
        let line = fl!(
            "cli-status-deployment",
            image = image["image"]["image"]
                .as_str()
                .map_or_else(|| fl!("cli-no-image"), str::to_string),
            version = image["version"].as_str().unwrap_or("?")
        );
        println!(
            "{}{:<9}[{}] {}{}",
            if d["default"] == true { "● " } else { "  " },
            role,
            d["index"],
            line,
            if d["pinned"] == true {
                format!(" ({})", fl!("cli-pinned"))
            } else {
                String::new()
            },
        );
        println!(
            "             {}",
            fl!(
                "cli-status-details",
                digest = image["imageDigest"].as_str().unwrap_or("-"),
                commit = format!(
                    "{}.{}",
                    d["checksum"].as_str().unwrap_or("").get(..12).unwrap_or(""),
                    d["deploySerial"]
                ),
                stateroot = d["stateroot"].as_str().unwrap_or("")
            )
        );
        if let Some(line) = signature_line(&image["verification"]) {
            println!("             {line}");
        }
        if let Some(kind) = d["unlocked"].as_str() {
            println!("             {}", fl!("cli-status-unlocked", kind = kind));
        }
        if let Some(line) = drift_line(&d["drift"]) {
            println!("             {line}");
        }
    }
    print_assessment(&berth["bootAssessment"]);
    let state = c.manager.state().await?;
    println!("{}", fl!("cli-state", state = state));
    let err = c.manager.error_message().await?;
    if !err.is_empty() {
        let name = c.manager.error_name().await?;
        println!(
            "{}",
            fl!("cli-last-error", message = format!("{err} ({name})"))
        );
    }
    let cached = c.manager.cached_update().await?;
    if !cached.is_empty() {
        let get = |k: &str| {
            cached
                .get(k)
                .and_then(|v| String::try_from(v.try_clone().ok()?).ok())
                .unwrap_or_default()
        };
        println!(
            "{}",
            fl!(
                "cli-cached-update",
                image = get("image"),
                version = get("version"),
                digest = get("digest")
            )
        );
    }
    let active = c.manager.active_transaction().await?;
    if active.as_str() != "/" {
        println!("{}", fl!("cli-running", path = active.as_str()));
    }
    Ok(())
}

/// How the signature policy let a deployment's image in, when Berth recorded it.
/// The last drift check, as `berth verify` left it.
fn drift_line(v: &Value) -> Option<String> {
    let when = v["checkedAt"].as_u64().map(|t| {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(t);
        chrono::DateTime::<chrono::Local>::from(t)
            .format("%Y-%m-%d %H:%M")
            .to_string()
    })?;
    Some(if v["clean"] == true {
        fl!("cli-status-drift-clean", when = when)
    } else {
        let n = |k: &str| v[k].as_u64().unwrap_or(0);
        let summary = format!(
            "{} changed, {} added, {} removed, {} corrupt objects",
            n("changed"),
            n("added"),
            n("removed"),
            n("corruptObjects")
        );
        fl!("cli-status-drifted", summary = summary, when = when)
    })
}

/// A `berth verify` report, one line per difference.
pub fn print_drift(r: &Value) {
    let root = r["root"].as_str().unwrap_or("/usr");
    let entries = r["entriesChecked"].as_u64().unwrap_or(0);
    let list = |k: &str| r[k].as_array().cloned().unwrap_or_default();
    let (changed, added, removed, corrupt) = (
        list("changed"),
        list("added"),
        list("removed"),
        list("corruptObjects"),
    );
    if changed.is_empty() && added.is_empty() && removed.is_empty() && corrupt.is_empty() {
        println!(
            "{}",
            fl!("cli-verify-clean", root = root, entries = entries)
        );
        return;
    }
    println!(
        "{}",
        fl!("cli-verify-drifted", root = root, entries = entries)
    );
    for c in &changed {
        let what: Vec<&str> = c["what"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let path = c["path"].as_str().unwrap_or("?");
        println!(
            "  {}",
            fl!("cli-verify-changed", path = path, what = what.join(", "))
        );
    }
    for a in &added {
        println!(
            "  {}",
            fl!("cli-verify-added", path = a.as_str().unwrap_or("?"))
        );
    }
    for p in &removed {
        println!(
            "  {}",
            fl!("cli-verify-removed", path = p.as_str().unwrap_or("?"))
        );
    }
    for o in &corrupt {
        let (object, detail) = (
            o["object"].as_str().unwrap_or("?"),
            o["detail"].as_str().unwrap_or("?"),
        );
        println!(
            "  {}",
            fl!("cli-verify-corrupt", object = object, detail = detail)
        );
    }
}

fn signature_line(v: &Value) -> Option<String> {
    let list = |key: &str| {
        v[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    let scope = v["scope"].as_str()?.to_string();
    let (keys, requirements) = (list("keys"), list("requirements"));
    Some(if keys.is_empty() {
        fl!(
            "cli-status-unverified",
            requirements = requirements,
            scope = scope
        )
    } else {
        fl!(
            "cli-status-signed",
            keys = keys,
            requirements = requirements,
            scope = scope
        )
    })
}

/// Whether this boot is a trial, and the last update that failed one.
fn print_assessment(a: &Value) {
    match a["state"].as_str() {
        Some("on-trial") => println!(
            "{}",
            fl!(
                "cli-boot-on-trial",
                tries = a["triesLeft"].as_u64().unwrap_or(0)
            )
        ),
        Some("fell-back") => println!("{}", fl!("cli-boot-fell-back")),
        _ => {}
    }
    let failed = &a["lastFailure"];
    if failed.is_object() {
        let s = |k: &str| failed[k].as_str().unwrap_or("?").to_string();
        let version = failed["version"]
            .as_str()
            .or(failed["digest"].as_str())
            .unwrap_or("?");
        println!(
            "{}",
            fl!(
                "cli-last-failure",
                version = version,
                reason = s("reason"),
                detail = s("detail")
            )
        );
    }
}

pub fn print_check(r: &Value) {
    if r["updateAvailable"] == true {
        println!(
            "{}",
            fl!(
                "cli-update-available",
                image = r["image"].as_str().unwrap_or("?"),
                version = r["version"].as_str().unwrap_or("?"),
                digest = r["manifestDigest"].as_str().unwrap_or("?"),
                size = berth_l10n::size(r["downloadBytes"].as_u64().unwrap_or(0))
            )
        );
    } else {
        println!(
            "{}",
            fl!("cli-no-update", image = r["image"].as_str().unwrap_or("?"))
        );
    }
}

/// Prints berthd's state changes and every transaction's progress until Ctrl-C.
pub async fn monitor(c: &Client, json: bool) -> Result<(), CallError> {
    // Registered, berthd stays up while we watch.
    c.manager.register_client(Default::default()).await?;
    // Any sender on the path, checked per message against berthd's current owner (a
    // restarted berthd has a new unique name; nobody else may speak for it).
    let rule = zbus::MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .path_namespace("/org/berth/Berth1")?
        .build();
    let bus = zbus::fdo::DBusProxy::new(&c.conn).await?;
    let name: zbus::names::BusName = berth_dbus::BUS_NAME.try_into().expect("valid name");
    let mut owner = bus.get_name_owner(name.clone()).await.ok();
    let mut stream = zbus::MessageStream::for_match_rule(rule, &c.conn, Some(256)).await?;
    if !json {
        println!("{}", fl!("cli-state", state = c.manager.state().await?));
    }
    loop {
        let msg = tokio::select! {
            m = stream.next() => m,
            _ = tokio::signal::ctrl_c() => break,
        };
        let Some(Ok(msg)) = msg else { break };
        let hdr = msg.header();
        let sender = hdr.sender().map(|s| s.to_string());
        if sender.is_none() || sender != owner.as_ref().map(|o| o.to_string()) {
            owner = bus.get_name_owner(name.clone()).await.ok();
            if sender != owner.as_ref().map(|o| o.to_string()) {
                continue;
            }
        }
        let path = hdr.path().map(|p| p.to_string()).unwrap_or_default();
        match hdr.member().map(|m| m.as_str()) {
            Some("Progress") => {
                let Ok((phase, fraction, done, total, message)) =
                    msg.body().deserialize::<(String, f64, u64, u64, String)>()
                else {
                    continue;
                };
                if json {
                    let v = serde_json::json!({"event": "progress", "transaction": path,
                        "phase": phase, "fraction": fraction, "bytesDone": done,
                        "bytesTotal": total, "message": message});
                    println!("{v}");
                } else {
                    println!(
                        "{path}: {:>3.0}% {} {done}/{total} {message}",
                        fraction * 100.0,
                        berth_l10n::phase(&phase)
                    );
                }
            }
            Some("Finished") => {
                let Ok((success, name, message)) =
                    msg.body().deserialize::<(bool, String, String)>()
                else {
                    continue;
                };
                if json {
                    let v = serde_json::json!({"event": "finished", "transaction": path,
                        "success": success, "errorName": name, "errorMessage": message});
                    println!("{v}");
                } else if success {
                    println!("{}", fl!("cli-monitor-finished", path = path));
                } else {
                    println!(
                        "{}",
                        fl!(
                            "cli-monitor-failed",
                            path = path,
                            message = format!("{message} ({name})")
                        )
                    );
                }
            }
            Some("PropertiesChanged") if path == berth_dbus::MANAGER_PATH => {
                let Ok((_iface, changed, _inv)) = msg.body().deserialize::<(
                    String,
                    std::collections::HashMap<String, zbus::zvariant::OwnedValue>,
                    Vec<String>,
                )>() else {
                    continue;
                };
                if let Some(state) = changed
                    .get("State")
                    .and_then(|v| String::try_from(v.try_clone().ok()?).ok())
                {
                    if json {
                        println!("{}", serde_json::json!({"event": "state", "state": state}));
                    } else {
                        println!("{}", fl!("cli-state", state = state));
                    }
                }
            }
            _ => {}
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }
    let _ = c.manager.unregister_client().await;
    Ok(())
}
