//! Free-space checks, done before downloading and before deploying so that a full disk is
//! reported up front with a clear error instead of half-way through.

use crate::error::{Error, Result};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Space kept free on top of what an operation needs, so the system stays usable.
pub const RESERVE: u64 = 8 << 20;

pub fn available(path: &Path) -> Result<u64> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::WrongState(format!("path {} has a NUL byte", path.display())))?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid NUL-terminated path and st a valid out-pointer.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(Error::io(
            format!("statvfs {}", path.display()),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(st.f_bavail as u64 * st.f_frsize as u64)
}

/// Fails with `NoSpace` unless `path`'s filesystem has `needed` bytes plus the reserve.
pub fn ensure(path: &Path, needed: u64) -> Result<()> {
    let avail = available(path)?;
    let needed = needed + RESERVE;
    if avail < needed {
        return Err(Error::NoSpace {
            path: path.to_path_buf(),
            needed,
            available: avail,
        });
    }
    Ok(())
}
