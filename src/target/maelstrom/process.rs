//! Node processes: spawn, feed stdin, read stdout line by line, keep stderr
//! in `<out>/nodes/<id>.log`, and the process faults (kill -9 and restart,
//! SIGSTOP/SIGCONT).

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

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
        line: String,
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
    stdin: UnboundedSender<String>,
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
        let mut child = Command::new(&command.bin)
            .args(&command.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Error::Target {
                component: component.clone(),
                message: format!("cannot start {}: {e}", command.bin.display()),
            })?;
        let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(Error::Target {
                component,
                message: "no stdin/stdout pipe".into(),
            });
        };
        let (tx, mut rx) = unbounded_channel::<String>();
        tokio::spawn(async move {
            while let Some(line) = rx.recv().await {
                // A dead node's pipe fails; the reader reports the exit.
                if stdin.write_all(line.as_bytes()).await.is_err() {
                    break;
                }
            }
        });
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            loop {
                match lines.next_line().await {
                    Ok(Some(line)) => {
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
                    Ok(None) => break,
                    Err(e) => {
                        let _ = events.send(NodeEvent::Line {
                            node,
                            incarnation,
                            line: format!("<unreadable output: {e}>"),
                        });
                        break;
                    }
                }
            }
            let _ = events.send(NodeEvent::Exited {
                node,
                incarnation,
                status: "stdout closed".into(),
            });
        });
        Ok(NodeProcess {
            node,
            incarnation,
            child,
            stdin: tx,
            paused: false,
        })
    }

    /// Queues a line for the node's stdin.
    pub fn send(&self, line: String) {
        let _ = self.stdin.send(line);
    }

    /// kill -9.
    pub async fn kill(&mut self) {
        self.resume();
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// SIGSTOP: the node keeps its state but stops running.
    pub fn pause(&mut self) {
        if let Some(pid) = self.child.id() {
            // SAFETY: sending a signal to our own child process by pid.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGSTOP) };
            self.paused = true;
        }
    }

    /// SIGCONT after [`NodeProcess::pause`].
    pub fn resume(&mut self) {
        if self.paused {
            if let Some(pid) = self.child.id() {
                // SAFETY: as in `pause`.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGCONT) };
            }
            self.paused = false;
        }
    }

    /// Whether the node is stopped by [`NodeProcess::pause`].
    pub fn is_paused(&self) -> bool {
        self.paused
    }
}

/// The directory for node logs under a run's output directory.
pub fn log_dir(out: &Path) -> PathBuf {
    out.join("nodes")
}
