//! Child processes converge starts (Maelstrom nodes, a scenario's `[start]`
//! service, through `sh -c` or not): none may outlive the run, whatever ends
//! it.
//!
//! Every child runs behind a *guard*: converge forks a small process that
//! makes itself the leader of a new process group, then forks again and
//! execs the real command inside that group. The guard only waits:
//!
//! - when the command exits, the guard exits with the same status, so the
//!   status converge sees is the command's;
//! - when converge dies, even by `kill -9`, the kernel tells the guard
//!   (`PR_SET_PDEATHSIG`), and the guard continues and kills its whole group,
//!   grandchildren of a shell included. `PR_SET_PDEATHSIG` alone would not
//!   do: it reaches only the direct child (not what `sh -c` starts), it fires
//!   when the *thread* that forked the child ends (a tokio worker may end
//!   before the run does), and a stopped process cannot act on it. The guard
//!   checks that its parent process really is gone before it kills, and is
//!   never left stopped ([`Group::pause`]).
//!
//! converge itself kills each group on every exit path it controls: a
//! [`Group`] kills its group when dropped, and the signal handler of
//! [`crate::interrupt`] kills every registered group before a forced exit.
//!
//! The guard is a fork of converge that never execs; between fork and exit it
//! calls only async-signal-safe functions. It shares converge's memory
//! copy-on-write, so it costs a few pages, not a copy of converge.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

/// Longest line converge accepts from a child's output, in bytes.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Slots for the groups alive now; the signal handler reads them.
const SLOTS: usize = 4096;
static GROUPS: [AtomicI32; SLOTS] = [const { AtomicI32::new(0) }; SLOTS];

/// Makes `command` start behind a guard in a process group of its own (see
/// the module docs). Register the spawned child's pid with [`Group::new`].
pub fn contain(command: &mut tokio::process::Command) {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child before exec and calls only
    // async-signal-safe functions (setpgid, prctl, fork, sigprocmask,
    // sigtimedwait, waitpid, kill, close, _exit); it allocates nothing.
    unsafe {
        command.pre_exec(move || guard_then_exec(parent));
    }
}

/// In the forked child: become the group leader and fork the real command;
/// this process stays behind as its guard and never returns.
unsafe fn guard_then_exec(parent: libc::pid_t) -> io::Result<()> {
    if libc::setpgid(0, 0) != 0 {
        return Err(io::Error::last_os_error());
    }
    // The guard must act on converge's death: a catchable signal it waits for.
    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong);
    let guard = libc::getpid();
    match libc::fork() {
        -1 => Err(io::Error::last_os_error()),
        0 => {
            // The command itself: dies with its guard, whatever kills it.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
            if libc::getppid() != guard {
                libc::_exit(1);
            }
            Ok(())
        }
        command => guard_loop(command, parent),
    }
}

/// The guard: waits for its command to exit or for converge to die.
unsafe fn guard_loop(command: libc::pid_t, parent: libc::pid_t) -> ! {
    // Hold none of the pipes: converge must see the command's output end
    // when the command ends, and std's exec-error pipe must close.
    for fd in 0..3 {
        libc::close(fd);
    }
    if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) != 0 {
        for fd in 3..65_536 {
            libc::close(fd);
        }
    }
    let mut set: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut set);
    for signal in [
        libc::SIGCHLD,
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGHUP,
        libc::SIGQUIT,
    ] {
        libc::sigaddset(&mut set, signal);
    }
    libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    let poll = libc::timespec {
        tv_sec: 1,
        tv_nsec: 0,
    };
    loop {
        let mut status = 0;
        if libc::waitpid(command, &mut status, libc::WNOHANG) == command {
            exit_like(status);
        }
        if libc::getppid() != parent {
            // converge is gone: nobody else will stop this group.
            let group = libc::getpid();
            libc::kill(-group, libc::SIGCONT);
            libc::kill(-group, libc::SIGKILL);
            libc::_exit(137);
        }
        // SIGTERM or SIGINT sent to the whole group by converge is for the
        // command; the guard waits for the command to act on it.
        libc::sigtimedwait(&set, std::ptr::null_mut(), &poll);
    }
}

