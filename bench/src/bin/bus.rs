//! Berth's D-Bus benchmark: berthd (release) on a private bus with real polkitd, serving a
//! sysroot with the demo OS. Prints, side by side with a baseline:
//! - status latency (p50/p99) with 50 concurrent clients: GetStatus, a property read, and a
//!   Peer.Ping to berthd (the bus round trip every call pays, the floor);
//! - idle RSS of berthd, next to polkitd and dbus-daemon on the same bus;
//! - activation-to-ready: the first call that makes the bus start berthd, against the same
//!   call to a berthd already running.
//!
//! Run it through bench/run-bus.sh (private mount namespace and tmpfs; needs root).

use anyhow::{bail, Context, Result};
use berth_dbus::ManagerProxy;
use berth_testkit::bus::{Berthd, Bus, BusOptions};
use berth_testkit::registry::Registry;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const CLIENTS: usize = 50;
const CALLS_PER_CLIENT: usize = 40;
const ACTIVATIONS: usize = 5;

fn main() -> Result<()> {
    let mut it = std::env::args().skip(1);
    let (mut work, mut berthd) = (None, None);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--work" => work = it.next().map(PathBuf::from),
            "--berthd" => berthd = it.next().map(PathBuf::from),
            _ => bail!("usage: berth-bench-bus --work DIR --berthd PATH"),
        }
    }
    let work = work.context("--work DIR")?;
    let berthd = std::fs::canonicalize(berthd.context("--berthd PATH")?)?;
    let (sysroot, config, _registry) = prepare(&work, &berthd)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;

    println!(
        "berthd on a private bus with real polkitd; {CLIENTS} clients x {CALLS_PER_CLIENT} calls"
    );
    let bus = Bus::start(&work.join("bus"), &BusOptions::default())?;
    let daemon = Berthd::start(&berthd, &bus, &sysroot, &config, 0)?;
    std::thread::sleep(Duration::from_millis(500));
    let rss_at_start = rss_mb(daemon.pid())?;
    rt.block_on(async {
        let conns = connect_all(&bus.address, CLIENTS).await?;
        // Warm up: caches, page faults.
        latencies(&conns, 5, Call::Status).await?;
        println!("\nstatus latency      p50        p99        calls/s");
        for call in [Call::Ping, Call::Property, Call::Status] {
            let t0 = Instant::now();
            let mut l = latencies(&conns, CALLS_PER_CLIENT, call).await?;
            let rate = l.len() as f64 / t0.elapsed().as_secs_f64();
            l.sort();
            println!(
                "  {:<16} {:>7.2} ms {:>7.2} ms {:>9.0}",
                call.name(),
                ms(percentile(&l, 50.0)),
                ms(percentile(&l, 99.0)),
                rate
            );
        }
        anyhow::Ok(())
    })?;
    std::thread::sleep(Duration::from_secs(1));
    println!("\nidle RSS            total   anonymous");
    let row = |name: &str, (all, anon): (f64, f64), note: &str| {
        println!("  {name:<16} {all:>5.1} MB  {anon:>5.1} MB   {note}")
    };
    row("berthd", rss_at_start, "just started");
    row(
        "berthd",
        rss_mb(daemon.pid())?,
        "idle after the latency runs",
    );
    for (name, pid) in bus.pids() {
        row(
            name,
            rss_mb(pid)?,
            "baseline: a system service on the same bus",
        );
    }
    drop(daemon);
    drop(bus);

    // Activation: the bus starts berthd on the first call; berthd exits after 1 s idle.
    let mut cmd = vec![berthd.display().to_string()];
    cmd.extend(
        Berthd::args("", &sysroot, &config, 1)
            .into_iter()
            .filter(|a| !a.starts_with("--bus-address")),
    );
    let bus = Bus::start(
        &work.join("bus-activation"),
        &BusOptions {
            activate: Some(cmd),
            ..Default::default()
        },
    )?;
    let (cold, warm) = rt.block_on(async {
        let conn = zbus::connection::Builder::address(bus.address.as_str())?
            .build()
            .await?;
        let (mut cold, mut warm) = (Vec::new(), Vec::new());
        for _ in 0..ACTIVATIONS {
            while bus.has_name("org.berth.Berth1") {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let m = ManagerProxy::new(&conn).await?;
            let t0 = Instant::now();
            m.get_status().await?;
            cold.push(t0.elapsed());
            let t0 = Instant::now();
            m.get_status().await?;
            warm.push(t0.elapsed());
        }
        anyhow::Ok((cold, warm))
    })?;
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    println!("\nactivation to ready (median of {ACTIVATIONS})");
    println!(
        "  first call, berthd started by the bus  {:>7.1} ms",
        ms(median(cold))
    );
    println!(
        "  same call, berthd already running      {:>7.1} ms   (baseline)",
        ms(median(warm))
    );
    Ok(())
}

