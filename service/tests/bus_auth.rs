//! The authorization matrix with real polkitd: every method as root, an unprivileged user, a
//! user granted routine updates by a polkit rule, with interactive authorization allowed and
//! not. Interactive password authentication through pkttyagent lives in bus_cli.rs.

mod common;

use berth_testkit::bus::users;
use common::service::{berth_call, Service};

const NOT_AUTHORIZED: &str = "org.berth.Berth1.Error.NotAuthorized";
const INTERACTIVE_REQUIRED: &str = "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired";

#[derive(Clone, Copy, PartialEq, Debug)]
enum Who {
    Root,
    Plain,
    Granted,
}

fn call(svc: &Service, who: Who, interactive: bool, method: &str, arg: &str) -> String {
    let user = match who {
        Who::Root => None,
        Who::Plain => Some(users::PLAIN),
        Who::Granted => Some(users::GRANTED),
    };
    berth_call(svc, user, interactive, method, arg)
}

/// The polkit outcome each caller should get for a method.
fn expected(who: Who, interactive: bool, method: &str) -> Option<&'static str> {
    let routine = ["Check", "Update", "Reboot"].contains(&method);
    match who {
        Who::Root => None,
        _ if method == "GetStatus" => None,
        Who::Granted if routine => None,
        // auth_admin: polkit would ask for a password. Without interaction allowed, the
        // caller is told so; with it allowed but no agent to ask, the call is denied.
        _ if interactive => Some(NOT_AUTHORIZED),
        _ => Some(INTERACTIVE_REQUIRED),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_for_every_kind_of_caller() {
    let svc = Service::start("bus-auth").await;
    let v2 = svc.env.image("2").to_string();
    let methods: [(&str, &str); 14] = [
        ("GetStatus", ""),
        ("Check", ""),
        ("Update", ""),
        ("Reboot", ""),
        ("Switch", &v2),
        ("Rollback", ""),
        ("Cleanup", ""),
        ("Verify", ""),
        ("Unlock", ""),
        ("Pin", "0"),
        ("Unpin", "0"),
        ("Configure", "check"),
        ("MarkBoot", "good"),
        ("FactoryReset", ""),
    ];
    let mut checked = 0;
    for who in [Who::Plain, Who::Granted, Who::Root] {
        for interactive in [false, true] {
            for (method, arg) in methods {
                let out = call(&svc, who, interactive, method, arg);
                let context = format!("{who:?} interactive={interactive} {method}: {out}");
                match expected(who, interactive, method) {
                    Some(error) => {
                        assert!(out.starts_with(&format!("ERR {error}")), "{context}");
                    }
                    None => {
                        // Authorized: the call ran (it may still fail for its own reasons,
                        // e.g. Rollback with nothing to roll back to), never an auth error.
                        assert!(
                            !out.contains(NOT_AUTHORIZED) && !out.contains(INTERACTIVE_REQUIRED),
                            "{context}"
                        );
                        assert!(!out.starts_with("ERR other"), "{context}");
                    }
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 84);
    // Refused callers never started anything.
    let log = svc.log();
    assert!(!log.contains("started by uid 64101"), "{log}");
    assert!(
        log.contains("started by uid 64102"),
        "granted user ran updates: {log}"
    );
    svc.env.fsck();
}
