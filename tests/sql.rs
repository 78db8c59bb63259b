//! The SQL target end to end: every `examples/*.toml` scenario on SQLite
//! (always) and on PostgreSQL (when `CONVERGE_TEST_DATABASE_URL` is set;
//! then an unreachable server fails the test), `*-ok` valid and `*-bug-*`
//! invalid; errors that must be exit 4 with the password redacted.
//!
//! Each PostgreSQL run gets its own schema, named after the test and the
//! process id, and drops it at the end, so tests run in parallel.

mod common;

use common::{converge, finish, read_json, Out};
use std::path::{Path, PathBuf};

const PG_ENV: &str = "CONVERGE_TEST_DATABASE_URL";

/// The PostgreSQL URL; under CI its absence fails the test.
fn postgres_url() -> Option<String> {
    common::postgres_url()
}

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("examples/")
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("sql-") && name.ends_with(".toml")
        })
        .collect();
    files.sort();
    assert!(
        files.len() >= 7,
        "expected the sql examples, found {files:?}"
    );
    files
}

/// Expected exit code from the file name: `*-ok.toml` valid, `*-bug-*` invalid.
fn expected(path: &Path) -> i32 {
    let name = path.file_name().unwrap().to_string_lossy();
    if name.contains("-bug-") {
        1
    } else {
        assert!(name.ends_with("-ok.toml"), "{name}: neither -ok nor -bug-");
        0
    }
}

/// A copy of the scenario that runs in its own PostgreSQL schema.
fn in_schema(example: &Path, dir: &Path, schema: &str) -> PathBuf {
    let text = std::fs::read_to_string(example).unwrap();
    assert!(text.contains("\n[target.sql]\n"), "{}", example.display());
    let text = text.replace(
        "\n[target.sql]\n",
        &format!("\n[target.sql]\nschema = \"{schema}\"\n"),
    );
    let copy = dir.join(example.file_name().unwrap());
    std::fs::write(&copy, text).unwrap();
    copy
}

fn drop_schemas(url: &str, prefix: &str) {
    sqlx::any::install_default_drivers();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::AnyConnection::connect(url)
            .await
            .unwrap_or_else(|e| panic!("{PG_ENV} is set but PostgreSQL is unreachable: {e}"));
        let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE '{prefix}%'"
        )))
        .fetch_all(&mut conn)
        .await
        .unwrap();
        for (schema,) in rows {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
            )))
            .execute(&mut conn)
            .await
            .unwrap();
        }
    });
}

fn run_example(scenario: &Path, out: &Path, url: Option<&str>, seed: u64) -> Out {
    run_example_with(scenario, out, url, seed, &[])
}

fn run_example_with(
    scenario: &Path,
    out: &Path,
    url: Option<&str>,
    seed: u64,
    args: &[&str],
) -> Out {
    let mut cmd = converge();
    cmd.arg("run")
        .arg("--scenario")
        .arg(scenario)
        .arg("--out")
        .arg(out)
        .args(["--seed", &seed.to_string(), "--no-shrink"])
        .args(args)
        .env_remove("DATABASE_URL");
    if let Some(url) = url {
        cmd.args(["--database-url", url]);
    }
    finish(&mut cmd)
}

fn check_examples(url: Option<&str>, tag: &str) {
    let dir = tempfile::tempdir().unwrap();
    for example in examples() {
        let stem = example
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .replace('-', "_");
        let schema = format!("t_{tag}_{}_{stem}", std::process::id());
        let scenario = match url {
            Some(_) => in_schema(&example, dir.path(), &schema),
            None => example.clone(),
        };
        // Reference examples settle with the defaults; a bug whose replicas
        // stay apart need not wait the default stall window here.
        let args: &[&str] = if expected(&example) == 1 {
            &["--stall-window", "3"]
        } else {
            &[]
        };
        for seed in [1, 2] {
            let out = dir.path().join(format!("{stem}-{seed}"));
            let result = run_example_with(&scenario, &out, url, seed, args);
            if let Some(url) = url {
                drop_schemas(url, &schema);
            }
            result.expect_code(expected(&example)).no_panic();
            let report = read_json(&out.join("report.json"));
            assert_eq!(report["target"], "sql", "{report:#}");
            assert!(
                report["counts"]["ops"].as_u64().unwrap() > 0,
                "{}: no ops recorded",
                example.display()
            );
        }
    }
}

#[test]
fn every_example_has_its_expected_verdict_on_sqlite() {
    check_examples(None, "sqlite");
}

#[test]
fn every_example_has_its_expected_verdict_on_postgres() {
    let Some(url) = postgres_url() else { return };
    check_examples(Some(&url), "pg");
}

#[test]
fn an_unreachable_database_is_exit_4_naming_it_without_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let example = examples()
        .into_iter()
        .find(|p| p.ends_with("sql-counter-upsert-ok.toml"))
        .unwrap();
    // Port 1 on localhost: connection refused, at once.
    let out = run_example(
        &example,
        &dir.path().join("out"),
        Some("postgres://converge:supersecret@127.0.0.1:1/nodb"),
        1,
    );
    out.expect_code(4)
        .no_panic()
        .stderr_mentions("sql replica r0")
        .stderr_mentions("postgres://converge:***@127.0.0.1:1/nodb");
    assert!(
        !out.stdout.contains("supersecret") && !out.stderr.contains("supersecret"),
        "{}",
        out.dump()
    );
}

