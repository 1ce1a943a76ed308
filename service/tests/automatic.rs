//! Automatic updates driven by berthd's own scheduler, on the private bus with the real
//! berthd, registry, polkitd and tmpfs sysroots; NetworkManager, UPower and logind are
//! stand-ins speaking their real interfaces. Intervals are shortened by configuration.

mod common;

use berth_dbus::{options, ManagerProxy, Options};
use berth_testkit::standins::StandIns;
use common::service::{Service, SLOW_RATE};
use futures_util::StreamExt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zbus::zvariant::{OwnedValue, Value};

/// Steps at once and retries within a second; no scheduled drift check unless asked.
const FAST: &str = "[automatic]\nfirst-check-delay = 0\ncheck-interval = 3600\njitter = 0\n\
                    retry-interval = 1\nmax-backoff = 4\nmin-free-space = 0\n";

fn dropin(svc: &Service, name: &str, text: &str) -> PathBuf {
    let dir = PathBuf::from(format!("{}.d", svc.config.display()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn fast(svc: &Service, drift_check: bool) {
    std::fs::write(
        &svc.config,
        format!(
            "{}\nscheduled-drift-check = {drift_check}\n",
            std::fs::read_to_string(&svc.config)
                .unwrap()
                .replace("[automatic]\nfirst-check-delay = 86400\n", "")
        ),
    )
    .unwrap();
    dropin(svc, "10-test.toml", FAST);
}

async fn configure(m: &ManagerProxy<'_>, pairs: Vec<(&str, Value<'_>)>) {
    let o: Options = pairs
        .into_iter()
        .map(|(k, v)| (k.to_string(), OwnedValue::try_from(v).unwrap()))
        .collect();
    m.configure(o).await.unwrap();
}

fn text(o: &Options, key: &str) -> String {
    o.get(key)
        .and_then(|v| String::try_from(v.try_clone().ok()?).ok())
        .unwrap_or_default()
}

fn number(o: &Options, key: &str) -> u64 {
    o.get(key)
        .and_then(|v| {
            u64::try_from(v)
                .ok()
                .or_else(|| u32::try_from(v).ok().map(u64::from))
        })
        .unwrap_or(0)
}

async fn outcome(m: &ManagerProxy<'_>) -> String {
    text(&m.automatic_status().await.unwrap(), "last-outcome")
}

async fn booted_version(m: &ManagerProxy<'_>) -> String {
    text(&m.booted().await.unwrap(), "version")
}

/// Waits (up to 2 minutes) until `cond` holds.
async fn wait_for<F, Fut>(svc: &Service, what: &str, cond: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(120);
    while !cond().await {
        assert!(
            Instant::now() < deadline,
            "waited 2 minutes for {what}; berthd's log:\n{}",
            svc.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The AutomaticUpdate signals, as they arrive.
#[derive(Clone, Default)]
struct Events(Arc<Mutex<Vec<(String, Options)>>>);

impl Events {
    async fn listen(m: &ManagerProxy<'static>) -> Events {
        let events = Events::default();
        let mut stream = m.receive_automatic_update().await.unwrap();
        let sink = events.clone();
        tokio::spawn(async move {
            while let Some(signal) = stream.next().await {
                let args = signal.args().unwrap();
                let details: Options = args
                    .details()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.try_clone().unwrap()))
                    .collect();
                sink.0
                    .lock()
                    .unwrap()
                    .push((args.event().to_string(), details));
            }
        });
        events
    }

    fn names(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(e, _)| e.clone())
            .collect()
    }

    fn all(&self, event: &str) -> Vec<Options> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(e, _)| e == event)
            .map(|(_, d)| {
                d.iter()
                    .map(|(k, v)| (k.clone(), v.try_clone().unwrap()))
                    .collect()
            })
            .collect()
    }
}

/// `systemctl reload berthd`, as systemd sends it.
fn hup(svc: &Service) {
    let pid = svc.berthd.as_ref().unwrap().pid().to_string();
    let st = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(st.success());
}

