//! zbus runs on tokio here; GTK owns the main thread. Every D-Bus future runs on a small
//! tokio runtime, and the window awaits its result from GLib's main loop.

use std::future::Future;
use std::sync::LazyLock;

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("berth-dbus")
        .enable_all()
        .build()
        .expect("a tokio runtime for D-Bus")
});

/// Runs `fut` on the D-Bus runtime; the returned future resolves on whatever awaits it
/// (the GTK main loop).
pub fn spawn<F>(fut: F) -> impl Future<Output = F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handle = RUNTIME.spawn(fut);
    async move { handle.await.expect("D-Bus tasks do not panic") }
}

/// Runs `fut` on the D-Bus runtime without waiting for it.
pub fn detach<F>(fut: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    RUNTIME.spawn(fut);
}
