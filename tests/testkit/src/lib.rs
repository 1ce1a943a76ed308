//! Test support for Berth, used by the integration tests, the demo and the benchmark.

pub mod bus;
pub mod demo;
pub mod etcd;
pub mod image;
pub mod proxy;
pub mod registry;
pub mod standins;

/// Writes a signature policy that accepts every image (as Debian's containers-common ships
/// it) into `dir`, and returns the `berth.toml` line that names it.
pub fn accept_anything_policy(dir: &std::path::Path) -> std::io::Result<String> {
    let path = dir.join("policy.json");
    std::fs::write(
        &path,
        "{\"default\": [{\"type\": \"insecureAcceptAnything\"}]}\n",
    )?;
    Ok(format!(
        "signature-policy = {:?}\n",
        path.display().to_string()
    ))
}
