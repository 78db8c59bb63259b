//! A service converge starts itself: spawn, read the replica URLs it prints
//! (when asked to), wait for health, sample its RSS and CPU from /proc for
//! the whole run, kill and restart it for the `crash` fault, and stop it
//! with SIGTERM then SIGKILL after a grace period.
//!
//! The service runs in a process group of its own behind a guard
//! ([`crate::child`]): signals go to the whole group (a service started
//! through `sh -c` included), nothing of it outlives converge, and its RSS
//! and CPU are summed over every process of it, not just the shell's.

use super::config::StartConfig;
use crate::child::{contain, Group};
use crate::error::{Error, Result};
use crate::report::ServiceFigures;
use parking_lot::Mutex;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// A running service process.
pub struct Service {
    start: StartConfig,
    command: Vec<String>,
    log: PathBuf,
    configured: Vec<String>,
    child: Option<Child>,
    group: Option<Group>,
    urls_rx: Option<mpsc::UnboundedReceiver<String>>,
    /// The tasks copying its stdout and stderr to its log.
    log_tasks: Vec<Option<tokio::task::JoinHandle<()>>>,
    /// Replica base URLs, as configured or as the service printed them.
    pub urls: Vec<String>,
    /// Pid of the current process (0 when none), for the sampler.
    pub pid: Arc<AtomicU32>,
    /// Kill-and-restart cycles so far.
    pub restarts: u32,
}

fn target_error(component: impl Into<String>, message: impl Into<String>) -> Error {
    Error::Target {
        component: component.into(),
        message: message.into(),
    }
}

/// The URL in a `... listening on URL` line.
fn listening_url(line: &str) -> Option<String> {
    let rest = &line[line.find("listening on ")? + "listening on ".len()..];
    let url = rest.split_whitespace().next()?;
    url.starts_with("http")
        .then(|| url.trim_end_matches('/').to_string())
}

impl Service {
    /// Starts the service and waits until it is healthy.
    pub async fn start(start: &StartConfig, replicas: &[String], out: &Path) -> Result<Service> {
        let converge = std::env::current_exe()
            .map_err(|e| Error::io("current executable", e))?
            .display()
            .to_string();
        let out_text = out.display().to_string();
        let command = start
            .command
            .iter()
            .map(|a| {
                a.replace("{converge}", &converge)
                    .replace("{out}", &out_text)
            })
            .collect();
        let mut service = Service {
            start: start.clone(),
            command,
            log: out.join("service.log"),
            configured: replicas.to_vec(),
            child: None,
            group: None,
            urls_rx: None,
            log_tasks: Vec::new(),
            urls: replicas.to_vec(),
            pid: Arc::new(AtomicU32::new(0)),
            restarts: 0,
        };
        service.spawn().await?;
        Ok(service)
    }

