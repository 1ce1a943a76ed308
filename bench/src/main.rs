//! Berth's benchmark. Builds a realistic OS image (v1, and v2 with one layer changed), serves it
//! from a local docker-registry, and times in one run:
//! - two baseline pipelines built from the tools peers use: `skopeo copy` to an OCI directory,
//!   then either one `ostree commit --tree=tar=` of all layers, or (as ostree-ext keeps them) a
//!   commit per layer, made only for layers not committed before, and a merge commit of them;
//!   then `ostree admin deploy`;
//! - Berth: `berthd install` (pull + import + deploy), then `berthd update` to v2.
//!
//! It prints times side by side, their ratio, peak RSS and the blob bytes each fetched for
//! the update (counted from the registry's own request log). Run it through `bench/run.sh`
//! (private mount namespace and tmpfs; needs root).

mod content;
mod measure;

use anyhow::{bail, Context, Result};
use berth_testkit::image::{self, Image};
use berth_testkit::registry::Registry;
use measure::{run, Measured};
use std::path::{Path, PathBuf};
use std::process::Command;

const REPO: &str = "bench/os";

struct Args {
    work: PathBuf,
    berthd: PathBuf,
    runs: usize,
}

fn args() -> Result<Args> {
    let mut work = None;
    let mut berthd = None;
    let mut runs = 3;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--work" => work = it.next().map(PathBuf::from),
            "--berthd" => berthd = it.next().map(PathBuf::from),
            "--runs" => runs = it.next().context("--runs N")?.parse()?,
            _ => bail!("usage: berth-bench --work DIR --berthd PATH [--runs N]"),
        }
    }
    Ok(Args {
        work: work.context("--work DIR is required")?,
        berthd: berthd.context("--berthd PATH is required")?,
        runs,
    })
}

/// How a baseline pipeline turns the image's layers into an ostree commit.
#[derive(Clone, Copy, PartialEq)]
enum Commits {
    /// One `ostree commit` of all layers: every layer is imported again on each update.
    One,
    /// A commit per layer, kept under a ref named by its digest, then a merge commit: an
    /// update imports only the changed layers.
    PerLayer,
}

/// What one pipeline did in one run.
#[derive(Default, Clone, Copy)]
struct Figures {
    full: Measured,
    incremental: Measured,
    incremental_bytes: u64,
}

struct Bench {
    work: PathBuf,
    berthd: PathBuf,
    registry: Registry,
    /// Blob bytes the registry had sent when the current step began.
    bytes_mark: std::cell::Cell<u64>,
}

impl Bench {
    fn image(&self, tag: &str) -> String {
        format!("{}/{REPO}:{tag}", self.registry.addr)
    }

