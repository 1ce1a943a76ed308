//! berthd on a private bus with real polkitd, serving a tmpfs sysroot with demo v1 installed,
//! a real registry holding v1..v3, and a throttled proxy in front of it for long transfers.

use super::Env;
use berth_dbus::{ManagerProxy, TransactionProxy};
use berth_engine::Engine;
use berth_testkit::bus::{Berthd, Bus, BusOptions};
use berth_testkit::image::{self, Entry, Layer};
use berth_testkit::proxy::{Fault, Proxy};
use futures_util::StreamExt;
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

/// Blob bytes a second through the slow proxy: the big image takes ~10 s to download.
pub const SLOW_RATE: usize = 2_500_000;

pub struct Service {
    pub env: Env,
    pub bus: Bus,
    pub berthd: Option<Berthd>,
    pub config: PathBuf,
    pub slow: Proxy,
    pub conn: zbus::Connection,
}

#[derive(Debug, Clone)]
pub struct Finished {
    pub success: bool,
    pub error_name: String,
    pub error_message: String,
    pub result: serde_json::Value,
}

pub fn berthd_bin() -> PathBuf {
    match option_env!("CARGO_BIN_EXE_berthd") {
        Some(p) => PathBuf::from(p),
        // Another crate's test (the GTK app's): berthd is in target/<profile>/, next to the
        // deps/ directory holding this test binary.
        None => std::env::current_exe()
            .expect("the test binary's path")
            .parent()
            .and_then(|deps| deps.parent())
            .expect("target/<profile>/deps")
            .join("berthd"),
    }
}

/// The CLI, built by the same `cargo test --workspace` run next to berthd.
pub fn berth_bin() -> PathBuf {
    berthd_bin().with_file_name("berth")
}

impl Service {
    pub async fn start(name: &str) -> Service {
        Self::start_with_idle(name, 0).await
    }

    pub async fn start_with_idle(name: &str, idle_timeout: u64) -> Service {
        Self::start_installed(name, idle_timeout, false, None).await
    }

    /// berthd serving a system installed from demo:1 through the slow proxy, so every
    /// update of it downloads at `SLOW_RATE`.
    pub async fn start_following_slow(name: &str) -> Service {
        Self::start_installed(name, 0, true, None).await
    }

    /// Like [`start_following_slow`](Self::start_following_slow), with the bus at the
    /// system bus's default path (a private /run/dbus in the test namespace), for clients
    /// that cannot be told another address (sudo wipes the environment).
    pub async fn start_following_slow_on_default_bus(name: &str) -> Service {
        let socket = PathBuf::from("/run/dbus/system_bus_socket");
        Self::start_installed(name, 0, true, Some(socket)).await
    }

    async fn start_installed(
        name: &str,
        idle_timeout: u64,
        through_slow: bool,
        socket: Option<PathBuf>,
    ) -> Service {
        let mut env = Env::new(name);
        let slow = Proxy::start(&env.registry.addr, Fault::Throttle(SLOW_RATE)).unwrap();
        env.config.insecure_registries.push(slow.addr.clone());
        let image = if through_slow {
            berth_engine::ImageRef::parse(&format!("{}/berth/demo:1", slow.addr)).unwrap()
        } else {
            env.image("1")
        };
        env.install_at(&env.sysroot(), &image).await.unwrap();
        let config = env.dir.join("berth.toml");
        std::fs::write(
            &config,
            // berthd's scheduler stays out of the way unless a test sets it up.
            format!(
                "insecure-registries = [\"{}\", \"{}\"]\n\n[automatic]\nfirst-check-delay = 86400\n",
                env.registry.addr, slow.addr
            ),
        )
        .unwrap();
        let opts = BusOptions {
            socket,
            ..Default::default()
        };
        let bus = Bus::start(&env.dir.join("bus"), &opts).unwrap();
        let berthd =
            Berthd::start(&berthd_bin(), &bus, &env.sysroot(), &config, idle_timeout).unwrap();
        let conn = zbus::connection::Builder::address(bus.address.as_str())
            .unwrap()
            .build()
            .await
            .unwrap();
        Service {
            env,
            bus,
            berthd: Some(berthd),
            config,
            slow,
            conn,
        }
    }

    /// A new connection to the test bus (a second client).
    pub async fn connect(&self) -> zbus::Connection {
        zbus::connection::Builder::address(self.bus.address.as_str())
            .unwrap()
            .build()
            .await
            .unwrap()
    }

