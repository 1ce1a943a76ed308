//! The `berth` CLI and plain `busctl` scripting against berthd on a private bus with real
//! polkitd; interactive password authentication through a real pkttyagent.

mod common;

use berth_dbus::options;
use berth_testkit::bus::{as_user, users, Berthd, Bus, BusOptions};
use common::service::{berth, berth_bin, berthd_bin, stderr, stdout, Service};
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_status_check_update_as_users() {
    let svc = Service::start("cli-users").await;
    // Anyone may read the status.
    let out = berth(&svc, Some(users::PLAIN), &["status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("booted") && text.contains("version 1"),
        "{text}"
    );
    assert!(text.contains("state: idle"), "{text}");
    let out = berth(&svc, Some(users::PLAIN), &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"]["booted"]["image"]["version"], "1");

    // A plain user may not update; a script learns why from the exit code and message.
    let out = berth(&svc, Some(users::PLAIN), &["--no-ask-password", "update"]);
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("InteractiveAuthorizationRequired"),
        "{}",
        stderr(&out)
    );

    // The granted user checks: up to date (exit 0), then v2 appears under the same tag.
    let out = berth(&svc, Some(users::GRANTED), &["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("No update"), "{}", stdout(&out));
    retag(&svc, "2", "1");
    let out = berth(&svc, Some(users::GRANTED), &["check", "--json"]);
    assert_eq!(out.status.code(), Some(100), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["updateAvailable"], true);
    assert_eq!(v["version"], "2");
    let m = svc.manager().await;
    assert_eq!(m.state().await.unwrap(), "update-available");

    // And updates, with progress on stderr (not a terminal: one line per step).
    let out = berth(&svc, Some(users::GRANTED), &["update"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Version 2 is staged"),
        "{}",
        stdout(&out)
    );
    let progress = stderr(&out);
    assert!(progress.contains("staging"), "{progress}");
    assert!(progress.contains("100%"), "{progress}");
    assert_eq!(m.state().await.unwrap(), "needs-reboot");
    // A second update finds nothing new.
    let out = berth(&svc, Some(users::GRANTED), &["update", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["result"], "no-update", "{v}");
    // A plain user cannot switch, even interactively, with no agent to ask.
    let v3 = svc.env.image("3").to_string();
    let out = berth(&svc, Some(users::PLAIN), &["switch", &v3]);
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
    assert!(stderr(&out).contains("NotAuthorized"), "{}", stderr(&out));
}

/// Points registry tag `to` at the image tagged `from`.
fn retag(svc: &Service, from: &str, to: &str) {
    let reg = &svc.env.registry.addr;
    let st = Command::new("skopeo")
        .args([
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &format!("docker://{reg}/berth/demo:{from}"),
            &format!("docker://{reg}/berth/demo:{to}"),
        ])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_monitor_sees_progress_and_cancel_stops_a_switch() {
    let svc = Service::start("cli-monitor").await;
    let big = svc.push_big();
    let monitor = as_user(users::PLAIN, berth_bin().to_str().unwrap())
        .args(["monitor", "--json"])
        .env("DBUS_SYSTEM_BUS_ADDRESS", &svc.bus.address)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let m = svc.manager().await;
    let path = m.switch(&big, options([])).await.unwrap();
    let t = svc.transaction(path.as_str()).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while t.bytes_done().await.unwrap() == 0 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let out = berth(&svc, None, &["cancel"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("Cancelled"), "{}", stdout(&out));
    let out = berth(&svc, None, &["cancel"]);
    assert_eq!(out.status.code(), Some(7), "nothing left to cancel");
    tokio::time::sleep(Duration::from_millis(300)).await;
    Command::new("kill")
        .args(["-INT", &monitor.id().to_string()])
        .status()
        .unwrap();
    let out = monitor.wait_with_output().unwrap();
    let events: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let of = |kind: &'static str| events.iter().filter(move |e| e["event"] == kind);
    assert!(
        of("state").any(|e| e["state"] == "downloading"),
        "{events:?}"
    );
    assert!(
        of("progress").any(|e| e["bytesDone"].as_u64() > Some(0)),
        "{events:?}"
    );
    let finished: Vec<_> = of("finished").collect();
    assert_eq!(finished.len(), 1, "{events:?}");
    assert_eq!(finished[0]["errorName"], "org.berth.Berth1.Error.Cancelled");
    assert_eq!(finished[0]["transaction"], path.as_str());
}

/// The whole flow from a shell script's point of view: busctl only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busctl_scripts_the_whole_flow() {
    let svc = Service::start("busctl-flow").await;
    let busctl = |args: &[&str]| -> serde_json::Value {
        let out = svc
            .bus
            .busctl()
            .arg("--json=short")
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "busctl {args:?}: {}", stderr(&out));
        if out.stdout.is_empty() {
            return serde_json::Value::Null; // a method without a reply body
        }
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let manager = [
        "org.berth.Berth1",
        "/org/berth/Berth1",
        "org.berth.Berth1.Manager",
    ];
    let call = |method: &str, sig_args: &[&str]| {
        let mut a = vec!["call"];
        a.extend(manager);
        a.push(method);
        a.extend(sig_args);
        busctl(&a)
    };
    let v2 = svc.env.image("2").to_string();
    let reply = call("Switch", &["sa{sv}", &v2, "0"]);
    assert_eq!(reply["type"], "o");
    let path = reply["data"][0].as_str().unwrap().to_string();
    assert!(path.starts_with("/org/berth/Berth1/Transaction/"), "{path}");
    let prop = |name: &str| {
        busctl(&[
            "get-property",
            "org.berth.Berth1",
            &path,
            "org.berth.Berth1.Transaction",
            name,
        ])["data"]
            .clone()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while prop("IsFinished") != true {
        assert!(Instant::now() < deadline, "not finished");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(prop("Success"), true, "{}", prop("ErrorMessage"));
    assert_eq!(prop("Kind"), "switch");
    let state = busctl(&["get-property", manager[0], manager[1], manager[2], "State"]);
    assert_eq!(state["data"], "needs-reboot");
    call("Reboot", &["a{sv}", "0"]);
    let status = call("GetStatus", &[]);
    let host: serde_json::Value =
        serde_json::from_str(status["data"][0].as_str().unwrap()).unwrap();
    assert_eq!(host["status"]["booted"]["image"]["version"], "2");
    // Options by name, typed: a download-only update of the now-booted :2 finds nothing.
    let reply = call("Update", &["a{sv}", "1", "download-only", "b", "true"]);
    assert_eq!(reply["type"], "o");
}

/// Interactive authentication as systemctl does it: the CLI starts pkttyagent on its
/// terminal, polkit asks for the administrator's password, PAM checks it. The setuid agent
/// helper only talks to the bus at the default path, so this bus listens on
/// /run/dbus/system_bus_socket, which is a private directory in the test namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_typed_into_pkttyagent_authorizes_a_switch() {
    let env = common::Env::new("cli-agent");
    env.install(&env.image("1")).await;
    let config = env.dir.join("berth.toml");
    std::fs::write(
        &config,
        format!("insecure-registries = [\"{}\"]\n", env.registry.addr),
    )
    .unwrap();
    let opts = BusOptions {
        socket: Some("/run/dbus/system_bus_socket".into()),
        ..Default::default()
    };
    let bus = Bus::start(&env.dir.join("bus"), &opts).unwrap();
    let _berthd = Berthd::start(&berthd_bin(), &bus, &env.sysroot(), &config, 0).unwrap();
    let v2 = env.image("2").to_string();
    let switch_on_a_terminal = |password: &str| -> (Option<i32>, String) {
        let cmd = format!("{} switch {v2}", berth_bin().display());
        let mut child = as_user(users::PLAIN, "script")
            .args(["-qec", &cmd, "/dev/null"])
            .env_remove("DBUS_SYSTEM_BUS_ADDRESS")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Type the password once the agent has asked for it.
        std::thread::sleep(Duration::from_secs(3));
        let mut stdin = child.stdin.take().unwrap();
        let _ = writeln!(stdin, "{password}");
        let out = child.wait_with_output().unwrap();
        drop(stdin);
        let text = format!("{}{}", stdout(&out), stderr(&out)).replace('\r', "");
        (out.status.code(), text)
    };
    let (code, text) = switch_on_a_terminal("wrong-password");
    assert!(text.contains("AUTHENTICATION FAILED"), "{text}");
    assert_eq!(code, Some(8), "{text}");
    let (code, text) = switch_on_a_terminal(users::ADMIN_PASSWORD);
    assert!(text.contains("AUTHENTICATION COMPLETE"), "{text}");
    // The prompt says what is being approved (polkit expands the action's $(image)).
    assert!(
        text.contains(&format!("to switch the operating system to {v2}")),
        "{text}"
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("Version 2 is staged"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_updates_follow_the_configured_policy() {
    let svc = Service::start("cli-automatic").await;
    let m = svc.manager().await;
    assert_eq!(m.automatic_updates().await.unwrap(), "off");
    let out = berth(&svc, None, &["update", "--automatic"]);
    assert_eq!(out.status.code(), Some(7), "off: {}", stderr(&out));
    // Configuring needs an administrator.
    let out = berth(
        &svc,
        Some(users::GRANTED),
        &[
            "--no-ask-password",
            "config",
            "--automatic-updates",
            "download",
        ],
    );
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
    let out = berth(&svc, None, &["config", "--automatic-updates", "download"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(m.automatic_updates().await.unwrap(), "download");
    // The setting lives in the administrator's drop-in, so it survives a restart.
    let dropin = format!("{}.d/90-configure.toml", svc.config.display());
    let stored = std::fs::read_to_string(dropin).unwrap();
    assert!(stored.contains("policy = \"download\""), "{stored}");
    // Any [automatic] setting, typed by its key; the JSON shows them in effect.
    let out = berth(
        &svc,
        None,
        &[
            "--json",
            "config",
            "--set",
            "reboot-windows=Mon-Fri 02:00-05:00;Sat 01:00-02:00",
            "--set",
            "reboot-with-sessions=yes",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["settings"]["reboot-windows"],
        serde_json::json!(["Mon-Fri 02:00-05:00", "Sat 01:00-02:00"]),
        "{v}"
    );
    assert_eq!(v["settings"]["reboot-with-sessions"], true, "{v}");
    assert_eq!(v["configError"], "", "{v}");
    let out = berth(&svc, None, &["config", "--set", "reboot-windows=whenever"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("reboot window \"whenever\""),
        "{}",
        stderr(&out)
    );
    retag(&svc, "2", "1");
    let out = berth(&svc, None, &["update", "--automatic", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["result"], "downloaded", "{v}");
    assert_eq!(m.state().await.unwrap(), "update-ready");
    assert!(m.staged().await.unwrap().is_empty(), "download only");
    let out = berth(&svc, None, &["config", "--automatic-updates", "apply"]);
    assert!(out.status.success());
    let out = berth(&svc, None, &["update", "--automatic", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["result"], "staged", "{v}");
    assert_eq!(m.state().await.unwrap(), "needs-reboot");
}

fn berth_in(svc: &Service, lang: &str, user: &str, args: &[&str]) -> Output {
    as_user(user, berth_bin().to_str().unwrap())
        .args(args)
        .env("DBUS_SYSTEM_BUS_ADDRESS", &svc.bus.address)
        .env("LANG", lang)
        .env_remove("LC_ALL")
        .env_remove("LC_MESSAGES")
        .env_remove("LANGUAGE")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_speaks_the_users_language_except_in_json() {
    let svc = Service::start("cli-l10n").await;
    let out = berth_in(&svc, "de_DE.UTF-8", users::PLAIN, &["status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("Zustand: idle"), "{}", stdout(&out));
    assert!(stdout(&out).contains("läuft"), "{}", stdout(&out));
    let out = berth_in(&svc, "fr_FR.UTF-8", users::PLAIN, &["status"]);
    assert!(stdout(&out).contains("état : idle"), "{}", stdout(&out));
    let out = berth_in(&svc, "C", users::PLAIN, &["status"]);
    assert!(stdout(&out).contains("state: idle"), "{}", stdout(&out));
    // JSON is for scripts: the same in every language.
    let json = |lang| stdout(&berth_in(&svc, lang, users::PLAIN, &["status", "--json"]));
    let (de, en) = (json("de_DE.UTF-8"), json("C"));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&de).unwrap(),
        serde_json::from_str::<serde_json::Value>(&en).unwrap()
    );
    // An error keeps berthd's name and message and explains them in the user's language.
    let out = berth_in(
        &svc,
        "de_DE.UTF-8",
        users::PLAIN,
        &["--no-ask-password", "update"],
    );
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("InteractiveAuthorizationRequired"), "{err}");
    assert!(err.contains("Sie dürfen das nicht tun"), "{err}");
}
