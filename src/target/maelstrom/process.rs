//! Node processes: spawn, feed stdin, read stdout line by line, keep stderr
//! in `<out>/nodes/<id>.log`, and the process faults (kill -9 and restart,
//! SIGSTOP/SIGCONT).
//!
//! Each node runs in a process group of its own behind a guard
//! ([`crate::child`]), so a node and whatever it starts die with the run,
//! even when converge is killed. What a node writes is bounded: a line over
//! [`MAX_LINE_BYTES`] is skipped and reported, and at most
//! [`MAX_BUFFERED_BYTES`] of its lines wait for the router, after which its
//! reader stops reading and the node blocks on its own stdout.

use crate::child::{contain, CappedLines, Group, OutputLine};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub use crate::child::MAX_LINE_BYTES;

/// Most bytes of one node's stdout read but not yet routed, or queued for
/// its stdin and not yet written.
pub const MAX_BUFFERED_BYTES: usize = 16 << 20;

/// What a queued line costs beyond its text (event, allocation), counted
/// against [`MAX_BUFFERED_BYTES`] so that a flood of short lines is bounded
/// too.
const LINE_OVERHEAD: usize = 128;

/// A line a node wrote, holding its share of the node's output budget
/// until the router is done with it.
#[derive(Debug)]
pub struct NodeLine {
    text: String,
    _budget: Option<OwnedSemaphorePermit>,
}

impl std::ops::Deref for NodeLine {
    type Target = str;
    fn deref(&self) -> &str {
        &self.text
    }
}

impl From<String> for NodeLine {
    fn from(text: String) -> NodeLine {
        NodeLine {
            text,
            _budget: None,
        }
    }
}

/// What a node's reader reports to the router.
#[derive(Debug)]
pub enum NodeEvent {
    /// A line the node wrote on stdout (without the newline).
    Line {
        /// Node index.
        node: usize,
        /// Which start of the node wrote it.
        incarnation: u32,
        /// The line.
        line: NodeLine,
    },
    /// A line over [`MAX_LINE_BYTES`], reported as soon as it passes the
    /// cap: skipped, not routed.
    Oversized {
        /// Node index.
        node: usize,
        /// Which start of the node wrote it.
        incarnation: u32,
        /// Its line number on the node's stdout (1-based).
        line: u64,
    },
    /// The node's stdout closed: it exited or was killed.
    Exited {
        /// Node index.
        node: usize,
        /// Which start of the node ended.
        incarnation: u32,
        /// Exit status, as text.
        status: String,
    },
}

/// How to start a node.
#[derive(Clone, Debug)]
pub struct NodeCommand {
    /// The node binary or script.
    pub bin: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Directory for stderr logs.
    pub log_dir: PathBuf,
}

/// A running node process.
pub struct NodeProcess {
    /// Node index.
    pub node: usize,
    /// Starts so far (the first start is 0).
    pub incarnation: u32,
    child: Child,
    group: Group,
    stdin: UnboundedSender<String>,
    /// The task copying its stderr to its log.
    log_task: Option<tokio::task::JoinHandle<()>>,
    /// Bytes queued for the node's stdin and not yet written.
    queued: Arc<AtomicUsize>,
    /// Lines dropped because the node did not read its stdin.
    dropped: u64,
    paused: bool,
}