    pub async fn manager(&self) -> ManagerProxy<'static> {
        ManagerProxy::builder(&self.conn)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
            .unwrap()
    }

    pub async fn transaction(&self, path: &str) -> TransactionProxy<'static> {
        TransactionProxy::builder(&self.conn)
            .path(path.to_string())
            .unwrap()
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .await
            .unwrap()
    }

    /// Waits (up to 3 minutes) for a transaction to finish.
    pub async fn finish(&self, path: &str) -> Finished {
        let t = self.transaction(path).await;
        let mut finished = t.receive_finished().await.unwrap();
        if !t.is_finished().await.unwrap() {
            tokio::time::timeout(Duration::from_secs(180), finished.next())
                .await
                .unwrap_or_else(|_| panic!("{path} did not finish; log: {}", self.log()))
                .expect("Finished signal");
        }
        Finished {
            success: t.success().await.unwrap(),
            error_name: t.error_name().await.unwrap(),
            error_message: t.error_message().await.unwrap(),
            result: serde_json::from_str(&t.result().await.unwrap()).unwrap(),
        }
    }

    pub fn engine(&self) -> Engine {
        Engine::open(&self.env.sysroot(), self.env.config.clone()).unwrap()
    }

    pub fn log(&self) -> String {
        self.berthd
            .as_ref()
            .map(|b| b.log_text())
            .unwrap_or_default()
    }

    /// Stops berthd with SIGKILL (a crash) and starts a new one on the same bus.
    pub fn kill_and_restart_berthd(&mut self) {
        if let Some(mut b) = self.berthd.take() {
            b.kill();
        }
        self.start_berthd();
    }

    pub fn start_berthd(&mut self) {
        let b = Berthd::start(
            &berthd_bin(),
            &self.bus,
            &self.env.sysroot(),
            &self.config,
            0,
        )
        .unwrap();
        self.berthd = Some(b);
    }

    /// Pushes "big": v2 plus a 24 MiB incompressible layer; returns its reference through
    /// the slow proxy.
    pub fn push_big(&self) -> String {
        self.push_noise("big", 9)
    }

    /// Pushes `tag`: v2 plus a 24 MiB incompressible layer made from `seed` (another seed,
    /// another layer to download); returns its reference through the slow proxy.
    pub fn push_noise(&self, tag: &str, seed: u64) -> String {
        let mut big = berth_testkit::demo::version(2);
        big.layers.push(Layer::new(vec![
            Entry::Dir("usr".into()),
            Entry::Dir("usr/share".into()),
            Entry::File(
                "usr/share/big.bin".into(),
                image::noise(seed, 24 << 20),
                0o644,
            ),
        ]));
        image::write_layout(&self.env.layout, &[(tag, &big)]).unwrap();
        self.env
            .registry
            .push(&self.env.layout, tag, "berth/demo")
            .unwrap();
        format!("{}/berth/demo:{tag}", self.slow.addr)
    }

    /// The deployments as "stateroot checksum.serial booted" lines.
    pub fn deployments(&self) -> Vec<String> {
        self.engine()
            .status()
            .unwrap()
            .status
            .berth
            .deployments
            .iter()
            .map(|d| {
                format!(
                    "{} {}.{} booted={}",
                    d.stateroot, d.checksum, d.deploy_serial, d.booted
                )
            })
            .collect()
    }
}

/// The `berth` CLI as `user` (root when None) against this berthd, stdin closed.
pub fn berth(svc: &Service, user: Option<&str>, args: &[&str]) -> Output {
    let bin = berth_bin();
    let mut cmd = match user {
        Some(u) => berth_testkit::bus::as_user(u, bin.to_str().unwrap()),
        None => std::process::Command::new(&bin),
    };
    cmd.args(args)
        .env("DBUS_SYSTEM_BUS_ADDRESS", &svc.bus.address)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

/// The D-Bus error name of a failed call.
pub fn error_name(e: &zbus::Error) -> String {
    match e {
        zbus::Error::MethodError(name, _, _) => name.to_string(),
        other => format!("not a method error: {other}"),
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `berth-call` as `user` (root when None): one Manager call, waiting for its transaction;
/// prints `OK [PATH [OUTCOME]]` or `ERR <D-Bus error name> <message>`.
pub fn berth_call(
    svc: &Service,
    user: Option<&str>,
    interactive: bool,
    method: &str,
    arg: &str,
) -> String {
    let bin = berthd_bin().with_file_name("berth-call");
    let bin = bin.to_str().unwrap();
    let mut cmd = match user {
        Some(u) => berth_testkit::bus::as_user(u, bin),
        None => std::process::Command::new(bin),
    };
    if interactive {
        cmd.arg("--interactive");
    }
    let out = cmd
        .args(["--wait", method, arg])
        .env("DBUS_SYSTEM_BUS_ADDRESS", &svc.bus.address)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Waits (up to a minute) until a transaction has downloaded its first bytes.
pub async fn wait_for_bytes(t: &TransactionProxy<'_>) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while t.bytes_done().await.unwrap() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no bytes downloaded in 60 s"
        );
        assert!(
            !t.is_finished().await.unwrap(),
            "{:?}",
            t.error_message().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Service {
    /// Sets the automatic-update policy to apply and runs the timer's update, as root.
    pub async fn automatic_apply(&self) -> Finished {
        let m = self.manager().await;
        m.configure(berth_dbus::options([("automatic-updates", "apply".into())]))
            .await
            .unwrap();
        let path = m
            .update(berth_dbus::options([("automatic", true.into())]))
            .await
            .unwrap();
        self.finish(path.as_str()).await
    }
}