#[test]
fn passwords_never_reach_logs_or_reports() {
    let Some(url) = postgres_url() else { return };
    // Trust authentication ignores the password, so the run succeeds with one.
    let Some((scheme_user, host)) = url.split_once('@') else {
        panic!("{PG_ENV}={url}: expected user@host")
    };
    let secret = "pw-never-printed-42";
    let with_password = if scheme_user
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.starts_with("//"))
    {
        url.clone()
    } else {
        format!("{scheme_user}:{secret}@{host}")
    };
    let password = with_password
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .and_then(|(user, _)| user.split_once(':'))
        .map(|(_, p)| p.to_string())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let example = examples()
        .into_iter()
        .find(|p| p.ends_with("sql-counter-bug-rmw-read-committed.toml"))
        .unwrap();
    let schema = format!("t_redact_{}", std::process::id());
    let scenario = in_schema(&example, dir.path(), &schema);
    let out_dir = dir.path().join("out");
    let out = run_example(&scenario, &out_dir, Some(&with_password), 3);
    drop_schemas(&url, &schema);
    out.expect_code(1).no_panic();
    assert!(out.stdout.contains("reproduce:"), "{}", out.dump());
    let mut texts = vec![out.stdout.clone(), out.stderr.clone()];
    for entry in std::fs::read_dir(&out_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            texts.push(std::fs::read_to_string(&path).unwrap_or_default());
        }
    }
    for text in texts {
        assert!(!text.contains(&password), "the password leaked:\n{text}");
    }
}

/// A counter scenario whose increment or read is `broken` by a replacement.
fn broken_counter(dir: &Path, replace: (&str, &str)) -> PathBuf {
    let text = r#"workload = "g-counter"
writers = 2
ops = 40
keys = 1
read_ratio = 0.5
[target.sql]
setup = ["CREATE TABLE counter (k BIGINT PRIMARY KEY, v BIGINT NOT NULL)"]
[target.sql.ops]
increment = ["INSERT INTO counter (k, v) VALUES (:key, :delta) ON CONFLICT (k) DO UPDATE SET v = counter.v + excluded.v"]
[target.sql.read]
sql = "SELECT v FROM counter WHERE k = :key"
column = "v"
"#;
    assert!(text.contains(replace.0), "no `{}`", replace.0);
    let file = dir.join("broken.toml");
    std::fs::write(&file, text.replace(replace.0, replace.1)).unwrap();
    file
}

#[test]
fn writes_that_mostly_fail_alike_are_a_config_error_naming_the_statement() {
    // The increment names a table that does not exist: every increment
    // fails the same way. That is the scenario's mistake, not a verdict.
    let dir = tempfile::tempdir().unwrap();
    let file = broken_counter(
        dir.path(),
        (
            "INSERT INTO counter (k, v)",
            "INSERT INTO no_such_table (k, v)",
        ),
    );
    let out_dir = dir.path().join("out");
    run_example(&file, &out_dir, None, 1)
        .expect_code(3)
        .no_panic()
        .stderr_mentions("no_such_table")
        .stderr_mentions("writes failed with the same error");
    assert!(
        out_dir.join("history.jsonl").exists(),
        "the history is kept"
    );
}

#[test]
fn a_statement_timeout_on_sqlite_is_refused_naming_it_in_ms() {
    // SQLite has no statement timeout: the setting would be ignored.
    let dir = tempfile::tempdir().unwrap();
    let file = broken_counter(
        dir.path(),
        (
            "[target.sql]\n",
            "[target.sql]\nstatement_timeout_ms = 250\n",
        ),
    );
    run_example(&file, &dir.path().join("out"), None, 1)
        .expect_code(3)
        .no_panic()
        .stderr_mentions("statement_timeout_ms = 250")
        .stderr_mentions("PostgreSQL only");
}

#[test]
fn a_read_column_the_query_does_not_return_is_a_config_error() {
    // Misspelled, the column would read as 0: "lost increments" about a
    // target that lost nothing.
    let dir = tempfile::tempdir().unwrap();
    let file = broken_counter(dir.path(), ("column = \"v\"", "column = \"value\""));
    run_example(&file, &dir.path().join("out"), None, 1)
        .expect_code(3)
        .no_panic()
        .stderr_mentions("column = \"value\"")
        .stderr_mentions("SELECT v FROM counter");
    // The same scenario spelled right is valid: the test can tell them apart.
    let file = broken_counter(dir.path(), ("column = \"v\"", "column = \"v\""));
    run_example(&file, &dir.path().join("ok"), None, 1)
        .expect_code(0)
        .no_panic();
}

#[test]
fn a_read_query_that_always_fails_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = broken_counter(
        dir.path(),
        (
            "sql = \"SELECT v FROM counter WHERE k = :key\"",
            "sql = \"SELECT v FROM countr WHERE k = :key\"",
        ),
    );
    run_example(&file, &dir.path().join("out"), None, 1)
        .expect_code(3)
        .no_panic()
        .stderr_mentions("target.sql.read")
        .stderr_mentions("countr");
}

#[test]
fn a_stall_window_past_the_settle_limit_is_refused_from_the_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let file = broken_counter(
        dir.path(),
        (
            "workload = ",
            "stall_window = 50\nsettle_limit = 40\nworkload = ",
        ),
    );
    run_example(&file, &dir.path().join("out"), None, 1)
        .expect_code(3)
        .no_panic()
        .stderr_mentions("--stall-window");
}

#[test]
fn max_rounds_is_refused_on_the_sql_target() {
    let dir = tempfile::tempdir().unwrap();
    let file = broken_counter(dir.path(), ("column = \"v\"", "column = \"v\""));
    let out = finish(
        converge()
            .args(["run", "--scenario"])
            .arg(&file)
            .args(["--max-rounds", "5"]),
    );
    out.expect_code(3)
        .no_panic()
        .stderr_mentions("--max-rounds");
}
