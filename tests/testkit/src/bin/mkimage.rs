//! berth-mkimage: writes an OCI image layout from rootfs directories, one layer each,
//! deterministically. `berth-mkimage --layout DIR --tag TAG [--label K=V]... LAYERDIR...`

use anyhow::{bail, Context, Result};
use berth_testkit::image::{rootfs_entries, write_layout, Image, Layer};
use std::path::PathBuf;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut layout, mut tag, mut labels, mut dirs) = (None, None, Vec::new(), Vec::new());
    while let Some(a) = args.next() {
        match a.as_str() {
            "--layout" => layout = args.next().map(PathBuf::from),
            "--tag" => tag = args.next(),
            "--label" => labels.push(args.next().context("--label K=V")?),
            "--demo" => {
                // The demo OS, versions 1-3, as tags 1, 2, 3.
                let dir = PathBuf::from(args.next().context("--demo DIR")?);
                let v: Vec<_> = (1..=3).map(berth_testkit::demo::version).collect();
                write_layout(&dir, &[("1", &v[0]), ("2", &v[1]), ("3", &v[2])])?;
                return Ok(());
            }
            _ => dirs.push(PathBuf::from(a)),
        }
    }
    let (Some(layout), Some(tag)) = (layout, tag) else {
        bail!("usage: berth-mkimage --layout DIR --tag TAG [--label K=V]... LAYERDIR...")
    };
    let mut layers = Vec::new();
    for d in &dirs {
        layers.push(Layer::new(
            rootfs_entries(d).with_context(|| format!("read {}", d.display()))?,
        ));
    }
    let mut img = Image::new(&tag, layers);
    for l in labels {
        let (k, v) = l.split_once('=').context("--label K=V")?;
        img.labels.insert(k.into(), v.into());
    }
    let w = write_layout(&layout, &[(&tag, &img)])?;
    println!("{}", w[0].manifest_digest);
    Ok(())
}
