//! Running the `converge` binary from integration tests: one child per
//! call, `CI=1` so no progress bar is drawn, and helpers that fail with the
//! whole output when an expectation does not hold.
#![allow(dead_code)] // each test file uses a different subset

use serde_json::Value;
use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Stdio};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_converge");

/// What a finished child left.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Both streams, for failure messages.
    pub fn dump(&self) -> String {
        format!(
            "exit {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    /// Asserts the exit code, showing the output when it differs.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "unexpected exit code\n{}", self.dump());
        self
    }

    /// Asserts that nothing panicked.
    pub fn no_panic(&self) -> &Self {
        for (name, text) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            assert!(
                !text.contains("panicked") && !text.contains("RUST_BACKTRACE"),
                "a panic reached {name}\n{}",
                self.dump()
            );
        }
        self
    }

    /// The seed printed as `seed: N` on stderr.
    pub fn seed(&self) -> u64 {
        self.stderr
            .lines()
            .find_map(|l| l.strip_prefix("seed: "))
            .unwrap_or_else(|| panic!("no `seed: ` line on stderr\n{}", self.dump()))
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("seed is not a number ({e})\n{}", self.dump()))
    }

    /// Asserts that `needle` is on stdout or stderr.
    pub fn mentions(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle) || self.stderr.contains(needle),
            "the output does not mention `{needle}`\n{}",
            self.dump()
        );
        self
    }

    /// Asserts that `needle` is on stderr.
    pub fn stderr_mentions(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr does not mention `{needle}`\n{}",
            self.dump()
        );
        self
    }
}

pub fn converge() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env("CI", "1");
    cmd
}

pub fn finish(cmd: &mut Command) -> Out {
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
    Out {
        code: output
            .status
            .code()
            .unwrap_or_else(|| panic!("converge died by a signal: {:?}", output.status)),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs `converge ARGS` with `CI=1`.
pub fn cli<I, S>(args: I) -> Out
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    finish(converge().args(args))
}

/// `converge run ARGS --out DIR`.
pub fn run_into(dir: &Path, args: &[&str]) -> Out {
    finish(converge().arg("run").args(args).arg("--out").arg(dir))
}

pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON ({e}):\n{text}", path.display()))
}

pub fn parse_json(text: &str, what: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{what} is not JSON ({e}):\n{text}"))
}

/// `value[key]`, failing with the whole document when it is missing.
pub fn field<'a>(value: &'a Value, path: &str) -> &'a Value {
    let mut v = value;
    for key in path.split('.') {
        v = v
            .get(key)
            .unwrap_or_else(|| panic!("no field `{path}` in {value:#}"));
    }
    v
}

pub fn string<'a>(value: &'a Value, path: &str) -> &'a str {
    field(value, path)
        .as_str()
        .unwrap_or_else(|| panic!("`{path}` is not a string in {value:#}"))
}

/// Runs a `converge run ...` command line printed by the tool, with its
/// `--out` pointed at `out` instead. The line is split on whitespace.
pub fn rerun(command: &str, out: &Path) -> Out {
    let words: Vec<&str> = command.split_whitespace().collect();
    assert!(
        words.len() > 2 && words[0] == "converge" && words[1] == "run",
        "not a `converge run` command: {command}"
    );
    let mut args: Vec<&OsStr> = Vec::new();
    let mut saw_out = false;
    let mut rest = words[1..].iter();
    while let Some(w) = rest.next() {
        if *w == "--out" {
            rest.next()
                .unwrap_or_else(|| panic!("--out without a value: {command}"));
            saw_out = true;
        } else {
            args.push(OsStr::new(w));
        }
    }
    assert!(saw_out, "the command names no --out: {command}");
    finish(converge().args(args).arg("--out").arg(out))
}

/// Drops the Postgres schemas `<prefix>_r0..` that a test's `converge serve`
/// created (on a thread of its own, so async tests may call it too).
pub fn drop_serve_schemas(url: &str, prefix: &str, replicas: usize) {
    let (url, prefix) = (url.to_string(), prefix.to_string());
    let _ = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            sqlx::any::install_default_drivers();
            if let Ok(pool) = sqlx::AnyPool::connect(&url).await {
                for r in 0..replicas {
                    let drop = format!("DROP SCHEMA IF EXISTS {prefix}_r{r} CASCADE");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&pool).await;
                }
            }
        });
    })
    .join();
}

/// One line per check, for failure messages: `name=verdict (summary)`.
pub fn summary(checks: &[converge::checker::Check]) -> String {
    checks
        .iter()
        .map(|c| format!("{}={} ({})", c.name, c.verdict, c.summary))
        .collect::<Vec<_>>()
        .join("; ")
}

/// True under CI (`CI` set to anything but empty, `0` or `false`): there a
/// test whose requirement is missing fails instead of not running.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"))
}

/// Whether the calling test can run: `missing` is `None` when its
/// requirement is there, else what is missing. Under CI a missing
/// requirement fails the test; elsewhere the test says on the terminal that
/// it did NOT run (past the harness's capture, so it is not taken for a
/// pass) and the caller returns.
pub fn requirement(missing: Option<String>) -> bool {
    let Some(missing) = missing else {
        return true;
    };
    // The harness names each test's thread after the test.
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    if under_ci() {
        panic!("{test} cannot run under CI: {missing}");
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "NOT RUN: {test}: {missing} (under CI=true this fails)"
    );
    false
}

/// The PostgreSQL URL the tests use (`CONVERGE_TEST_DATABASE_URL`), or
/// `None` once [`requirement`] has reported it missing.
pub fn postgres_url() -> Option<String> {
    let url = std::env::var("CONVERGE_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty());
    let missing = url
        .is_none()
        .then(|| "CONVERGE_TEST_DATABASE_URL is not set".to_string());
    requirement(missing).then_some(url).flatten()
}

/// Whether `python3` runs (the maelstrom reference nodes need it), after
/// [`requirement`] has reported it missing if it does not.
pub fn python3() -> bool {
    let ok = Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    requirement((!ok).then(|| "python3 is not installed".to_string()))
}

/// A folder of `../shared` (the corpora next to the repository), or `None`
/// once [`requirement`] has reported it missing.
pub fn shared_dir(relative: &str) -> Option<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared")
        .join(relative);
    let missing = (!dir.is_dir()).then(|| format!("{} is not there", dir.display()));
    requirement(missing).then_some(dir)
}
