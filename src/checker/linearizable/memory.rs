//! The memory budget of a linearizability check.
//!
//! Every big structure a search builds (its memo table and word arena, the
//! states the memo and the stack hold, the event list) is charged to a
//! [`Ledger`] before it grows, so the bytes a check holds never pass the
//! budget, whichever search asks. When the check owns the process (the
//! CLI), the budget also covers what no ledger sees (the parsed history,
//! allocator slack): searches read the process's resident size from
//! `/proc/self/statm` now and then and stop when it nears the budget.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Bytes in a MiB.
pub const MIB: usize = 1 << 20;

/// Share of what is left of a whole-process budget after the history is
/// read that the ledgers may hold; the rest absorbs allocator slack.
const LEDGER_SHARE_PERCENT: usize = 85;

/// Share of a whole-process budget at which a search stops on resident size.
const RESIDENT_TRIP_PERCENT: usize = 95;

/// The bytes every search of one check may hold together.
#[derive(Debug)]
pub struct MemoryBudget {
    /// What the user asked for, in bytes.
    total: usize,
    /// What the ledgers may hold together.
    limit: usize,
    used: AtomicUsize,
    /// Resident bytes at which searches stop, when the check owns the process.
    resident_limit: Option<usize>,
}

impl MemoryBudget {
    /// A budget of `bytes` for the check's own structures.
    pub fn for_check(bytes: usize) -> MemoryBudget {
        MemoryBudget {
            total: bytes,
            limit: bytes,
            used: AtomicUsize::new(0),
            resident_limit: None,
        }
    }

    /// A budget of `bytes` for the whole process: what it already holds
    /// (binary, parsed history) is subtracted, and its resident size is
    /// watched. Falls back to [`MemoryBudget::for_check`] where `/proc` is
    /// not readable.
    pub fn for_process(bytes: usize) -> MemoryBudget {
        let Some(resident) = resident_bytes() else {
            return MemoryBudget::for_check(bytes);
        };
        let limit = bytes.saturating_sub(resident) / 100 * LEDGER_SHARE_PERCENT;
        MemoryBudget {
            total: bytes,
            limit,
            used: AtomicUsize::new(0),
            resident_limit: Some(bytes / 100 * RESIDENT_TRIP_PERCENT),
        }
    }

    /// What the ledgers may hold together, in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The budget the user asked for, in bytes.
    pub fn total(&self) -> usize {
        self.total
    }

    fn reserve(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&after| after <= self.limit)
            })
            .is_ok()
    }

    fn release(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// The process's resident bytes when they have reached the point where
    /// searches must stop.
    pub fn resident_exceeded(&self) -> Option<usize> {
        let limit = self.resident_limit?;
        resident_bytes().filter(|&resident| resident >= limit)
    }
}

/// The process's resident set size in bytes, from `/proc/self/statm`.
pub fn resident_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * usize::try_from(page).ok().filter(|&p| p > 0)?)
}

extern "C" {
    /// mimalloc's own call (the process allocator, see `lib.rs`): frees
    /// what the calling thread's heap keeps for reuse.
    fn mi_collect(force: bool);
}

/// Hands the memory a finished search freed back to the system. The
/// allocator would keep it for the thread that freed it, where the next
/// search (perhaps on another thread) cannot use it but the resident size
/// still counts it.
pub fn return_freed_memory() {
    // SAFETY: mi_collect takes no pointers and may be called at any time
    // from any thread.
    unsafe { mi_collect(true) }
}

/// What one search holds against a [`MemoryBudget`], up to its own cap.
/// Dropping the ledger gives everything back.
#[derive(Debug)]
pub struct Ledger<'a> {
    budget: &'a MemoryBudget,
    cap: usize,
    held: usize,
    peak: usize,
}

impl<'a> Ledger<'a> {
    /// A ledger that may hold up to `cap` bytes of `budget`.
    pub fn new(budget: &'a MemoryBudget, cap: usize) -> Ledger<'a> {
        Ledger {
            budget,
            cap,
            held: 0,
            peak: 0,
        }
    }

    /// Takes `bytes` more; `false` (and nothing taken) past the cap or the
    /// budget.
    pub fn charge(&mut self, bytes: usize) -> bool {
        let Some(after) = self.held.checked_add(bytes).filter(|&a| a <= self.cap) else {
            return false;
        };
        if !self.budget.reserve(bytes) {
            return false;
        }
        self.held = after;
        self.peak = self.peak.max(after);
        true
    }

    /// Gives `bytes` back.
    pub fn release(&mut self, bytes: usize) {
        let bytes = bytes.min(self.held);
        self.budget.release(bytes);
        self.held -= bytes;
    }

    /// Holds exactly `bytes`, taking or giving back the difference.
    pub fn settle(&mut self, bytes: usize) -> bool {
        if bytes >= self.held {
            self.charge(bytes - self.held)
        } else {
            self.release(self.held - bytes);
            true
        }
    }

    /// The most this ledger held at once.
    pub fn peak(&self) -> usize {
        self.peak
    }

    /// The cap of this ledger.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// The budget this ledger draws on.
    pub fn budget(&self) -> &'a MemoryBudget {
        self.budget
    }
}

impl Drop for Ledger<'_> {
    fn drop(&mut self) {
        self.budget.release(self.held);
    }
}
