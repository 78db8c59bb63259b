//! A service converge starts itself: spawn, read the replica URLs it prints
//! (when asked to), wait for health, sample its RSS and CPU from /proc for
//! the whole run, kill and restart it for the `crash` fault, and stop it
//! with SIGTERM then SIGKILL after a grace period.

use super::config::StartConfig;
use crate::error::{Error, Result};
use crate::report::ServiceFigures;
use parking_lot::Mutex;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// A running service process.
pub struct Service {
    start: StartConfig,
    command: Vec<String>,
    log: PathBuf,
    configured: Vec<String>,
    child: Option<Child>,
    urls_rx: Option<mpsc::UnboundedReceiver<String>>,
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
            urls_rx: None,
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
        let stderr = log.try_clone().map_err(|e| Error::io(&self.log, e))?;
        let mut child = Command::new(&self.command[0])
            .args(&self.command[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                target_error(
                    "service",
                    format!("cannot start `{}`: {e}", self.command.join(" ")),
                )
            })?;
        self.pid.store(child.id().unwrap_or(0), Ordering::SeqCst);
        // Drain stdout for the whole life of the process, so it never blocks
        // on a full pipe, copying it to the log and passing on replica URLs.
        let (tx, rx) = mpsc::unbounded_channel();
        if let Some(stdout) = child.stdout.take() {
            let mut log = tokio::fs::File::from_std(log);
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(url) = listening_url(&line) {
                        let _ = tx.send(url);
                    }
                    let _ = log.write_all(format!("{line}\n").as_bytes()).await;
                }
            });
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
            match tokio::time::timeout(left, rx.recv()).await {
                Ok(Some(url)) => urls.push(url),
                Ok(None) | Err(_) => {
                    return Err(target_error(
                        "service",
                        format!(
                            "printed {} of {want} `listening on URL` lines within {} ms (its output is in {})",
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
                        return Err(target_error(
                            "service",
                            format!(
                                "exited with {status} before {url} answered (its output is in {})",
                                self.log.display()
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
                            "not healthy within {} ms (last: {last}; service output in {})",
                            self.start.startup_timeout_ms,
                            self.log.display()
                        ),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// The `crash` fault: SIGKILL, then start again and wait for health.
    pub async fn crash_and_restart(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
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
        if let Some(pid) = child.id() {
            // SAFETY: kill(2) on the pid of a child we own and have not reaped.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGTERM);
            }
        }
        let grace = Duration::from_millis(self.start.grace_ms);
        match tokio::time::timeout(grace, child.wait()).await {
            Ok(Ok(status)) => format!("stopped by SIGTERM ({status})"),
            _ => {
                let _ = child.kill().await;
                format!(
                    "did not stop within {} ms of SIGTERM: killed",
                    self.start.grace_ms
                )
            }
        }
    }
}

/// Samples a process's RSS and CPU from /proc every `period` until the
/// returned stop sender fires or is dropped; follows the pid across restarts.
pub fn sample(
    pid: Arc<AtomicU32>,
    period: Duration,
) -> (tokio::sync::oneshot::Sender<()>, Arc<Mutex<ServiceFigures>>) {
    let figures = Arc::new(Mutex::new(ServiceFigures::default()));
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let shared = figures.clone();
    tokio::spawn(async move {
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let mut rss_sum = 0.0;
        let mut last: Option<(u32, f64)> = None;
        loop {
            let p = pid.load(Ordering::SeqCst);
            if p != 0 {
                if let Some((rss, cpu)) = read_proc(p, ticks) {
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

/// (RSS MB, CPU seconds) of a process, from /proc/<pid>/{status,stat}.
fn read_proc(pid: u32, ticks: f64) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((kb / 1024.0, (utime + stime) / ticks))
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
        let (rss, cpu) = read_proc(std::process::id(), 100.0).expect("own /proc entry");
        assert!(rss > 0.0);
        assert!(cpu >= 0.0);
    }
}
