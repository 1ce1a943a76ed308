//! berthd's D-Bus API on a private bus with real polkitd, a real registry and a tmpfs sysroot:
//! the flow with live progress, two watchers, Busy and joining, cancel, a killed daemon,
//! bad arguments, concurrent status calls, idle exit, activation and the interface contract.

mod common;

use berth_dbus::{options, state, ManagerProxy};
use common::service::{error_name, wait_for_bytes, Service};
use futures_util::StreamExt;
use std::time::{Duration, Instant};
use zbus::zvariant::{OwnedValue, Value};

fn text(d: &std::collections::HashMap<String, OwnedValue>, key: &str) -> String {
    d.get(key)
        .and_then(|v| String::try_from(v.try_clone().unwrap()).ok())
        .unwrap_or_default()
}

/// One Progress signal as a watcher saw it: phase, fraction, bytes done, arrival time.
type Seen = (String, f64, u64, Instant);

/// Collects every Progress signal seen on one connection until Finished.
async fn watch_progress(conn: zbus::Connection) -> tokio::task::JoinHandle<Vec<Seen>> {
    let rule = zbus::MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .interface(berth_dbus::TRANSACTION_INTERFACE)
        .unwrap()
        .build();
    let mut stream = zbus::MessageStream::for_match_rule(rule, &conn, None)
        .await
        .unwrap();
    tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(Ok(msg)) = stream.next().await {
            match msg.header().member().map(|m| m.to_string()).as_deref() {
                Some("Progress") => {
                    let (phase, fraction, done, _total, _msg): (String, f64, u64, u64, String) =
                        msg.body().deserialize().unwrap();
                    seen.push((phase, fraction, done, Instant::now()));
                }
                Some("Finished") => break,
                _ => {}
            }
        }
        seen
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_reboot_rollback_with_progress_seen_by_two_watchers() {
    let svc = Service::start("bus-flow").await;
    let m = svc.manager().await;
    assert_eq!(m.state().await.unwrap(), state::IDLE);
    assert_eq!(text(&m.booted().await.unwrap(), "version"), "1");
    assert!(m.staged().await.unwrap().is_empty());
    assert_eq!(m.last_check().await.unwrap(), 0, "no check yet");

    // Check: finds v... nothing, v1 is the newest tag the booted image follows.
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let check = svc
        .finish(m.check(options([])).await.unwrap().as_str())
        .await;
    assert!(check.success, "{check:?}");
    assert_eq!(check.result["updateAvailable"], false);
    // When it ran, even with nothing found (clients say "Last checked ...").
    let checked = m.last_check().await.unwrap();
    assert!(checked >= before && checked <= before + 600, "{checked}");

    // Switch to :2 (a different tag) with two independent watchers.
    let (a, b) = (svc.connect().await, svc.connect().await);
    let (wa, wb) = (
        watch_progress(a.clone()).await,
        watch_progress(b.clone()).await,
    );
    let path = m
        .switch(&svc.env.image("2").to_string(), options([]))
        .await
        .unwrap();
    let done = svc.finish(path.as_str()).await;
    assert!(done.success, "{done:?}\n{}", svc.log());
    assert_eq!(done.result["result"], "staged");
    // What was seen, without the arrival times (which differ between watchers).
    let untimed = |v: Vec<Seen>| -> Vec<(String, f64, u64)> {
        v.into_iter().map(|(p, f, d, _)| (p, f, d)).collect()
    };
    let (seen_a, seen_b) = (untimed(wa.await.unwrap()), untimed(wb.await.unwrap()));
    assert!(!seen_a.is_empty(), "no progress seen");
    assert_eq!(seen_a, seen_b, "both watchers see the same progress");
    assert!(
        seen_a.windows(2).all(|w| w[0].1 <= w[1].1),
        "fraction never goes back: {seen_a:?}"
    );
    assert_eq!(seen_a.last().unwrap().0, "done");
    assert_eq!(seen_a.last().unwrap().1, 1.0);
    assert!(seen_a.iter().any(|s| s.0 == "staging"), "{seen_a:?}");

    assert_eq!(m.state().await.unwrap(), state::NEEDS_REBOOT);
    assert_eq!(text(&m.staged().await.unwrap(), "version"), "2");
    assert_eq!(m.active_transaction().await.unwrap().as_str(), "/");

    m.reboot(options([])).await.unwrap();
    assert_eq!(text(&m.booted().await.unwrap(), "version"), "2");
    assert_eq!(m.state().await.unwrap(), state::IDLE);
    let status: serde_json::Value = serde_json::from_str(&m.get_status().await.unwrap()).unwrap();
    assert_eq!(status["kind"], "BootcHost");
    assert_eq!(status["status"]["booted"]["image"]["version"], "2");

    let rb = svc
        .finish(m.rollback(options([])).await.unwrap().as_str())
        .await;
    assert!(rb.success, "{rb:?}");
    assert_eq!(m.state().await.unwrap(), state::NEEDS_REBOOT);
    m.reboot(options([])).await.unwrap();
    assert_eq!(text(&m.booted().await.unwrap(), "version"), "1");
    svc.env.fsck();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_request_is_busy_unless_it_is_the_same() {
    let svc = Service::start("bus-busy").await;
    let big = svc.push_big();
    let m = svc.manager().await;
    let path = m.switch(&big, options([])).await.unwrap();
    // The same request joins the running transaction.
    let again = m.switch(&big, options([])).await.unwrap();
    assert_eq!(path, again);
    assert_eq!(m.active_transaction().await.unwrap(), path);
    // Anything else that changes the system is refused, naming what runs.
    for e in [
        m.update(options([])).await.err(),
        m.rollback(options([])).await.err(),
        m.pin(0).await.err(),
        m.reboot(options([])).await.err(),
    ] {
        let e = e.expect("refused while a switch runs");
        assert_eq!(error_name(&e), "org.berth.Berth1.Error.Busy", "{e}");
        assert!(e.to_string().contains(path.as_str()), "{e}");
    }
    let t = svc.transaction(path.as_str()).await;
    assert_eq!(t.kind().await.unwrap(), "switch");
    assert!(t.initiator().await.unwrap().starts_with("uid 0"));
    t.cancel().await.unwrap();
    let done = svc.finish(path.as_str()).await;
    assert_eq!(
        done.error_name, "org.berth.Berth1.Error.Cancelled",
        "{done:?}"
    );
    assert_eq!(m.active_transaction().await.unwrap().as_str(), "/");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_mid_download_leaves_nothing_behind() {
    let svc = Service::start("bus-cancel").await;
    let big = svc.push_big();
    let before = svc.deployments();
    let m = svc.manager().await;
    let watcher = watch_progress(svc.connect().await).await;
    let path = m.switch(&big, options([])).await.unwrap();
    let t = svc.transaction(path.as_str()).await;
    wait_for_bytes(&t).await;
    // Let the slow download report for a while: progress comes at most ~10 times a second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    t.cancel().await.unwrap();
    let times = watcher.await.unwrap();
    let downloading: Vec<Instant> = times
        .iter()
        .filter(|(phase, ..)| phase == "downloading")
        .map(|(.., at)| *at)
        .collect();
    assert!(
        downloading.len() >= 5,
        "progress while downloading: {times:?}"
    );
    let span = downloading.last().unwrap().duration_since(downloading[0]);
    let rate = (downloading.len() - 1) as f64 / span.as_secs_f64();
    assert!(rate <= 11.0, "{rate:.1} Progress signals a second");
    let done = svc.finish(path.as_str()).await;
    assert!(!done.success);
    assert_eq!(done.error_name, "org.berth.Berth1.Error.Cancelled");
    assert!(t.bytes_done().await.unwrap() < t.bytes_total().await.unwrap());
    // A cancel is not an error state; nothing changed on disk.
    assert_eq!(m.state().await.unwrap(), state::IDLE);
    assert_eq!(svc.deployments(), before);
    svc.env.fsck();
    // And nothing half-done blocks the next attempt.
    let again = m
        .switch(&svc.env.image("2").to_string(), options([]))
        .await
        .unwrap();
    assert!(svc.finish(again.as_str()).await.success);
    assert_eq!(m.state().await.unwrap(), state::NEEDS_REBOOT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_daemon_restarts_into_a_consistent_state() {
    let mut svc = Service::start("bus-kill").await;
    let big = svc.push_big();
    let before = svc.deployments();
    let m = svc.manager().await;
    let path = m.switch(&big, options([])).await.unwrap();
    wait_for_bytes(&svc.transaction(path.as_str()).await).await;
    svc.kill_and_restart_berthd();
    let m = svc.manager().await;
    // The new berthd says what happened, and the system is as it was.
    assert_eq!(m.state().await.unwrap(), state::ERROR);
    assert_eq!(
        m.error_name().await.unwrap(),
        "org.berth.Berth1.Error.Interrupted"
    );
    assert!(m.error_message().await.unwrap().contains("switch"));
    assert_eq!(svc.deployments(), before);
    svc.env.fsck();
    let again = m.switch(&big, options([])).await.unwrap();
    let done = svc.finish(again.as_str()).await;
    assert!(done.success, "{done:?}\n{}", svc.log());
    assert_eq!(m.state().await.unwrap(), state::NEEDS_REBOOT);
    assert_eq!(m.error_name().await.unwrap(), "");
    svc.env.fsck();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_get_named_errors() {
    let svc = Service::start("bus-badargs").await;
    let m = svc.manager().await;
    let invalid_args = "org.freedesktop.DBus.Error.InvalidArgs";
    let cases: Vec<(&str, zbus::Result<zbus::zvariant::OwnedObjectPath>, &str)> = vec![
        (
            "bad reference",
            m.switch("Not A Valid/Ref!!", options([])).await,
            "org.berth.Berth1.Error.InvalidReference",
        ),
        (
            "unknown option",
            m.update(options([("donwload-only", Value::Bool(true))]))
                .await,
            invalid_args,
        ),
        (
            "wrong option type",
            m.update(options([("reboot", Value::from("yes"))])).await,
            invalid_args,
        ),
        (
            "conflicting options",
            m.update(options([
                ("download-only", Value::Bool(true)),
                ("reboot", Value::Bool(true)),
            ]))
            .await,
            invalid_args,
        ),
        (
            "option on a method without options",
            m.check(options([("force", Value::Bool(true))])).await,
            invalid_args,
        ),
    ];
    for (what, result, expected) in cases {
        let e = result.expect_err(what);
        assert_eq!(error_name(&e), expected, "{what}: {e}");
    }
    let e = m
        .configure(options([("automatic-updates", Value::from("sometimes"))]))
        .await
        .unwrap_err();
    assert_eq!(error_name(&e), invalid_args, "{e}");
    let e = m.pin(42).await.unwrap_err();
    assert_eq!(error_name(&e), "org.berth.Berth1.Error.WrongState", "{e}");
    // Wrong D-Bus types: Switch(i, a{sv}) instead of (s, a{sv}).
    let e = svc
        .conn
        .call_method(
            Some("org.berth.Berth1"),
            "/org/berth/Berth1",
            Some("org.berth.Berth1.Manager"),
            "Switch",
            &(5i32, options([])),
        )
        .await
        .unwrap_err();
    // zbus answers a signature mismatch itself, before berthd's code runs, under its own name.
    assert_eq!(error_name(&e), "org.freedesktop.zbus.Error", "{e}");
    assert!(e.to_string().contains("Signature mismatch"), "{e}");
    // Nothing started, nothing changed.
    assert_eq!(m.active_transaction().await.unwrap().as_str(), "/");
    assert_eq!(m.state().await.unwrap(), state::IDLE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_status_calls_are_all_answered() {
    let svc = Service::start("bus-concurrent").await;
    let mut conns = Vec::new();
    for _ in 0..50 {
        conns.push(svc.connect().await);
    }
    let mut calls = Vec::new();
    for i in 0..200 {
        let conn = conns[i % conns.len()].clone();
        calls.push(tokio::spawn(async move {
            let m = ManagerProxy::new(&conn).await?;
            m.get_status().await
        }));
    }
    let mut answered = 0;
    for c in calls {
        let json = c.await.unwrap().expect("status answered");
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["status"]["booted"]["image"]["version"], "1");
        answered += 1;
    }
    assert_eq!(answered, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_exit_waits_for_registered_clients() {
    let mut svc = Service::start_with_idle("bus-idle", 2).await;
    let watcher = svc.connect().await;
    ManagerProxy::new(&watcher)
        .await
        .unwrap()
        .register_client(options([]))
        .await
        .unwrap();
    let b = svc.berthd.as_mut().unwrap();
    assert!(
        !b.wait_exit(Duration::from_secs(4)),
        "exited while a client watches"
    );
    // The watcher leaves the bus without unregistering: berthd notices and exits.
    drop(watcher);
    assert!(
        b.wait_exit(Duration::from_secs(8)),
        "did not exit when idle"
    );
    assert!(b.log_text().contains("idle: exiting"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_service_matches_the_interface_xml() {
    let svc = Service::start("bus-introspect").await;
    let m = svc.manager().await;
    let path = m.check(options([])).await.unwrap();
    svc.finish(path.as_str()).await;
    let contract = zbus_xml::Node::from_reader(berth_dbus::INTROSPECTION_XML.as_bytes()).unwrap();
    for object in ["/org/berth/Berth1", path.as_str()] {
        let xml = zbus::fdo::IntrospectableProxy::builder(&svc.conn)
            .destination("org.berth.Berth1")
            .unwrap()
            .path(object)
            .unwrap()
            .build()
            .await
            .unwrap()
            .introspect()
            .await
            .unwrap();
        let live = zbus_xml::Node::from_reader(xml.as_bytes()).unwrap();
        let berth: Vec<_> = live
            .interfaces()
            .iter()
            .filter(|i| i.name().starts_with("org.berth."))
            .collect();
        assert_eq!(berth.len(), 1, "{object} serves one Berth interface");
        let live_iface = berth[0];
        let spec = contract
            .interfaces()
            .iter()
            .find(|i| i.name() == live_iface.name())
            .unwrap_or_else(|| panic!("{} is not in the XML", live_iface.name()));
        assert_eq!(shape(spec), shape(live_iface), "{}", live_iface.name());
    }
}

/// An interface's members with their signatures, sorted, for comparison.
fn shape(i: &zbus_xml::Interface<'_>) -> Vec<String> {
    let args = |a: &[zbus_xml::Arg]| {
        a.iter()
            .map(|a| format!("{:?}:{:?}", a.ty(), a.direction()))
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut out: Vec<String> = i
        .methods()
        .iter()
        .map(|m| format!("method {}({})", m.name(), args(m.args())))
        .chain(
            i.signals()
                .iter()
                .map(|s| format!("signal {}({})", s.name(), args(s.args()))),
        )
        .chain(
            i.properties()
                .iter()
                .map(|p| format!("property {} {:?} {:?}", p.name(), p.ty(), p.access())),
        )
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_goes_on_when_the_client_that_started_it_leaves() {
    let svc = Service::start("bus-leave").await;
    let client = svc.connect().await;
    let path = ManagerProxy::new(&client)
        .await
        .unwrap()
        .switch(&svc.env.image("2").to_string(), options([]))
        .await
        .unwrap();
    drop(client);
    let done = svc.finish(path.as_str()).await;
    assert!(done.success, "{done:?}");
    assert_eq!(
        text(&svc.manager().await.staged().await.unwrap(), "version"),
        "2"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bus_starts_berthd_on_the_first_call_and_again_after_idle_exit() {
    use berth_testkit::bus::{Berthd, Bus, BusOptions};
    let env = common::Env::new("bus-activation");
    env.install(&env.image("1")).await;
    let config = env.dir.join("berth.toml");
    std::fs::write(&config, "").unwrap();
    let mut cmd = vec![common::service::berthd_bin().display().to_string()];
    let args = Berthd::args("", &env.sysroot(), &config, 1);
    // The activated berthd finds the bus through DBUS_SYSTEM_BUS_ADDRESS, like on a host.
    cmd.extend(args.into_iter().filter(|a| !a.starts_with("--bus-address")));
    let opts = BusOptions {
        activate: Some(cmd),
        ..Default::default()
    };
    let bus = Bus::start(&env.dir.join("bus"), &opts).unwrap();
    assert!(!bus.has_name("org.berth.Berth1"));
    let conn = zbus::connection::Builder::address(bus.address.as_str())
        .unwrap()
        .build()
        .await
        .unwrap();
    for round in 0..2 {
        let m = ManagerProxy::new(&conn).await.unwrap();
        let status: serde_json::Value =
            serde_json::from_str(&m.get_status().await.unwrap()).unwrap();
        assert_eq!(
            status["status"]["booted"]["image"]["version"], "1",
            "round {round}"
        );
        assert!(bus.has_name("org.berth.Berth1"));
        // Idle for a second: berthd leaves the bus by itself.
        let deadline = Instant::now() + Duration::from_secs(15);
        while bus.has_name("org.berth.Berth1") {
            assert!(Instant::now() < deadline, "no idle exit (round {round})");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