/// Exits the guard as its command exited.
unsafe fn exit_like(status: libc::c_int) -> ! {
    if libc::WIFSIGNALED(status) {
        let signal = libc::WTERMSIG(status);
        let no_core = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
        libc::signal(signal, libc::SIG_DFL);
        let mut only: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut only);
        libc::sigaddset(&mut only, signal);
        libc::sigprocmask(libc::SIG_UNBLOCK, &only, std::ptr::null_mut());
        libc::kill(libc::getpid(), signal);
        libc::_exit(128 + signal);
    }
    libc::_exit(libc::WEXITSTATUS(status));
}

/// A child's process group, led by its guard; killed when dropped.
#[derive(Debug)]
pub struct Group {
    pgid: libc::pid_t,
}

impl Group {
    /// Takes charge of the group a [`contain`]ed child leads (`pid` is the
    /// spawned child's pid), so that it is killed on every exit path.
    pub fn new(pid: u32) -> Group {
        let pgid = pid as libc::pid_t;
        for slot in &GROUPS {
            if slot
                .compare_exchange(0, pgid, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                break;
            }
        }
        Group { pgid }
    }

    /// The guard's pid, which is the group id.
    pub fn id(&self) -> u32 {
        self.pgid as u32
    }

    /// SIGKILL to every process of the group but the guard, which then
    /// reaps its command (so its CPU time reaches converge's children's
    /// usage) and exits. The group is stopped while it is listed, so
    /// nothing forks past the list, and continued after, so nothing is left
    /// stopped.
    pub fn kill(&self) {
        // SAFETY: kill(2) on a process group we created and its members.
        unsafe {
            libc::kill(-self.pgid, libc::SIGSTOP);
            for pid in members(self.pgid) {
                if pid != self.pgid {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
            libc::kill(-self.pgid, libc::SIGCONT);
        }
    }

    /// SIGTERM to every process of the group; the guard ignores it and
    /// waits for its command.
    pub fn terminate(&self) {
        // SAFETY: kill(2) on a process group we created.
        unsafe { libc::kill(-self.pgid, libc::SIGTERM) };
    }

    /// SIGSTOP to the command and everything it started; the guard is
    /// continued at once, so it can still act if converge dies meanwhile.
    pub fn pause(&self) {
        // SAFETY: kill(2) on a process group we created and on its leader.
        unsafe {
            libc::kill(-self.pgid, libc::SIGSTOP);
            libc::kill(self.pgid, libc::SIGCONT);
        }
    }

    /// SIGCONT to every process of the group.
    pub fn resume(&self) {
        // SAFETY: kill(2) on a process group we created.
        unsafe { libc::kill(-self.pgid, libc::SIGCONT) };
    }
}

/// Pids of the processes in process group `pgid`, from /proc.
fn members(pgid: libc::pid_t) -> Vec<libc::pid_t> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<libc::pid_t>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                // After the parenthesised name: state, ppid, pgrp.
                stat.rfind(')')
                    .and_then(|i| stat[i + 1..].split_whitespace().nth(2)?.parse().ok())
                    == Some(pgid)
            })
        })
        .collect()
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
        for slot in &GROUPS {
            if slot
                .compare_exchange(self.pgid, 0, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                break;
            }
        }
    }
}

fn kill_group(pgid: libc::pid_t) {
    if pgid > 0 {
        // SAFETY: kill(2) on a process group we created; async-signal-safe.
        unsafe {
            libc::kill(-pgid, libc::SIGCONT);
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

/// Kills every group still registered. Async-signal-safe: the interrupt
/// handler calls it before a forced exit.
pub fn kill_all() {
    for slot in &GROUPS {
        kill_group(slot.load(Ordering::SeqCst));
    }
}

/// Pids of every process below `root` (not `root` itself), from
/// `/proc/<pid>/task/<tid>/children`.
pub fn descendants(root: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let mut todo = vec![root];
    while let Some(pid) = todo.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let Ok(children) = std::fs::read_to_string(task.path().join("children")) else {
                continue;
            };
            for child in children.split_whitespace().filter_map(|c| c.parse().ok()) {
                if !found.contains(&child) && child != root {
                    found.push(child);
                    todo.push(child);
                }
            }
        }
    }
    found
}

/// (RSS MB, CPU seconds) summed over every process below `root` (its
/// guard): the service and everything it started. CPU counts the
/// children each process has reaped, so short-lived helpers are counted.
/// `None` when no process is left.
pub fn tree_usage(root: u32) -> Option<(f64, f64)> {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut total: Option<(f64, f64)> = None;
    for pid in descendants(root) {
        if let Some((rss, cpu)) = process_usage(pid, ticks) {
            let t = total.get_or_insert((0.0, 0.0));
            t.0 += rss;
            t.1 += cpu;
        }
    }
    total
}

/// (RSS MB, CPU seconds incl. reaped children) of one process.
pub fn process_usage(pid: u32, ticks: f64) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    // A zombie has no VmRSS line: it holds no memory.
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name: utime, stime, cutime and
    // cstime are fields 14 to 17.
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let cpu: f64 = (11..15)
        .filter_map(|i| fields.get(i)?.parse::<f64>().ok())
        .sum();
    Some((kb / 1024.0, cpu / ticks))
}