impl NodeProcess {
    /// Starts node `node` and its stdin writer and stdout reader tasks.
    pub fn spawn(
        command: &NodeCommand,
        node: usize,
        incarnation: u32,
        events: UnboundedSender<NodeEvent>,
    ) -> Result<NodeProcess> {
        let component = format!("node n{node}");
        let log_path = command.log_dir.join(format!("n{node}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| Error::io(&log_path, e))?;
        let mut spawn = Command::new(&command.bin);
        spawn
            .args(&command.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        contain(&mut spawn);
        let mut child = spawn.spawn().map_err(|e| Error::Target {
            component: component.clone(),
            message: format!("cannot start {}: {e}", command.bin.display()),
        })?;
        let group = Group::new(child.id().unwrap_or(0));
        // Its stderr reaches its log through converge, masked.
        let log_task = child
            .stderr
            .take()
            .map(|stderr| crate::child::copy_to_log(stderr, log, component.clone(), |_| {}));
        let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(Error::Target {
                component,
                message: "no stdin/stdout pipe".into(),
            });
        };
        let (tx, mut rx) = unbounded_channel::<String>();
        let queued = Arc::new(AtomicUsize::new(0));
        let written = queued.clone();
        tokio::spawn(async move {
            while let Some(line) = rx.recv().await {
                written.fetch_sub(line.len() + LINE_OVERHEAD, Ordering::Relaxed);
                // A dead node's pipe fails; the reader reports the exit.
                if stdin.write_all(line.as_bytes()).await.is_err() {
                    break;
                }
            }
        });
        tokio::spawn(read_stdout(stdout, node, incarnation, events));
        Ok(NodeProcess {
            node,
            incarnation,
            child,
            group,
            stdin: tx,
            log_task,
            queued,
            dropped: 0,
            paused: false,
        })
    }

    /// Queues a line for the node's stdin. A node that does not read its
    /// stdin (stopped, stuck) gets at most [`MAX_BUFFERED_BYTES`] queued;
    /// lines past that are dropped, like a message the network lost.
    pub fn send(&mut self, line: String) {
        let cost = line.len() + LINE_OVERHEAD;
        if self.queued.load(Ordering::Relaxed) + cost > MAX_BUFFERED_BYTES {
            if self.dropped == 0 {
                tracing::warn!(
                    "node n{} has not read {} MiB sent to it: dropping messages to it",
                    self.node,
                    MAX_BUFFERED_BYTES >> 20
                );
            }
            self.dropped += 1;
            return;
        }
        self.queued.fetch_add(cost, Ordering::Relaxed);
        let _ = self.stdin.send(line);
    }

    /// kill -9 of the node and everything it started (continued first if
    /// paused, so nothing is left stopped).
    pub async fn kill(&mut self) {
        self.group.kill();
        self.paused = false;
        let _ = self.child.wait().await;
    }

    /// How the node ended, once its stdout closed: its exit status, or that
    /// it kept running (it is then killed).
    pub async fn exit_status(&mut self) -> String {
        let status = crate::child::wait_briefly(&mut self.child).await;
        self.group.kill();
        crate::child::log_copied(&mut self.log_task).await;
        status
    }

    /// The node's process group (its guard's pid): the root of its tree.
    pub fn group_id(&self) -> u32 {
        self.group.id()
    }

    /// SIGSTOP: the node keeps its state but stops running.
    pub fn pause(&mut self) {
        self.group.pause();
        self.paused = true;
    }

    /// SIGCONT after [`NodeProcess::pause`].
    pub fn resume(&mut self) {
        if self.paused {
            self.group.resume();
            self.paused = false;
        }
    }

    /// Whether the node is stopped by [`NodeProcess::pause`].
    pub fn is_paused(&self) -> bool {
        self.paused
    }
}

/// Reads a node's stdout into events: lines within the budget, a finding
/// line for each over-long line, then the end.
async fn read_stdout(
    stdout: tokio::process::ChildStdout,
    node: usize,
    incarnation: u32,
    events: UnboundedSender<NodeEvent>,
) {
    let budget = Arc::new(Semaphore::new(MAX_BUFFERED_BYTES));
    let mut lines = CappedLines::new(BufReader::with_capacity(64 << 10, stdout), MAX_LINE_BYTES);
    let mut number: u64 = 0;
    loop {
        number += 1;
        let text = match lines.next().await {
            Ok(OutputLine::Line(text)) => text,
            Ok(OutputLine::TooLong) => {
                let over = NodeEvent::Oversized {
                    node,
                    incarnation,
                    line: number,
                };
                if events.send(over).is_err() {
                    return;
                }
                continue;
            }
            Ok(OutputLine::End) => break,
            Err(e) => {
                let _ = events.send(NodeEvent::Line {
                    node,
                    incarnation,
                    line: format!("<unreadable output: {e}>").into(),
                });
                break;
            }
        };
        // Waits while the router has not consumed this node's earlier
        // lines: the node then blocks on its full pipe, and converge's
        // memory stays bounded however fast it writes.
        let cost = (text.len() + LINE_OVERHEAD).min(MAX_BUFFERED_BYTES) as u32;
        let Ok(permit) = budget.clone().acquire_many_owned(cost).await else {
            return;
        };
        let line = NodeLine {
            text,
            _budget: Some(permit),
        };
        if events
            .send(NodeEvent::Line {
                node,
                incarnation,
                line,
            })
            .is_err()
        {
            return;
        }
    }
    let _ = events.send(NodeEvent::Exited {
        node,
        incarnation,
        status: "stdout closed".into(),
    });
}

/// The directory for node logs under a run's output directory.
pub fn log_dir(out: &Path) -> PathBuf {
    out.join("nodes")
}