/// A daily reboot window `from`..`to` minutes from now, in local time as berthd reads it.
fn window(from: i64, to: i64) -> String {
    let now = chrono::Local::now();
    let at = |m: i64| {
        (now + chrono::Duration::minutes(m))
            .format("%H:%M")
            .to_string()
    };
    format!("{}-{}", at(from), at(to))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_policy_does_exactly_its_step_and_reboots_only_inside_a_window() {
    let svc = Service::start("auto-policies").await;
    fast(&svc, true);
    let m = svc.manager().await;
    let events = Events::listen(&m).await;
    svc.env.publish("2", "berth/demo:1");

    // check: it looks, and says so, and does nothing more.
    configure(&m, vec![("policy", Value::from("check"))]).await;
    wait_for(&svc, "the check", || async {
        outcome(&m).await == "version 2 is available"
    })
    .await;
    let status = m.automatic_status().await.unwrap();
    assert!(number(&status, "last-check") > 0, "{status:?}");
    assert_eq!(m.last_check().await.unwrap(), number(&status, "last-check"));
    assert!(number(&status, "next-run") >= number(&status, "last-check") + 3600);
    let cached = m.cached_update().await.unwrap();
    assert_eq!(
        cached.get("downloaded").map(|v| bool::try_from(v).unwrap()),
        Some(false)
    );
    assert!(m.staged().await.unwrap().is_empty());
    let found = events.all("found");
    assert_eq!(found.len(), 1, "{:?}", events.names());
    assert_eq!(text(&found[0], "version"), "2");

    // download: also downloads, stages nothing.
    configure(&m, vec![("policy", Value::from("download"))]).await;
    wait_for(&svc, "the download", || async {
        outcome(&m).await == "version 2 is downloaded"
    })
    .await;
    let cached = m.cached_update().await.unwrap();
    assert_eq!(
        cached.get("downloaded").map(|v| bool::try_from(v).unwrap()),
        Some(true)
    );
    assert!(m.staged().await.unwrap().is_empty());
    assert_eq!(events.all("downloaded").len(), 1, "{:?}", events.names());
    assert_eq!(events.all("found").len(), 1, "found once per image");

    // apply, with a window two hours away: staged, and held back until the window.
    configure(
        &m,
        vec![
            ("reboot-windows", Value::from(vec![window(120, 180)])),
            ("policy", Value::from("apply")),
        ],
    )
    .await;
    wait_for(&svc, "the reboot held back", || async {
        m.blocked().await.unwrap() == "outside-window"
    })
    .await;
    assert_eq!(text(&m.staged().await.unwrap(), "version"), "2");
    assert_eq!(
        booted_version(&m).await,
        "1",
        "no reboot outside the window"
    );
    let status = m.automatic_status().await.unwrap();
    assert!(
        text(&status, "blocked-reason").contains("outside the reboot windows"),
        "{status:?}"
    );
    // The retry is when the window opens, not before.
    assert!(number(&status, "next-run") > number(&status, "staged-at") + 3600);
    let blocked = events.all("blocked");
    assert_eq!(text(&blocked[0], "code"), "outside-window");
    assert_eq!(events.all("staged").len(), 1);

    // A window open now: the reboot comes by itself.
    configure(
        &m,
        vec![("reboot-windows", Value::from(vec![window(-60, 60)]))],
    )
    .await;
    wait_for(&svc, "the reboot", || async {
        booted_version(&m).await == "2"
    })
    .await;
    assert_eq!(m.blocked().await.unwrap(), "");
    assert!(m.staged().await.unwrap().is_empty());
    assert_eq!(events.all("rebooting").len(), 1, "{:?}", events.names());
    wait_for(&svc, "the outcome", || async {
        outcome(&m).await == "rebooted into version 2"
    })
    .await;
    // The scheduled drift check of the new deployment follows the step.
    wait_for(&svc, "the drift check", || async {
        text(&m.booted().await.unwrap(), "drift") == "clean"
    })
    .await;
    // Nothing failed on the way.
    assert!(
        events.all("failed").is_empty(),
        "{:?}",
        events.all("failed")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditions_hold_the_step_back_until_they_clear() {
    let svc = Service::start("auto-conditions").await;
    fast(&svc, false);
    let standins = StandIns::start(&svc.bus.address).await.unwrap();
    let m = svc.manager().await;
    let events = Events::listen(&m).await;
    svc.env.publish("2", "berth/demo:1");
    let blocked_by = |code: &'static str| {
        let m = m.clone();
        move || {
            let m = m.clone();
            async move { m.blocked().await.unwrap() == code }
        }
    };

    standins.set_metered(1);
    configure(&m, vec![("policy", Value::from("download"))]).await;
    wait_for(&svc, "metered", blocked_by("metered")).await;
    assert!(
        outcome(&m).await.contains("metered"),
        "{}",
        outcome(&m).await
    );
    // A guess counts as metered too; an explicit allowance lifts it.
    standins.set_metered(3);
    standins.set_battery(true, 80.0);
    configure(&m, vec![("on-metered", Value::from(true))]).await;
    wait_for(&svc, "on battery", blocked_by("on-battery")).await;
    standins.set_metered(2);
    configure(
        &m,
        vec![
            ("on-metered", Value::from(false)),
            ("on-battery", Value::from(true)),
            ("min-battery-percent", Value::from(90u32)),
        ],
    )
    .await;
    wait_for(&svc, "a low battery", blocked_by("battery-low")).await;
    assert!(
        text(&m.automatic_status().await.unwrap(), "blocked-reason").contains("80%"),
        "{:?}",
        m.automatic_status().await
    );
    standins.set_battery(false, 80.0);
    configure(&m, vec![("min-free-space", Value::from(1u64 << 60))]).await;
    wait_for(&svc, "low space", blocked_by("low-space")).await;
    let cached = m.cached_update().await.unwrap();
    assert_eq!(
        cached.get("downloaded").map(|v| bool::try_from(v).unwrap()),
        Some(false),
        "nothing is downloaded while held back"
    );
    configure(&m, vec![("min-free-space", Value::from(0u64))]).await;
    wait_for(&svc, "the download", || async {
        outcome(&m).await == "version 2 is downloaded"
    })
    .await;
    assert_eq!(m.blocked().await.unwrap(), "");
    let codes: Vec<String> = events
        .all("blocked")
        .iter()
        .map(|d| text(d, "code"))
        .collect();
    assert_eq!(codes, ["metered", "on-battery", "battery-low", "low-space"]);

    // Before the reboot: a block inhibitor, then a person logged in.
    standins.inhibit("backup", "the nightly backup");
    configure(&m, vec![("policy", Value::from("apply"))]).await;
    wait_for(&svc, "the inhibitor", blocked_by("inhibited")).await;
    assert_eq!(text(&m.staged().await.unwrap(), "version"), "2");
    assert!(
        text(&m.automatic_status().await.unwrap(), "blocked-reason")
            .contains("backup (the nightly backup)"),
        "{:?}",
        m.automatic_status().await
    );
    standins.release_inhibitors();
    standins.log_in(1000, "alice", "tty2").await.unwrap();
    wait_for(&svc, "the logged-in user", blocked_by("sessions")).await;
    assert!(
        text(&m.automatic_status().await.unwrap(), "blocked-reason")
            .contains("alice logged in on tty2"),
        "{:?}",
        m.automatic_status().await
    );
    assert_eq!(booted_version(&m).await, "1");
    // The policy may say so.
    configure(&m, vec![("reboot-with-sessions", Value::from(true))]).await;
    wait_for(&svc, "the reboot", || async {
        booted_version(&m).await == "2"
    })
    .await;
    assert_eq!(m.blocked().await.unwrap(), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phased_rollout_holds_a_wary_machine_back_but_not_a_person() {
    let svc = Service::start("auto-rollout").await;
    fast(&svc, false);
    let m = svc.manager().await;
    // The demo images were created 2026-01-01; a 400-day rollout lets a machine of
    // wariness 0.99 in after 396 days, one of 0.5 after 200.
    svc.env.publish("2", "berth/demo:1");
    configure(
        &m,
        vec![
            ("rollout-period", Value::from(400u64 * 86400)),
            ("wariness", Value::from(0.99)),
            ("policy", Value::from("download")),
        ],
    )
    .await;
    wait_for(&svc, "the rollout hold", || async {
        m.blocked().await.unwrap() == "rollout"
    })
    .await;
    let status = m.automatic_status().await.unwrap();
    assert!(
        text(&status, "blocked-reason")
            .contains("phased rollout: this machine takes the image from 2027-"),
        "{status:?}"
    );
    let wariness = status.get("wariness").map(|v| f64::try_from(v).unwrap());
    assert_eq!(wariness, Some(0.99), "{status:?}");
    let cached = m.cached_update().await.unwrap();
    assert_eq!(
        cached.get("downloaded").map(|v| bool::try_from(v).unwrap()),
        Some(false)
    );
    // A person's update ignores the rollout.
    let path = m
        .update(options([("download-only", true.into())]))
        .await
        .unwrap();
    let done = svc.finish(path.as_str()).await;
    assert!(done.success, "{done:?}");
    // A less wary machine takes it.
    configure(&m, vec![("wariness", Value::from(0.5))]).await;
    wait_for(&svc, "the download", || async {
        outcome(&m).await == "version 2 is downloaded"
    })
    .await;
    assert_eq!(m.blocked().await.unwrap(), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_survives_restarts_and_a_bad_file_keeps_the_last_good_settings() {
    let mut svc = Service::start("auto-restart").await;
    fast(&svc, false);
    let m = svc.manager().await;
    configure(&m, vec![("policy", Value::from("check"))]).await;
    wait_for(&svc, "the first check", || async {
        outcome(&m).await == "up to date"
    })
    .await;
    let before = m.automatic_status().await.unwrap();
    let (last, next) = (number(&before, "last-check"), number(&before, "next-run"));
    assert!(next >= last + 3600, "{before:?}");
    // Configure kept the policy in the administrator's drop-in.
    let kept =
        std::fs::read_to_string(format!("{}.d/90-configure.toml", svc.config.display())).unwrap();
    assert!(kept.contains("policy = \"check\""), "{kept}");

    svc.kill_and_restart_berthd();
    let m = svc.manager().await;
    wait_for(&svc, "the schedule after the restart", || async {
        number(&m.automatic_status().await.unwrap(), "next-run") != 0
    })
    .await;
    let after = m.automatic_status().await.unwrap();
    assert_eq!(number(&after, "next-run"), next, "{after:?}");
    assert_eq!(number(&after, "last-check"), last);
    assert_eq!(m.last_check().await.unwrap(), last);
    assert_eq!(text(&after, "last-outcome"), "up to date");
    assert_eq!(m.automatic_updates().await.unwrap(), "check");

    // A bad file: named with its line and key; the last good settings stay in force.
    let bad = dropin(
        &svc,
        "50-fleet.toml",
        "# from the fleet\n[automatic]\njitter = \"lots\"\n",
    );
    hup(&svc);
    wait_for(&svc, "the configuration error", || async {
        !m.config_error().await.unwrap().is_empty()
    })
    .await;
    let error = m.config_error().await.unwrap();
    assert!(
        error.contains("50-fleet.toml") && error.contains("line 3, key automatic.jitter"),
        "{error}"
    );
    let settings = m.automatic_settings().await.unwrap();
    assert_eq!(number(&settings, "jitter"), 0, "{settings:?}");
    assert_eq!(text(&settings, "policy"), "check");
    // Configure checks the whole configuration, so it names the bad file too.
    let refused = m
        .configure(options([("jitter", Value::from(5u32))]))
        .await
        .unwrap_err();
    assert!(
        common::service::error_name(&refused).ends_with("InvalidArgs")
            && refused.to_string().contains("50-fleet.toml"),
        "{refused}"
    );
    // A berthd started with the bad file runs on the last good settings and says why.
    svc.kill_and_restart_berthd();
    let m = svc.manager().await;
    wait_for(&svc, "the error after the restart", || async {
        m.config_error().await.unwrap().contains("50-fleet.toml")
    })
    .await;
    assert_eq!(m.automatic_updates().await.unwrap(), "check");
    assert_eq!(
        number(&m.automatic_status().await.unwrap(), "next-run"),
        next
    );
    // Fixed: the error is gone.
    std::fs::write(&bad, "[automatic]\njitter = 7\n").unwrap();
    hup(&svc);
    wait_for(&svc, "the fixed configuration", || async {
        m.config_error().await.unwrap().is_empty()
    })
    .await;
    assert_eq!(number(&m.automatic_settings().await.unwrap(), "jitter"), 7);
    // Bad values over the bus are refused by name and change nothing.
    for (key, value) in [
        ("policy", Value::from("sometimes")),
        ("wariness", Value::from(1.5)),
        ("reboot-windows", Value::from(vec!["whenever"])),
        ("check-interval", Value::from("daily")),
        ("insecure-registries", Value::from("evil.example")),
    ] {
        let e = m.configure(options([(key, value)])).await.unwrap_err();
        assert!(
            common::service::error_name(&e).ends_with("InvalidArgs") && e.to_string().contains(key),
            "{key}: {e}"
        );
    }
    assert_eq!(m.automatic_updates().await.unwrap(), "check");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_back_off_and_a_rolled_back_image_is_not_taken_again() {
    use berth_testkit::proxy::{Fault, Proxy};
    let mut svc = Service::start_following_slow("auto-failures").await;
    fast(&svc, false);
    let m = svc.manager().await;
    let events = Events::listen(&m).await;
    // The registry the system follows goes away: checks fail, backing off 1, 2, 4, 4 s.
    let followed = svc.slow.addr.clone();
    let upstream = svc.env.registry.addr.clone();
    drop(std::mem::replace(
        &mut svc.slow,
        Proxy::start(&upstream, Fault::Status(500)).unwrap(),
    ));
    configure(&m, vec![("policy", Value::from("apply"))]).await;
    wait_for(&svc, "four failed checks", || async {
        events.all("failed").len() >= 4
    })
    .await;
    let failed = events.all("failed");
    let backoff: Vec<u64> = failed
        .iter()
        .take(4)
        .map(|d| number(d, "backoff"))
        .collect();
    assert_eq!(backoff, [1, 2, 4, 4], "{failed:?}");
    let counts: Vec<u64> = failed
        .iter()
        .take(4)
        .map(|d| number(d, "failures"))
        .collect();
    assert_eq!(counts, [1, 2, 3, 4]);
    assert_eq!(text(&failed[0], "step"), "check");
    assert!(text(&failed[0], "error-name").starts_with("org.berth.Berth1.Error."));
    assert!(
        outcome(&m).await.starts_with("check failed: "),
        "{}",
        outcome(&m).await
    );
    assert_eq!(booted_version(&m).await, "1");

    // The registry is back, with v2: the next try takes it, and the failures are forgotten.
    svc.env.publish("2", "berth/demo:1");
    svc.slow = Proxy::start_at(&followed, &upstream, Fault::Throttle(SLOW_RATE)).unwrap();
    wait_for(&svc, "v2 booted", || async {
        booted_version(&m).await == "2"
    })
    .await;
    wait_for(&svc, "the outcome", || async {
        outcome(&m).await == "rebooted into version 2"
    })
    .await;
    assert_eq!(number(&m.automatic_status().await.unwrap(), "failures"), 0);

    // Rolled back by hand: the scheduler does not take v2 again, however often it looks.
    configure(&m, vec![("policy", Value::from("off"))]).await;
    wait_for(&svc, "the scheduler to rest", || async {
        m.active_transaction().await.unwrap().as_str() == "/"
    })
    .await;
    let path = m
        .rollback(options([("reboot", true.into())]))
        .await
        .unwrap();
    assert!(svc.finish(path.as_str()).await.success);
    assert_eq!(booted_version(&m).await, "1");
    dropin(&svc, "20-often.toml", "[automatic]\ncheck-interval = 1\n");
    configure(&m, vec![("policy", Value::from("apply"))]).await;
    wait_for(&svc, "v2 refused", || async {
        outcome(&m).await == "not taking version 2: it was rolled back on this machine"
    })
    .await;
    let checked = number(&m.automatic_status().await.unwrap(), "last-check");
    wait_for(&svc, "another check", || async {
        number(&m.automatic_status().await.unwrap(), "last-check") > checked
    })
    .await;
    assert_eq!(booted_version(&m).await, "1");
    assert!(m.staged().await.unwrap().is_empty());
    // A newer image is taken.
    svc.env.publish("3", "berth/demo:1");
    wait_for(&svc, "v3 booted", || async {
        booted_version(&m).await == "3"
    })
    .await;
}