/// The last `lines` lines of a log file (at most 4 KiB), for an error
/// message; empty when unreadable or empty.
pub fn log_tail(path: &Path, lines: usize) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map_or(0, |m| m.len());
    let from = len.saturating_sub(4096);
    let mut tail = Vec::new();
    if file.seek(SeekFrom::Start(from)).is_err() || file.read_to_end(&mut tail).is_err() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&tail);
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// "…; last lines of PATH: …" for an error about a child that ended, or
/// just where its log is when the log is empty.
pub fn describe_log(path: &Path) -> String {
    let tail = log_tail(path, 5);
    if tail.is_empty() {
        format!("its log {} is empty", path.display())
    } else {
        format!("last lines of {}:\n{tail}", path.display())
    }
}

/// One line of a child's output, as read by [`CappedLines`].
#[derive(Debug, PartialEq, Eq)]
pub enum OutputLine {
    /// A whole line (without its newline), lossily decoded.
    Line(String),
    /// A line longer than the cap, reported as soon as it passes the cap;
    /// what was read of it is dropped and the rest, up to its newline, is
    /// skipped.
    TooLong,
    /// End of output.
    End,
}

/// Lines of a child's output, keeping at most `cap` bytes of a line in
/// memory. A last line without a newline counts as a line.
pub struct CappedLines<R> {
    reader: R,
    cap: usize,
    skipping: bool,
}

impl<R: tokio::io::AsyncBufRead + Unpin> CappedLines<R> {
    /// Lines of `reader`, each at most `cap` bytes.
    pub fn new(reader: R, cap: usize) -> Self {
        CappedLines {
            reader,
            cap,
            skipping: false,
        }
    }

    /// The next line, [`OutputLine::TooLong`] once per over-long line, or
    /// the end.
    pub async fn next(&mut self) -> io::Result<OutputLine> {
        use tokio::io::AsyncBufReadExt;
        let mut line = Vec::new();
        loop {
            let buf = self.reader.fill_buf().await?;
            if buf.is_empty() {
                self.skipping = false;
                if line.is_empty() {
                    return Ok(OutputLine::End);
                }
                break;
            }
            let newline = buf.iter().position(|&b| b == b'\n');
            let used = newline.map_or(buf.len(), |i| i + 1);
            let chunk_len = newline.unwrap_or(buf.len());
            if self.skipping {
                self.reader.consume(used);
                self.skipping = newline.is_none();
                continue;
            }
            if line.len() + chunk_len > self.cap {
                self.reader.consume(used);
                self.skipping = newline.is_none();
                return Ok(OutputLine::TooLong);
            }
            line.extend_from_slice(&buf[..chunk_len]);
            self.reader.consume(used);
            if newline.is_some() {
                break;
            }
        }
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Ok(OutputLine::Line(match String::from_utf8(line) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }))
    }
}

