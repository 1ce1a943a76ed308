//! berth-bus: a private system bus with real polkitd, for the demo and the benchmark.
//! `berth-bus DIR [--socket PATH] [--activate CMD...]` prints the bus address on stdout once
//! polkitd is up, then keeps both running until stdin closes or SIGTERM/SIGINT arrives.

use berth_testkit::bus::{Bus, BusOptions};
use std::io::Read;
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().ok_or_else(|| {
        anyhow::anyhow!("usage: berth-bus DIR [--socket PATH] [--activate CMD...]")
    })?);
    let mut opts = BusOptions::default();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--socket" => opts.socket = args.next().map(PathBuf::from),
            "--activate" => opts.activate = Some(args.by_ref().collect()),
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    let bus = Bus::start(&dir, &opts)?;
    println!("{}", bus.address);
    // Stop (dropping the bus stops dbus-daemon and polkitd) on EOF or a signal.
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let on_eof = tx.clone();
    std::thread::spawn(move || {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        let _ = on_eof.send(());
    });
    on_signal(tx);
    let _ = rx.recv();
    drop(bus);
    Ok(())
}

/// Turns SIGTERM and SIGINT into a message on `tx`.
fn on_signal(tx: std::sync::mpsc::Sender<()>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    std::thread::spawn(move || {
        rt.block_on(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = term.recv() => {},
                _ = tokio::signal::ctrl_c() => {},
            }
        });
        let _ = tx.send(());
    });
}
