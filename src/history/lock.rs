//! An output folder belongs to one run: a lock file in it names the process
//! that writes there. A second run on the same folder is refused (exit 3,
//! naming the holder); a lock left by a process that no longer exists (a
//! killed run) is taken over.

use crate::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Name of the lock file inside an output folder.
pub const LOCK_FILE: &str = ".converge.lock";

/// Locks this process holds, removed by [`release_all`].
static HELD: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Claims `dir` (created if needed) for this process until [`release_all`]
/// or its exit. Claiming a folder this process holds already succeeds.
pub fn claim(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let lock = dir.join(LOCK_FILE);
    let me = std::process::id();
    // Written whole under a private name, then linked into place: the lock
    // never exists without its pid, and `link` fails if it exists.
    let draft = dir.join(format!("{LOCK_FILE}.{me}"));
    std::fs::File::create(&draft)
        .and_then(|mut f| writeln!(f, "{me}"))
        .map_err(|e| Error::io(&draft, e))?;
    let outcome = link_or_take_over(&draft, &lock, me);
    let _ = std::fs::remove_file(&draft);
    outcome?;
    let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
    if !held.contains(&lock) {
        held.push(lock);
    }
    Ok(())
}

fn link_or_take_over(draft: &Path, lock: &Path, me: u32) -> Result<()> {
    // Two rounds: a stale lock is removed once, then linking must succeed.
    for _ in 0..2 {
        match std::fs::hard_link(draft, lock) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            // A file system without hard links: create it exclusively.
            Err(_) => match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(lock)
            {
                Ok(mut f) => return writeln!(f, "{me}").map_err(|e| Error::io(lock, e)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::io(lock, e)),
            },
        }
        let holder = std::fs::read_to_string(lock)
            .ok()
            .and_then(|text| text.trim().parse::<u32>().ok());
        match holder {
            Some(pid) if pid == me => return Ok(()),
            Some(pid) if alive(pid) => {
                return Err(Error::Config(format!(
                    "output folder {} is in use by another converge run (pid {pid}, lock \
                     file {}): wait for it to end or pass another --out",
                    lock.parent().unwrap_or(lock).display(),
                    lock.display()
                )))
            }
            // Its holder is gone (or it names none): stale.
            _ => {
                let _ = std::fs::remove_file(lock);
            }
        }
    }
    Err(Error::Config(format!(
        "cannot claim output folder {}: another run keeps taking its lock file",
        lock.parent().unwrap_or(lock).display()
    )))
}

/// Whether a process with this pid exists (a zombie counts as gone).
fn alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    let exists = unsafe { libc::kill(pid, 0) } == 0
        || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat.rsplit_once(')')?.1.trim_start().chars().next()?;
            Some(state == 'Z' || state == 'X')
        })
        .unwrap_or(false);
    exists && !zombie
}

/// Removes every lock this process holds; call on the way out.
pub fn release_all() {
    let mut held = HELD.lock().unwrap_or_else(|p| p.into_inner());
    for lock in held.drain(..) {
        let _ = std::fs::remove_file(lock);
    }
}