/// Copies a child's output stream (its stderr, a service's stdout) to its
/// log in the run folder, line by line through [`crate::secrets::mask`]: a
/// child may print the URL or DSN it was given, and the log is an output
/// like any other. At most [`MAX_LINE_BYTES`] of a line are kept in memory;
/// a longer line is noted in the log, not copied. `on_line` sees each
/// (unmasked) line first. The task ends at the end of the stream; await it
/// before reading the log's tail.
pub fn copy_to_log<R>(
    output: R,
    mut log: std::fs::File,
    who: String,
    mut on_line: impl FnMut(&str) + Send + 'static,
) -> tokio::task::JoinHandle<()>
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        use std::io::Write;
        let reader = tokio::io::BufReader::with_capacity(64 << 10, output);
        let mut lines = CappedLines::new(reader, MAX_LINE_BYTES);
        loop {
            let line = match lines.next().await {
                Ok(OutputLine::Line(line)) => {
                    on_line(&line);
                    line
                }
                Ok(OutputLine::TooLong) => format!(
                    "[converge: {who} wrote a line over {} MiB: skipped]",
                    MAX_LINE_BYTES >> 20
                ),
                Ok(OutputLine::End) | Err(_) => break,
            };
            let mut masked = crate::secrets::mask(&line).into_owned();
            masked.push('\n');
            // Plain writes: the log is current at every line, even when
            // converge is killed the next moment.
            if log.write_all(masked.as_bytes()).is_err() {
                break;
            }
        }
    })
}

/// Waits (at most [`EXIT_WAIT`]) for a [`copy_to_log`] task whose child
/// has exited, so the log's tail is whole when it is read.
pub async fn log_copied(task: &mut Option<tokio::task::JoinHandle<()>>) {
    if let Some(handle) = task.as_mut() {
        if tokio::time::timeout(EXIT_WAIT, handle).await.is_ok() {
            *task = None;
        }
    }
}

/// How long [`wait_briefly`] waits for a process whose output ended.
pub const EXIT_WAIT: Duration = Duration::from_millis(500);

/// The exit status of a child whose output ended, as text ("exit status: 3",
/// "signal: 9 (SIGKILL)"); a child still running after [`EXIT_WAIT`] is
/// described as such.
pub async fn wait_briefly(child: &mut tokio::process::Child) -> String {
    match tokio::time::timeout(EXIT_WAIT, child.wait()).await {
        Ok(Ok(status)) => status.to_string(),
        Ok(Err(e)) => format!("status unknown: {e}"),
        Err(_) => "closed its output but kept running".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn long_lines_are_skipped_and_counted() {
        let input = b"short\nabcdefghij\nok\r\n\nabcdefg".to_vec();
        let reader = tokio::io::BufReader::with_capacity(4, &input[..]);
        let mut lines = CappedLines::new(reader, 6);
        let mut got = Vec::new();
        loop {
            match lines.next().await.expect("in memory") {
                OutputLine::End => break,
                other => got.push(other),
            }
        }
        assert_eq!(
            got,
            vec![
                OutputLine::Line("short".into()),
                OutputLine::TooLong,
                OutputLine::Line("ok".into()),
                OutputLine::Line(String::new()),
                OutputLine::TooLong,
            ]
        );
    }

    #[tokio::test]
    async fn a_contained_shell_and_its_children_die_with_the_group() {
        let mut command = tokio::process::Command::new("sh");
        command.args(["-c", "sleep 30 & sleep 30 & wait"]);
        contain(&mut command);
        let mut child = command.spawn().expect("sh starts");
        let group = Group::new(child.id().expect("running"));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while descendants(group.id()).len() < 3 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let below = descendants(group.id());
        assert_eq!(below.len(), 3, "sh and two sleeps below the guard");
        assert!(tree_usage(group.id()).is_some_and(|(rss, _)| rss > 0.0));
        drop(group);
        let status = child.wait().await.expect("reaped");
        assert!(!status.success());
        for pid in below {
            // The sleeps were reparented; they must be gone (or zombies
            // about to be reaped by init).
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while alive(pid) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            assert!(!alive(pid), "pid {pid} survived its group");
        }
    }

    #[tokio::test]
    async fn the_guard_passes_on_the_exit_status() {
        let mut command = tokio::process::Command::new("sh");
        command.args(["-c", "echo hi; exit 7"]);
        command.stdout(std::process::Stdio::piped());
        contain(&mut command);
        let mut child = command.spawn().expect("sh starts");
        let _group = Group::new(child.id().expect("running"));
        let status = child.wait().await.expect("reaped");
        assert_eq!(status.code(), Some(7));
    }

    fn alive(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| !r.trim_start().starts_with('Z'))
        })
    }
}
