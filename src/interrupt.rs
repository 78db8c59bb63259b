//! SIGINT and SIGTERM during `converge run`.
//!
//! The first signal asks the run to stop: targets stop sending new
//! operations, wait for the ones in flight (each has its own timeout), skip
//! the final phase, close the history, and the run writes a partial report
//! whose `interrupted` check is unknown, so the verdict is unknown (exit 2)
//! unless a violation was already proven. A second signal exits at once
//! (128 + signal) after killing every child process group: the history on
//! disk is what was flushed, and `converge check` reads it.

use crate::checker::Check;
use crate::verdict::Verdict;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::time::Duration;

static SIGNALS: AtomicU32 = AtomicU32::new(0);
static FIRST: AtomicI32 = AtomicI32::new(0);

/// Installs the handler for SIGINT and SIGTERM. Call once, before any
/// target starts; without it a signal kills the process (and the guards
/// of [`crate::child`] kill its children).
pub fn install() {
    // SAFETY: installs an async-signal-safe handler (atomics, write(2),
    // kill(2), _exit(2)) with a zeroed, then filled, sigaction.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        for signal in [libc::SIGINT, libc::SIGTERM] {
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
}

extern "C" fn on_signal(signal: libc::c_int) {
    let before = SIGNALS.fetch_add(1, Ordering::SeqCst);
    if before == 0 {
        FIRST.store(signal, Ordering::SeqCst);
        say(b"\nconverge: stopping: no new operations, waiting for those in flight, then a partial report (signal again to exit at once)\n");
        return;
    }
    say(b"\nconverge: second signal: killing the targets' processes and exiting now\n");
    crate::child::kill_all();
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(128 + signal) };
}

fn say(message: &[u8]) {
    // SAFETY: write(2) of a static buffer to stderr is async-signal-safe.
    unsafe {
        libc::write(2, message.as_ptr().cast(), message.len());
    }
}

/// Whether a stop was asked for.
pub fn requested() -> bool {
    SIGNALS.load(Ordering::Relaxed) > 0
}

/// The name of the signal that asked for the stop.
pub fn signal_name() -> Option<&'static str> {
    match FIRST.load(Ordering::SeqCst) {
        0 => None,
        libc::SIGINT => Some("SIGINT"),
        libc::SIGTERM => Some("SIGTERM"),
        _ => Some("a signal"),
    }
}

/// Resolves once a stop is asked for (polls; cheap enough for a run).
pub async fn wait() {
    while !requested() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Asks for a stop as if a signal had come (for tests and for callers that
/// stop a run themselves).
pub fn request() {
    if SIGNALS
        .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
        .is_ok()
    {
        FIRST.store(libc::SIGINT, Ordering::SeqCst);
    }
}

/// The check that marks a report partial, when a stop was asked for: its
/// verdict is unknown, so only a violation already proven outranks it.
pub fn check() -> Option<Check> {
    let signal = signal_name()?;
    Some(Check::new(
        "interrupted",
        Verdict::Unknown,
        format!(
            "the run was stopped by {signal}: a partial history, judged as far as it goes; the final phase did not run in full"
        ),
    ))
}

/// The error a target returns when a stop is asked for before any
/// operation was sent (while starting nodes or a service).
pub fn during(phase: impl Into<String>) -> crate::error::Error {
    crate::error::Error::Interrupted {
        signal: signal_name().unwrap_or("a signal").into(),
        phase: phase.into(),
    }
}

/// Sleeps `duration`, or less when a stop is asked for.
pub async fn sleep(duration: Duration) {
    tokio::select! {
        _ = tokio::time::sleep(duration) => {}
        _ = wait() => {}
    }
}
