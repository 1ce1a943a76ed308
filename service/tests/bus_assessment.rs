//! Boot assessment over the bus, with real polkitd: MarkBoot's verdicts and who may give them,
//! the BootAssessment property, and an update rolled back by the assessment reported as the
//! last error and by the UpdateRolledBack signal, once per boot.

mod common;

use berth_dbus::options;
use berth_engine::assessment::{self, BootOutcome};
use berth_engine::bootcount::{self, Trial};
use berth_engine::deployments;
use berth_testkit::bus::users;
use common::service::{berth_call, error_name, Service};
use futures_util::StreamExt;
use std::time::Duration;
use zbus::zvariant::OwnedValue;

fn text(d: &std::collections::HashMap<String, OwnedValue>, key: &str) -> String {
    d.get(key)
        .and_then(|v| String::try_from(v.try_clone().unwrap()).ok())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mark_boot_ends_a_trial_or_falls_back_and_the_rollback_is_announced_once() {
    let mut svc = Service::start("bus-assessment").await;
    let sysroot = svc.env.sysroot();
    // Without GRUB's environment block nothing counts boots.
    let m = svc.manager().await;
    assert_eq!(
        text(&m.boot_assessment().await.unwrap(), "state"),
        "unavailable"
    );
    let grubenv = common::install_grub(&sysroot);
    svc.kill_and_restart_berthd();
    let m = svc.manager().await;
    assert_eq!(
        text(&m.boot_assessment().await.unwrap(), "state"),
        "settled"
    );

    // v2 staged over the bus, finalized as at shutdown with two tries, booted by GRUB.
    let v2 = svc.env.image("2").to_string();
    let done = svc
        .finish(m.switch(&v2, options([])).await.unwrap().as_str())
        .await;
    assert!(done.success, "{done:?}");
    {
        let s = deployments::open(&sysroot).unwrap();
        let staged = deployments::staged(&s).expect("v2 staged");
        deployments::finalize(&s, &staged, 2).unwrap();
    }
    assert_eq!(common::grub_boot(&grubenv), 0);
    common::emulate_boot_of_version(&sysroot, "2");
    svc.kill_and_restart_berthd();
    let m = svc.manager().await;
    let a = m.boot_assessment().await.unwrap();
    assert_eq!(text(&a, "state"), "on-trial", "{a:?}");
    assert_eq!(
        u32::try_from(a["tries-left"].try_clone().unwrap()).unwrap(),
        1
    );

    // Only an administrator gives a verdict; a verdict is "good" or "bad".
    let out = berth_call(&svc, Some(users::GRANTED), false, "MarkBoot", "good");
    assert!(
        out.starts_with("ERR org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"),
        "{out}"
    );
    let e = m.mark_boot("maybe", options([])).await.unwrap_err();
    assert_eq!(error_name(&e), "org.freedesktop.DBus.Error.InvalidArgs");
    assert!(matches!(
        bootcount::trial(&grubenv).unwrap(),
        Trial::OnTrial { .. }
    ));

    m.mark_boot("good", options([])).await.unwrap();
    assert_eq!(bootcount::trial(&grubenv).unwrap(), Trial::Settled);
    assert_eq!(
        text(&m.boot_assessment().await.unwrap(), "state"),
        "settled"
    );

    // "bad": the next boot falls back; there berth-boot-assess makes it permanent.
    m.mark_boot("bad", options([])).await.unwrap();
    assert_eq!(
        common::grub_boot(&grubenv),
        1,
        "GRUB boots the previous entry"
    );
    common::emulate_boot_of_version(&sysroot, "1");
    let BootOutcome::RolledBack(failed) = svc.engine().assess_boot().unwrap() else {
        panic!("expected a rollback");
    };
    assert_eq!(failed.version.as_deref(), Some("2"));
    assert!(
        failed.detail.starts_with("marked bad by uid 0"),
        "{failed:?}"
    );

    // The first berthd of this boot says so: the signal, the last error, the property.
    let conn = svc.connect().await;
    let rule = zbus::MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .interface(berth_dbus::MANAGER_INTERFACE)
        .unwrap()
        .member("UpdateRolledBack")
        .unwrap()
        .build();
    let mut signals = zbus::MessageStream::for_match_rule(rule, &conn, None)
        .await
        .unwrap();
    svc.kill_and_restart_berthd();
    let msg = tokio::time::timeout(Duration::from_secs(60), signals.next())
        .await
        .expect("UpdateRolledBack within a minute")
        .unwrap()
        .unwrap();
    let (version, digest, reason, message): (String, String, String, String) =
        msg.body().deserialize().unwrap();
    assert_eq!((version.as_str(), reason.as_str()), ("2", "marked-bad"));
    assert_eq!(Some(digest.as_str()), failed.digest.as_deref());
    assert!(
        message.starts_with("Update to 2 was marked bad and was rolled back"),
        "{message}"
    );
    let m = svc.manager().await;
    assert_eq!(
        m.error_name().await.unwrap(),
        "org.berth.Berth1.Error.UpdateRolledBack"
    );
    assert_eq!(m.error_message().await.unwrap(), message);
    let a = m.boot_assessment().await.unwrap();
    assert_eq!(text(&a, "failed-version"), "2");
    assert_eq!(text(&a, "failed-reason"), "marked-bad");
    assert_eq!(text(&a, "failed-message"), message);

    // A check (a window opening, the timer) does not hide it.
    let check = svc
        .finish(m.check(options([])).await.unwrap().as_str())
        .await;
    assert!(check.success, "{check:?}");
    assert_eq!(
        m.error_name().await.unwrap(),
        "org.berth.Berth1.Error.UpdateRolledBack"
    );

    // Announced once: a later berthd of the same boot still reports it, without a signal.
    assert_eq!(assessment::take_unannounced(&sysroot).unwrap(), None);
    svc.kill_and_restart_berthd();
    let m = svc.manager().await;
    assert_eq!(
        m.error_name().await.unwrap(),
        "org.berth.Berth1.Error.UpdateRolledBack"
    );
    svc.env.fsck();
}
