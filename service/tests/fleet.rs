//! Reboot coordination across a fleet: a real 3-member etcd cluster on loopback and five
//! machines, each its own berthd, private bus, registry and tmpfs sysroot (with a GRUB
//! environment block, so each new deployment boots on trial), all on the apply policy with
//! at most one reboot at a time. The test plays each machine's health verdict through the
//! engine, as berth-boot-good.service gives it, and reads etcd back with etcdctl.

mod common;

use berth_dbus::{ManagerProxy, Options};
use berth_testkit::etcd::Cluster;
use common::service::Service;
use std::collections::BTreeSet;
use std::future::Future;
use std::time::{Duration, Instant};
use zbus::zvariant::{OwnedValue, Value};

const MACHINES: usize = 5;
const GROUP: &str = "test";
const HOLDERS: &str = "berth/reboot-lock/test/holders/";
/// Seconds a slot outlives a silent holder.
const LEASE: u64 = 6;

struct Machine {
    id: String,
    svc: Service,
    m: ManagerProxy<'static>,
}

fn text(o: &Options, key: &str) -> String {
    o.get(key)
        .and_then(|v| String::try_from(v.try_clone().ok()?).ok())
        .unwrap_or_default()
}

async fn booted_version(m: &ManagerProxy<'_>) -> String {
    text(&m.booted().await.unwrap(), "version")
}