#[derive(Clone, Copy)]
enum Call {
    Ping,
    Property,
    Status,
}

impl Call {
    fn name(self) -> &'static str {
        match self {
            Call::Ping => "Peer.Ping",
            Call::Property => "Get(State)",
            Call::Status => "GetStatus",
        }
    }
}

async fn connect_all(address: &str, n: usize) -> Result<Vec<zbus::Connection>> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(zbus::connection::Builder::address(address)?.build().await?);
    }
    Ok(out)
}

/// Every client calls `calls` times in a row, all clients at once; returns each latency.
async fn latencies(conns: &[zbus::Connection], calls: usize, call: Call) -> Result<Vec<Duration>> {
    let mut tasks = Vec::new();
    for conn in conns {
        let conn = conn.clone();
        tasks.push(tokio::spawn(async move {
            let m = ManagerProxy::builder(&conn)
                .cache_properties(zbus::proxy::CacheProperties::No)
                .build()
                .await?;
            let peer = zbus::fdo::PeerProxy::builder(&conn)
                .destination("org.berth.Berth1")?
                .path("/org/berth/Berth1")?
                .build()
                .await?;
            let mut out = Vec::with_capacity(calls);
            for _ in 0..calls {
                let t0 = Instant::now();
                match call {
                    Call::Ping => peer.ping().await?,
                    Call::Property => drop(m.state().await?),
                    Call::Status => drop(m.get_status().await?),
                }
                out.push(t0.elapsed());
            }
            anyhow::Ok(out)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    Ok(all)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Resident memory: (all, anonymous only: what the process itself allocated).
fn rss_mb(pid: u32) -> Result<(f64, f64)> {
    Ok((status_mb(pid, "VmRSS:")?, status_mb(pid, "RssAnon:")?))
}

fn status_mb(pid: u32, field: &str) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .context("no such field in /proc/PID/status")?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kb / 1024.0)
}

/// A registry with the demo OS and a sysroot with version 1 installed.
fn prepare(work: &Path, berthd: &Path) -> Result<(PathBuf, PathBuf, Registry)> {
    let registry = Registry::start(&work.join("registry"))?;
    let layout = work.join("layout");
    let v1 = berth_testkit::demo::version(1);
    berth_testkit::image::write_layout(&layout, &[("1", &v1)])?;
    registry.push(&layout, "1", "demo/os")?;
    let config = work.join("berth.toml");
    std::fs::write(
        &config,
        format!(
            "insecure-registries = [\"{}\"]\n{}",
            registry.addr,
            berth_testkit::accept_anything_policy(work)?
        ),
    )?;
    let sysroot = work.join("sysroot");
    let st = Command::new(berthd)
        .arg("--config")
        .arg(&config)
        .arg("--sysroot")
        .arg(&sysroot)
        .args([
            "install",
            &format!("{}/demo/os:1", registry.addr),
            "--stateroot",
            "demo",
        ])
        .status()?;
    if !st.success() {
        bail!("berthd install failed");
    }
    Ok((sysroot, config, registry))
}
