//! berth-call: one Manager call as the current user, for the authorization tests.
//! `berth-call [--interactive] [--wait] METHOD [ARG]` prints `OK [PATH [OUTCOME]]` or
//! `ERR <D-Bus error name> <message>`, and exits 0 either way (1 for a usage error).
//! Two client-lifetime probes: `RegisterMany N` registers N connections at once (a line each)
//! and `RegisterAndLeave N` N times sends RegisterClient without waiting and leaves the bus.

use berth_dbus::{options, ManagerProxy, TransactionProxy};
use futures_util::StreamExt;
use zbus::proxy::MethodFlags;
use zbus::zvariant::{OwnedObjectPath, Value};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let interactive = take_flag(&mut args, "--interactive");
    let wait = take_flag(&mut args, "--wait");
    let (Some(method), arg) = (args.first().cloned(), args.get(1).cloned()) else {
        eprintln!("usage: berth-call [--interactive] [--wait] METHOD [ARG]");
        std::process::exit(1);
    };
    if let Some(n) = arg.as_deref().and_then(|a| a.parse::<usize>().ok()) {
        match method.as_str() {
            "RegisterMany" => return register_many(n).await,
            "RegisterAndLeave" => return register_and_leave(n).await,
            _ => {}
        }
    }
    match call(&method, arg.as_deref(), interactive, wait).await {
        Ok(out) => println!("OK {out}"),
        Err(zbus::Error::MethodError(name, msg, _)) => {
            println!("ERR {} {}", name.as_str(), msg.unwrap_or_default())
        }
        Err(e) => println!("ERR other {e}"),
    }
}

fn take_flag(args: &mut Vec<String>, flag: &str) -> bool {
    let had = args.iter().any(|a| a == flag);
    args.retain(|a| a != flag);
    had
}

async fn call(
    method: &str,
    arg: Option<&str>,
    interactive: bool,
    wait: bool,
) -> zbus::Result<String> {
    let conn = zbus::Connection::system().await?;
    let m = ManagerProxy::new(&conn).await?;
    let flags = if interactive {
        MethodFlags::AllowInteractiveAuth.into()
    } else {
        Default::default()
    };
    let p = m.inner();
    let arg = arg.unwrap_or_default();
    let path: Option<OwnedObjectPath> = match method {
        "GetStatus" => {
            let s: Option<String> = p.call_with_flags(method, flags, &()).await?;
            return Ok(format!("{} bytes of status", s.unwrap_or_default().len()));
        }
        "Check" | "Update" | "Rollback" | "FactoryReset" | "Cleanup" | "Verify" | "Unlock" => {
            p.call_with_flags(method, flags, &(options([]),)).await?
        }
        "UpdateFromDownloaded" => {
            let o = options([("from-downloaded", Value::from(true))]);
            p.call_with_flags("Update", flags, &(o,)).await?
        }
        "Switch" => {
            p.call_with_flags(method, flags, &(arg, options([])))
                .await?
        }
        "SwitchUnverified" => {
            let o = options([("allow-unverified", Value::from(true))]);
            p.call_with_flags("Switch", flags, &(arg, o)).await?
        }
        "Pin" | "Unpin" => {
            let index: u32 = arg.parse().unwrap_or(0);
            p.call_with_flags::<_, _, ()>(method, flags, &(index,))
                .await?;
            None
        }
        "Reboot" => {
            p.call_with_flags::<_, _, ()>(method, flags, &(options([]),))
                .await?;
            None
        }
        "Configure" => {
            let o = options([("automatic-updates", Value::from(arg))]);
            p.call_with_flags::<_, _, ()>(method, flags, &(o,)).await?;
            None
        }
        "MarkBoot" => {
            p.call_with_flags::<_, _, ()>(method, flags, &(arg, options([])))
                .await?;
            None
        }
        other => return Err(zbus::Error::Failure(format!("unknown method {other}"))),
    };
    let Some(path) = path else {
        return Ok(String::new());
    };
    if !wait {
        return Ok(path.to_string());
    }
    let t = TransactionProxy::builder(&conn)
        .path(path.clone())?
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await?;
    let mut finished = t.receive_finished().await?;
    if !t.is_finished().await? {
        finished.next().await;
    }
    let outcome = if t.success().await? {
        "success".to_string()
    } else {
        t.error_name().await?
    };
    Ok(format!("{path} {outcome}"))
}

/// N connections, each registered as a client, all open until every answer is in.
async fn register_many(n: usize) {
    let mut conns = Vec::new();
    for _ in 0..n {
        let conn = zbus::Connection::system().await.expect("bus");
        let m = ManagerProxy::new(&conn).await.expect("proxy");
        match m.register_client(options([])).await {
            Ok(()) => println!("OK"),
            Err(zbus::Error::MethodError(name, msg, _)) => {
                println!("ERR {} {}", name.as_str(), msg.unwrap_or_default())
            }
            Err(e) => println!("ERR other {e}"),
        }
        conns.push(conn);
    }
}

/// N clients that register without waiting for the answer and leave the bus at once.
async fn register_and_leave(n: usize) {
    for _ in 0..n {
        let conn = zbus::Connection::system().await.expect("bus");
        let m = ManagerProxy::new(&conn).await.expect("proxy");
        m.inner()
            .call_noreply("RegisterClient", &(options([]),))
            .await
            .expect("send");
        drop(m);
        conn.close().await.expect("close");
    }
    println!("OK");
}