/// Waits (up to 3 minutes) until `cond` holds.
async fn wait_for<F, Fut>(what: &str, context: impl Fn() -> String, cond: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(180);
    while !cond().await {
        assert!(
            Instant::now() < deadline,
            "waited 3 minutes for {what}\n{}",
            context()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The machines holding a slot, as etcd says (at `rev`, or now).
fn holders(cluster: &Cluster, rev: Option<i64>) -> Vec<String> {
    let rev_arg = rev.map(|r| format!("--rev={r}"));
    let mut args = vec!["get", "--prefix", HOLDERS, "--keys-only"];
    if let Some(r) = &rev_arg {
        args.push(r);
    }
    let v = cluster.etcdctl_json(&args).unwrap();
    v["kvs"]
        .as_array()
        .map(|kvs| {
            kvs.iter()
                .map(|kv| {
                    use base64::Engine as _;
                    let key = base64::engine::general_purpose::STANDARD
                        .decode(kv["key"].as_str().unwrap())
                        .unwrap();
                    String::from_utf8(key)
                        .unwrap()
                        .trim_start_matches(HOLDERS)
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default()
}

fn settings(cluster: &Cluster, id: &str) -> String {
    let endpoints: Vec<String> = cluster
        .endpoints()
        .iter()
        .map(|e| format!("{e:?}"))
        .collect();
    format!(
        "scheduled-drift-check = false\n\n\
         [automatic]\npolicy = \"apply\"\nfirst-check-delay = 0\ncheck-interval = 3600\n\
         jitter = 0\nretry-interval = 1\nmax-backoff = 4\nmin-free-space = 0\n\n\
         [reboot-coordination]\nendpoints = [{}]\ngroup = \"{GROUP}\"\nmax-concurrent = 1\n\
         lease-seconds = {LEASE}\nid = \"{id}\"\n",
        endpoints.join(", ")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_reboots_one_machine_at_a_time_through_etcd() {
    let dir = common::test_root().join(format!("fleet-{}", std::process::id()));
    let mut cluster = Cluster::start(&dir.join("etcd"), 3).unwrap();
    let mut machines = Vec::new();
    for i in 1..=MACHINES {
        let id = format!("machine-{i}");
        let svc = Service::start(&id).await;
        common::install_grub(&svc.env.sysroot());
        svc.env.publish("2", "berth/demo:1");
        let dropins = std::path::PathBuf::from(format!("{}.d", svc.config.display()));
        std::fs::create_dir_all(&dropins).unwrap();
        std::fs::write(dropins.join("50-fleet.toml"), settings(&cluster, &id)).unwrap();
        let m = svc.manager().await;
        machines.push(Machine { id, svc, m });
    }
    // All at once, as a fleet gets a new image: each re-reads its files when told.
    for mc in &machines {
        let o: Options = [(
            "policy".to_string(),
            OwnedValue::try_from(Value::from("apply")).unwrap(),
        )]
        .into_iter()
        .collect();
        mc.m.configure(o).await.unwrap();
    }
    let logs = |ms: &[Machine]| {
        ms.iter()
            .map(|mc| format!("=== {} ===\n{}", mc.id, mc.svc.log()))
            .collect::<Vec<_>>()
            .join("\n")
    };

    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut victim: Option<usize> = None;
    let mut round = 0;
    while done.len() < MACHINES {
        // The next machine to reboot: one not done yet that now runs version 2.
        let mut holder = None;
        let deadline = Instant::now() + Duration::from_secs(180);
        while holder.is_none() {
            for (i, mc) in machines.iter().enumerate() {
                if done.contains(&mc.id) || Some(i) == victim || mc.svc.berthd.is_none() {
                    continue;
                }
                if booted_version(&mc.m).await == "2" {
                    holder = Some(i);
                }
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: no machine rebooted; etcd holds {:?}\n{}",
                holders(&cluster, None),
                logs(&machines)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let h = holder.unwrap();
        let id = machines[h].id.clone();
        // It holds the one slot, and nobody else rebooted.
        assert_eq!(
            holders(&cluster, None),
            vec![id.clone()],
            "round {round}\n{}",
            logs(&machines)
        );
        let status = machines[h].m.automatic_status().await.unwrap();
        assert_eq!(text(&status, "reboot-slot"), GROUP, "{status:?}");
        let rebooted: Vec<&str> = {
            let mut v = Vec::new();
            for mc in &machines {
                let running = !done.contains(&mc.id) && mc.id != id && mc.svc.berthd.is_some();
                if running && booted_version(&mc.m).await == "2" {
                    v.push(mc.id.as_str());
                }
            }
            v
        };
        assert!(rebooted.is_empty(), "{rebooted:?} rebooted beside {id}");
        if round == 0 {
            // The others wait for the slot, and say so.
            let waiting = |ms: &[Machine]| {
                let ms: Vec<ManagerProxy<'static>> = ms
                    .iter()
                    .filter(|mc| mc.id != id)
                    .map(|mc| mc.m.clone())
                    .collect();
                async move {
                    for m in ms {
                        if m.blocked().await.unwrap() == "reboot-slots" {
                            let why = text(&m.automatic_status().await.unwrap(), "blocked-reason");
                            return why.contains("machine-");
                        }
                    }
                    false
                }
            };
            wait_for(
                "a machine waiting for the slot",
                || logs(&machines),
                || waiting(&machines),
            )
            .await;
        }
        if round == 1 {
            // This machine dies holding the slot: its lease frees the slot for the next.
            machines[h].svc.berthd.take().unwrap().kill();
            victim = Some(h);
            let died = Instant::now();
            wait_for(
                "the dead machine's lease to run out",
                || logs(&machines),
                || async { !holders(&cluster, None).contains(&id) },
            )
            .await;
            eprintln!(
                "the dead holder's slot was freed {:.1} s after it died (lease {LEASE} s)",
                died.elapsed().as_secs_f64()
            );
        } else {
            // Its health checks passed: the slot goes back, and it is done.
            assert!(machines[h].svc.engine().mark_boot_good().unwrap());
            let m = machines[h].m.clone();
            wait_for(
                "the slot given back",
                || logs(&machines),
                || async {
                    !holders(&cluster, None).contains(&id)
                        && text(&m.automatic_status().await.unwrap(), "reboot-slot").is_empty()
                },
            )
            .await;
            done.insert(id.clone());
        }
        if round == 0 {
            // A member is lost (the first every machine asks): the rollout goes on.
            cluster.kill(0);
        }
        if round == 2 {
            // The dead machine comes back: its trial passes, its old slot is long gone.
            let v = victim.take().unwrap();
            machines[v].svc.start_berthd();
            assert!(machines[v].svc.engine().mark_boot_good().unwrap());
            machines[v].m = machines[v].svc.manager().await;
            let m = machines[v].m.clone();
            wait_for(
                "the returning machine to settle",
                || logs(&machines),
                || async {
                    booted_version(&m).await == "2"
                        && text(&m.automatic_status().await.unwrap(), "reboot-slot").is_empty()
                },
            )
            .await;
            assert!(!holders(&cluster, None).contains(&machines[v].id));
            done.insert(machines[v].id.clone());
        }
        round += 1;
    }

    // Every machine ends on the new version.
    for mc in &machines {
        assert_eq!(booted_version(&mc.m).await, "2", "{}", mc.id);
    }
    // Never two holders at once, at any revision etcd kept; and every machine held it.
    let head = cluster.etcdctl_json(&["get", "none"]).unwrap()["header"]["revision"]
        .as_i64()
        .unwrap();
    let mut ever = BTreeSet::new();
    for rev in 1..=head {
        let at = holders(&cluster, Some(rev));
        assert!(
            at.len() <= 1,
            "revision {rev}: {at:?} held the slot at once"
        );
        ever.extend(at);
    }
    let all: BTreeSet<String> = machines.iter().map(|mc| mc.id.clone()).collect();
    assert_eq!(ever, all, "every machine held the slot once");
}

/// Runs etcdctl and insists it worked.
fn etcdctl(cluster: &Cluster, args: &[&str]) {
    let out = cluster.etcdctl(args).unwrap();
    assert!(
        out.status.success(),
        "etcdctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The semaphore through TLS with client certificates and etcd's own users, as a fleet's
/// cluster would run; and the errors a machine reports when it cannot take part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_slot_is_taken_over_tls_with_etcd_users_and_failures_are_named() {
    use berth_engine::config::Coordination;
    use berth_engine::rebootlock::{Acquired, RebootLock};
    use berth_testkit::etcd::Tls;

    let dir = common::test_root().join(format!("fleet-tls-{}", std::process::id()));
    let tls = Tls::make(&dir.join("pki"), "berth").unwrap();
    let mut cluster = Cluster::start_with(&dir.join("etcd"), 1, Some(tls.clone())).unwrap();
    // Authentication on: root, and a user "berth" allowed berth/ alone.
    etcdctl(&cluster, &["user", "add", "root:root-secret"]);
    etcdctl(&cluster, &["user", "add", "berth:berth-secret"]);
    etcdctl(&cluster, &["role", "add", "berth"]);
    etcdctl(
        &cluster,
        &[
            "role",
            "grant-permission",
            "berth",
            "--prefix=true",
            "readwrite",
            "berth/",
        ],
    );
    etcdctl(&cluster, &["user", "grant-role", "berth", "berth"]);
    etcdctl(&cluster, &["auth", "enable"]);
    cluster.user = Some("root:root-secret".into());
    let password = dir.join("password");
    std::fs::write(&password, "berth-secret\n").unwrap();

    let settings = |id: &str| Coordination {
        endpoints: cluster.endpoints(),
        group: "tls".into(),
        max_concurrent: 1,
        lease_seconds: 30,
        id: Some(id.into()),
        ca_file: Some(tls.ca.clone()),
        cert_file: Some(dir.join("pki/client.pem")),
        key_file: Some(dir.join("pki/client.key")),
        username: Some("berth".into()),
        password_file: Some(password.clone()),
    };
    let a = RebootLock::new(&settings("a"), "unused").unwrap();
    let b = RebootLock::new(&settings("b"), "unused").unwrap();
    let Acquired::Slot { lease } = a.acquire("sha256:aa").await.unwrap() else {
        panic!("the free slot was not taken");
    };
    assert_eq!(
        b.acquire("sha256:bb").await.unwrap(),
        Acquired::Full {
            holders: vec!["a".into()]
        }
    );
    // Taken again by the same machine (a restarted berthd): still its slot.
    let Acquired::Slot { lease: again } = a.acquire("sha256:aa").await.unwrap() else {
        panic!("a machine's own slot was refused to it");
    };
    assert!(a.renew(again).await.unwrap());
    assert_eq!(a.holders().await.unwrap(), ["a"]);
    let held = cluster
        .etcdctl_json(&["get", "--prefix", "berth/reboot-lock/tls/holders/"])
        .unwrap();
    assert_eq!(held["count"].as_i64(), Some(1), "{held}");
    a.release(again).await.unwrap();
    let _ = a.release(lease).await;
    assert!(!a.renew(again).await.unwrap(), "a released lease is gone");
    assert!(matches!(
        b.acquire("sha256:bb").await.unwrap(),
        Acquired::Slot { .. }
    ));

    // What a machine that cannot take part is told.
    let fails = |c: Coordination| async move {
        let lock = RebootLock::new(&c, "unused").unwrap();
        let e = lock.acquire("sha256:cc").await.unwrap_err().to_string();
        eprintln!("refused: {e}");
        e
    };
    std::fs::write(dir.join("wrong"), "guess\n").unwrap();
    let e = fails(Coordination {
        password_file: Some(dir.join("wrong")),
        ..settings("c")
    })
    .await;
    assert!(e.contains("refused user berth"), "{e}");
    let e = fails(Coordination {
        ca_file: None,
        ..settings("c")
    })
    .await;
    assert!(
        e.contains("no etcd member answered") && e.contains("certificate"),
        "{e}"
    );
    let e = fails(Coordination {
        cert_file: None,
        key_file: None,
        ..settings("c")
    })
    .await;
    assert!(e.contains("no etcd member answered"), "{e}");
    let dead = format!(
        "https://127.0.0.1:{}",
        berth_testkit::registry::free_port().unwrap()
    );
    let e = fails(Coordination {
        endpoints: vec![dead.clone()],
        ..settings("c")
    })
    .await;
    assert!(e.contains(&dead), "{e}");
    cluster.kill(0);
}