    /// Points `latest` at version `tag` (a manifest-only copy inside the registry).
    fn tag_latest(&self, tag: &str) -> Result<()> {
        let reg = &self.registry.addr;
        let out = Command::new("skopeo")
            .args([
                "copy",
                "-q",
                "--src-tls-verify=false",
                "--dest-tls-verify=false",
            ])
            .arg(format!("docker://{reg}/{REPO}:{tag}"))
            .arg(format!("docker://{reg}/{REPO}:latest"))
            .output()?;
        if !out.status.success() {
            bail!("retag: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }

    fn reset_bytes(&self) -> Result<()> {
        self.bytes_mark.set(self.registry.blob_bytes_sent()?);
        Ok(())
    }

    fn bytes(&self) -> Result<u64> {
        Ok(self.registry.blob_bytes_sent()? - self.bytes_mark.get())
    }

    /// skopeo copy + ostree commit(s) of the layers + ostree admin deploy.
    fn baseline_deploy(&self, dir: &Path, first: bool, commits: Commits) -> Result<Measured> {
        let sysroot = dir.join("sysroot");
        let oci = dir.join("oci");
        let mut total = Measured::default();
        if first {
            std::fs::create_dir_all(&sysroot)?;
            total += run(Command::new("ostree")
                .arg("admin")
                .arg("init-fs")
                .arg(&sysroot))?;
            total += run(Command::new("ostree")
                .args(["admin", "os-init", "bench", "--sysroot"])
                .arg(&sysroot))?;
        }
        let mut steps = Vec::new();
        let copy = run(Command::new("skopeo")
            .args(["copy", "-q", "--src-tls-verify=false"])
            .arg(format!("docker://{}", self.image("latest")))
            .arg(format!("oci:{}:img", oci.display())))?;
        steps.push(("skopeo copy", copy));
        let repo = sysroot.join("ostree/repo");
        let commit = |branch: &str| {
            let mut c = Command::new("ostree");
            c.arg(format!("--repo={}", repo.display())).args([
                "commit",
                &format!("--branch={branch}"),
                "--subject=baseline",
                "--tar-autocreate-parents",
                "--tar-pathname-filter=^etc,usr/etc",
            ]);
            c
        };
        match commits {
            Commits::One => {
                let mut all = commit("bench/image");
                for blob in layer_blobs(&oci)? {
                    all.arg(format!("--tree=tar={}", blob.display()));
                }
                steps.push(("ostree commit", run(&mut all)?));
            }
            Commits::PerLayer => {
                let mut layers = Measured::default();
                let mut merge = commit("bench/image");
                for blob in layer_blobs(&oci)? {
                    let name = blob.file_name().and_then(|n| n.to_str()).context("blob")?;
                    let branch = format!("bench/layer/{name}");
                    if !repo.join("refs/heads").join(&branch).exists() {
                        layers +=
                            run(commit(&branch).arg(format!("--tree=tar={}", blob.display())))?;
                    }
                    merge.arg(format!("--tree=ref={branch}"));
                }
                steps.push(("ostree commit per new layer", layers));
                steps.push(("ostree commit (merge)", run(&mut merge)?));
            }
        }
        let deploy = run(Command::new("ostree")
            .args(["admin", "deploy", "--os=bench", "--sysroot"])
            .arg(&sysroot)
            .arg("bench/image"))?;
        steps.push(("ostree admin deploy", deploy));
        let shown: Vec<String> = steps
            .iter()
            .map(|(name, m)| format!("{name} {:.2} s ({:.2} s cpu)", m.secs, m.cpu_secs))
            .collect();
        eprintln!("  baseline steps: {}", shown.join(", "));
        for (_, m) in steps {
            total += m;
        }
        Ok(total)
    }

    fn baseline(&self, dir: &Path, commits: Commits) -> Result<Figures> {
        self.tag_latest("1")?;
        let full = self.baseline_deploy(dir, true, commits)?;
        self.tag_latest("2")?;
        self.reset_bytes()?;
        let incremental = self.baseline_deploy(dir, false, commits)?;
        Ok(Figures {
            full,
            incremental,
            incremental_bytes: self.bytes()?,
        })
    }

    fn berth(&self, dir: &Path) -> Result<Figures> {
        let sysroot = dir.join("sysroot");
        let config = dir.join("berth.toml");
        std::fs::create_dir_all(&sysroot)?;
        std::fs::write(
            &config,
            format!(
                "insecure-registries = [\"{}\"]\n{}",
                self.registry.addr,
                berth_testkit::accept_anything_policy(dir)?
            ),
        )?;
        let berthd = |args: &[&str]| {
            let mut c = Command::new(&self.berthd);
            c.arg("--sysroot")
                .arg(&sysroot)
                .arg("--config")
                .arg(&config)
                .args(args);
            c
        };
        self.tag_latest("1")?;
        let full = run(&mut berthd(&["install", &self.image("latest")]))?;
        self.tag_latest("2")?;
        self.reset_bytes()?;
        eprintln!(
            "  berth install {:.2} s ({:.2} s cpu)",
            full.secs, full.cpu_secs
        );
        let incremental = run(&mut berthd(&["update"]))?;
        eprintln!(
            "  berth update {:.2} s ({:.2} s cpu)",
            incremental.secs, incremental.cpu_secs
        );
        Ok(Figures {
            full,
            incremental,
            incremental_bytes: self.bytes()?,
        })
    }
}

/// The layer blobs of the image in an OCI directory, lowest first.
fn layer_blobs(oci: &Path) -> Result<Vec<PathBuf>> {
    let blob = |digest: &str| {
        oci.join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    };
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(oci.join("index.json"))?)?;
    let entry = index["manifests"]
        .as_array()
        .and_then(|m| {
            m.iter()
                .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "img")
        })
        .context("no img in OCI index")?;
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(blob(
        entry["digest"].as_str().context("digest")?,
    ))?)?;
    manifest["layers"]
        .as_array()
        .context("no layers")?
        .iter()
        .map(|l| Ok(blob(l["digest"].as_str().context("layer digest")?)))
        .collect()
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn describe(img: &Image, written: &image::Written) -> (usize, u64, u64) {
    let files = img
        .layers
        .iter()
        .flat_map(|l| &l.entries)
        .filter(|e| matches!(e, image::Entry::File(..)))
        .count();
    let raw: u64 = img
        .layers
        .iter()
        .flat_map(|l| &l.entries)
        .map(|e| match e {
            image::Entry::File(_, d, _) => d.len() as u64,
            _ => 0,
        })
        .sum();
    let compressed = written.layers.iter().map(|(_, s)| *s).sum();
    (files, raw, compressed)
}

/// The image's facts, as the building process reports them on stdout.
struct Built {
    layers: usize,
    files: usize,
    raw: u64,
    compressed: u64,
    changed: u64,
}

/// Writes the OCI layout (v1 and v2) and prints its facts. Runs in a child process: the image is
/// built in memory, and a parent that big would leak its RSS into every measured child's peak
/// (Linux carries the pre-exec high-water mark into `ru_maxrss`).
fn build_image(layout: &Path) -> Result<()> {
    let (v1, v2) = content::images();
    let written = image::write_layout(layout, &[("1", &v1), ("2", &v2)])?;
    let (files, raw, compressed) = describe(&v1, &written[0]);
    let changed = written[1].layers[content::CHANGED_LAYER].1;
    println!(
        "{} {files} {raw} {compressed} {changed}",
        written[0].layers.len()
    );
    Ok(())
}

fn build_in_child(layout: &Path) -> Result<Built> {
    let out = Command::new(std::env::current_exe()?)
        .arg("--build-image")
        .arg(layout)
        .output()?;
    if !out.status.success() {
        bail!(
            "building the image: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8(out.stdout)?;
    let n: Vec<u64> = text
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .with_context(|| format!("image facts: {text}"))?;
    let [layers, files, raw, compressed, changed] = n[..] else {
        bail!("image facts: {text}");
    };
    Ok(Built {
        layers: layers as usize,
        files: files as usize,
        raw,
        compressed,
        changed,
    })
}

fn main() -> Result<()> {
    let mut argv = std::env::args().skip(1);
    if argv.next().as_deref() == Some("--build-image") {
        return build_image(Path::new(&argv.next().context("--build-image DIR")?));
    }
    let args = args()?;
    let work = &args.work;
    eprintln!("building the benchmark image (not timed)...");
    let layout = work.join("layout");
    let Built {
        layers,
        files,
        raw,
        compressed,
        changed,
    } = build_in_child(&layout)?;
    let registry = Registry::start_logging_requests(&work.join("registry"))?;
    for tag in ["1", "2"] {
        registry.push(&layout, tag, REPO)?;
    }
    let bench = Bench {
        work: work.clone(),
        berthd: args.berthd.clone(),
        registry,
        bytes_mark: Default::default(),
    };
    let (mut base_runs, mut layer_runs, mut berth_runs) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..args.runs {
        // Rotate which pipeline goes first, so none always runs on a warmer machine.
        for turn in 0..3 {
            let dir = |name: &str| bench.work.join(format!("run{r}/{name}"));
            eprintln!(
                "run {}/{}: pipeline {}...",
                r + 1,
                args.runs,
                (r + turn) % 3
            );
            match (r + turn) % 3 {
                0 => berth_runs.push(bench.berth(&dir("berth"))?),
                1 => base_runs.push(bench.baseline(&dir("baseline"), Commits::One)?),
                _ => layer_runs.push(bench.baseline(&dir("per-layer"), Commits::PerLayer)?),
            }
        }
    }
    let best = |runs: &[Figures], f: fn(&Figures) -> Measured| {
        runs.iter()
            .map(f)
            .min_by(|a, b| a.secs.total_cmp(&b.secs))
            .unwrap_or_default()
    };
    let (bf, lf, sf) = (
        best(&base_runs, |f| f.full),
        best(&layer_runs, |f| f.full),
        best(&berth_runs, |f| f.full),
    );
    let (bi, li, si) = (
        best(&base_runs, |f| f.incremental),
        best(&layer_runs, |f| f.incremental),
        best(&berth_runs, |f| f.incremental),
    );
    let (bb, lb, sb) = (
        base_runs[0].incremental_bytes,
        layer_runs[0].incremental_bytes,
        berth_runs[0].incremental_bytes,
    );
    let rss = |runs: &[Figures]| {
        runs.iter()
            .map(|f| f.full.peak_rss_kb.max(f.incremental.peak_rss_kb))
            .max()
            .unwrap_or(0)
    };
    // Berth's ratios are against the faster (stronger) baseline.
    let (sf_ratio, si_ratio) = (
        sf.secs / bf.secs.min(lf.secs),
        si.secs / bi.secs.min(li.secs),
    );
    println!(
        "image: {layers} layers, {files} files, {} uncompressed, {} compressed; changed layer {}; best of {} run(s)",
        mb(raw),
        mb(compressed),
        mb(changed),
        args.runs
    );
    println!(
        "baseline: one ostree commit of all layers; per-layer: a commit per new layer + merge"
    );
    println!(
        "{:<34}{:>12}{:>12}{:>12}{:>9}   target (ratio: berth / the faster baseline)",
        "", "baseline", "per-layer", "berth", "ratio"
    );
    println!(
        "{:<34}{:>10.2} s{:>10.2} s{:>10.2} s{:>8.2}x   <= 0.60x",
        "full: pull + import + deploy", bf.secs, lf.secs, sf.secs, sf_ratio
    );
    println!(
        "{:<34}{:>10.2} s{:>10.2} s{:>10.2} s{:>8.2}x   <= 0.30x of baseline full ({:.2}x)",
        "incremental: one layer changed",
        bi.secs,
        li.secs,
        si.secs,
        si_ratio,
        si.secs / bf.secs
    );
    println!(
        "{:<34}{:>12}{:>12}{:>12}{:>8.2}x   within 5% of the changed layer ({:+.1}%)",
        "incremental: blob bytes fetched",
        mb(bb),
        mb(lb),
        mb(sb),
        sb as f64 / bb.max(1) as f64,
        (sb as f64 / changed as f64 - 1.0) * 100.0
    );
    println!(
        "{:<34}{:>12}{:>12}{:>12}{:>9}   berth < 64 MB",
        "peak RSS (largest process)",
        mb(rss(&base_runs) * 1024),
        mb(rss(&layer_runs) * 1024),
        mb(rss(&berth_runs) * 1024),
        ""
    );
    Ok(())
}