    async fn spawn(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| Error::io(&self.log, e))?;
        let stderr_log = log.try_clone().map_err(|e| Error::io(&self.log, e))?;
        let mut spawn = Command::new(&self.command[0]);
        spawn
            .args(&self.command[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        contain(&mut spawn);
        let mut child = spawn.spawn().map_err(|e| {
            target_error(
                "service",
                format!("cannot start `{}`: {e}", self.command.join(" ")),
            )
        })?;
        let pid = child.id().unwrap_or(0);
        self.group = Some(Group::new(pid));
        self.pid.store(pid, Ordering::SeqCst);
        // Drain stdout and stderr for the whole life of the process, so it
        // never blocks on a full pipe, copying them to the log (masked) and
        // passing on replica URLs.
        let (tx, rx) = mpsc::unbounded_channel();
        self.log_tasks.clear();
        if let Some(stdout) = child.stdout.take() {
            self.log_tasks.push(Some(crate::child::copy_to_log(
                stdout,
                log,
                "the service".into(),
                move |line| {
                    if let Some(url) = listening_url(line) {
                        let _ = tx.send(url);
                    }
                },
            )));
        }
        if let Some(stderr) = child.stderr.take() {
            self.log_tasks.push(Some(crate::child::copy_to_log(
                stderr,
                stderr_log,
                "the service".into(),
                |_| {},
            )));
        }
        self.child = Some(child);
        self.urls_rx = Some(rx);
        let deadline = Instant::now() + Duration::from_millis(self.start.startup_timeout_ms);
        if self.configured.is_empty() {
            self.urls = self.discover(deadline).await?;
        }
        self.wait_healthy(deadline).await
    }

    async fn discover(&mut self, deadline: Instant) -> Result<Vec<String>> {
        let want = self.start.expect_replicas.unwrap_or(1);
        let mut urls = Vec::new();
        let rx = self.urls_rx.as_mut().expect("spawn sets the receiver");
        while urls.len() < want {
            let left = deadline.saturating_duration_since(Instant::now());
            let next = tokio::select! {
                next = tokio::time::timeout(left, rx.recv()) => next,
                _ = crate::interrupt::wait() => {
                    return Err(crate::interrupt::during("while the service started"));
                }
            };
            match next {
                Ok(Some(url)) => urls.push(url),
                Ok(None) => {
                    // Its stdout closed: it exited (or closed it), say how now.
                    let status = match self.child.as_mut() {
                        Some(child) => crate::child::wait_briefly(child).await,
                        None => "not running".into(),
                    };
                    self.logs_copied().await;
                    return Err(target_error(
                        "service",
                        format!(
                            "closed its stdout ({status}) after printing {} of {want} `listening on URL` lines; {}",
                            urls.len(),
                            crate::child::describe_log(&self.log)
                        ),
                    ));
                }
                Err(_) => {
                    return Err(target_error(
                        "service",
                        format!(
                            "printed {} of {want} `listening on URL` lines within start.startup_timeout_ms = {} (its output is in {})",
                            urls.len(),
                            self.start.startup_timeout_ms,
                            self.log.display()
                        ),
                    ))
                }
            }
        }
        Ok(urls)
    }

    /// Waits for the copies of its output to reach the log (its process
    /// has exited), so the log's tail is whole.
    async fn logs_copied(&mut self) {
        for task in &mut self.log_tasks {
            crate::child::log_copied(task).await;
        }
    }

    /// The health URLs: absolute as given, or the path on every replica.
    pub fn health_urls(&self) -> Vec<String> {
        if self.start.health_url.starts_with("http") {
            vec![self.start.health_url.clone()]
        } else {
            self.urls
                .iter()
                .map(|u| format!("{u}{}", self.start.health_url))
                .collect()
        }
    }

    async fn wait_healthy(&mut self, deadline: Instant) -> Result<()> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .build()
            .map_err(|e| target_error("health client", e.to_string()))?;
        for url in self.health_urls() {
            loop {
                if let Some(child) = self.child.as_mut() {
                    if let Ok(Some(status)) = child.try_wait() {
                        self.logs_copied().await;
                        return Err(target_error(
                            "service",
                            format!(
                                "exited ({status}) before {url} answered; {}",
                                crate::child::describe_log(&self.log)
                            ),
                        ));
                    }
                }
                let last = match client.get(&url).send().await {
                    Ok(r) if r.status().is_success() => break,
                    Ok(r) => format!("HTTP {}", r.status()),
                    Err(e) => e.to_string(),
                };
                if Instant::now() >= deadline {
                    return Err(target_error(
                        format!("health {url}"),
                        format!(
                            "not healthy within start.startup_timeout_ms = {} (last: {last}; service output in {})",
                            self.start.startup_timeout_ms,
                            self.log.display()
                        ),
                    ));
                }
                if crate::interrupt::requested() {
                    return Err(crate::interrupt::during(format!(
                        "while waiting for {url} to be healthy"
                    )));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// The `crash` fault: SIGKILL, then start again and wait for health.
    pub async fn crash_and_restart(&mut self) -> Result<()> {
        if let Some(group) = self.group.take() {
            group.kill();
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.wait().await;
        }
        self.pid.store(0, Ordering::SeqCst);
        self.restarts += 1;
        self.spawn().await
    }

    /// SIGTERM, then SIGKILL if it has not exited within the grace period.
    /// Returns how it ended, for the log.
    pub async fn stop(&mut self) -> String {
        let Some(mut child) = self.child.take() else {
            return "not running".into();
        };
        self.pid.store(0, Ordering::SeqCst);
        let group = self.group.take();
        if let Some(group) = &group {
            group.terminate();
        }
        let grace = Duration::from_millis(self.start.grace_ms);
        // Whatever the main process did, the rest of its group goes too
        // (when `group` drops).
        match tokio::time::timeout(grace, child.wait()).await {
            Ok(Ok(status)) => format!("stopped by SIGTERM ({status})"),
            _ => {
                drop(group);
                let _ = child.wait().await;
                format!(
                    "did not stop within start.grace_ms = {} of SIGTERM: killed",
                    self.start.grace_ms
                )
            }
        }
    }
}

/// Samples the RSS and CPU of every process below `pid` (the service's
/// guard) from /proc every `period` until the returned stop sender fires or
/// is dropped; follows the pid across restarts.
pub fn sample(
    pid: Arc<AtomicU32>,
    period: Duration,
) -> (tokio::sync::oneshot::Sender<()>, Arc<Mutex<ServiceFigures>>) {
    let figures = Arc::new(Mutex::new(ServiceFigures::default()));
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let shared = figures.clone();
    tokio::spawn(async move {
        let mut rss_sum = 0.0;
        let mut last: Option<(u32, f64)> = None;
        loop {
            let p = pid.load(Ordering::SeqCst);
            if p != 0 {
                if let Some((rss, cpu)) = crate::child::tree_usage(p) {
                    let mut f = shared.lock();
                    f.samples += 1;
                    rss_sum += rss;
                    f.rss_peak_mb = f.rss_peak_mb.max(rss);
                    f.rss_mean_mb = rss_sum / f.samples as f64;
                    f.cpu_s += match last {
                        Some((lp, lc)) if lp == p => (cpu - lc).max(0.0),
                        _ => cpu,
                    };
                    last = Some((p, cpu));
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                _ = &mut stop_rx => return,
            }
        }
    });
    (stop_tx, figures)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_lines_give_urls() {
        assert_eq!(
            listening_url("replica 2 listening on http://127.0.0.1:4242"),
            Some("http://127.0.0.1:4242".into())
        );
        assert_eq!(listening_url("listening on port 80"), None);
        assert_eq!(listening_url("hello"), None);
    }

    #[test]
    fn this_process_can_be_sampled() {
        let (rss, cpu) =
            crate::child::process_usage(std::process::id(), 100.0).expect("own /proc entry");
        assert!(rss > 0.0);
        assert!(cpu >= 0.0);
    }
}
