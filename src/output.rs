//! Everything converge prints goes through here: the crate's `println!`,
//! `print!`, `eprintln!` and `eprint!` are these macros, which shadow the
//! standard ones for every module declared after this one. Each piece of
//! text is masked ([`crate::secrets::mask`]) and written whole; a closed pipe
//! (`converge run | head -1`) silences that stream instead of panicking, and
//! any other write error (a full disk, `> /dev/full`) is kept for
//! [`exit_code`] to report, naming the file, with exit code 3.

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// `println!` through [`print_stdout`].
macro_rules! println {
    () => {
        $crate::output::print_stdout(::std::format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::print_stdout(::std::format_args!("{}\n", ::std::format_args!($($arg)*)))
    };
}

/// `print!` through [`print_stdout`].
macro_rules! print {
    ($($arg:tt)*) => {
        $crate::output::print_stdout(::std::format_args!($($arg)*))
    };
}

/// `eprintln!` through [`print_stderr`].
macro_rules! eprintln {
    () => {
        $crate::output::print_stderr(::std::format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::print_stderr(::std::format_args!("{}\n", ::std::format_args!($($arg)*)))
    };
}

/// `eprint!` through [`print_stderr`].
#[allow(unused_macros)] // for the module that needs it next
macro_rules! eprint {
    ($($arg:tt)*) => {
        $crate::output::print_stderr(::std::format_args!($($arg)*))
    };
}

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
static STDERR_CLOSED: AtomicBool = AtomicBool::new(false);
/// The first write error that was not a closed pipe: (stream, file, error).
static FAILURE: Mutex<Option<(&'static str, String, io::Error)>> = Mutex::new(None);

/// Writes masked text to stdout.
pub fn print_stdout(args: fmt::Arguments<'_>) {
    write_masked(&mut io::stdout().lock(), args, &STDOUT_CLOSED, "stdout", 1);
}

/// Writes masked text to stderr.
pub fn print_stderr(args: fmt::Arguments<'_>) {
    write_masked(&mut io::stderr().lock(), args, &STDERR_CLOSED, "stderr", 2);
}

fn write_masked(
    out: &mut impl Write,
    args: fmt::Arguments<'_>,
    closed: &AtomicBool,
    stream: &'static str,
    fd: u32,
) {
    if closed.load(Ordering::Relaxed) {
        return;
    }
    let text = match args.as_str() {
        Some(s) => crate::secrets::mask(s).into_owned(),
        None => crate::secrets::mask(&args.to_string()).into_owned(),
    };
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        closed.store(true, Ordering::Relaxed);
        if e.kind() != io::ErrorKind::BrokenPipe {
            let file = std::fs::read_link(format!("/proc/self/fd/{fd}"))
                .map_or_else(|_| stream.to_string(), |p| p.display().to_string());
            let mut failure = FAILURE.lock().unwrap_or_else(|p| p.into_inner());
            failure.get_or_insert((stream, file, e));
        }
    }
}

/// The exit code once output is done: `code`, unless writing stdout or
/// stderr failed for another reason than a closed pipe, which is an I/O
/// error naming the file (exit 3), reported on stderr if it still works.
pub fn exit_code(code: i32) -> i32 {
    let failure = FAILURE.lock().unwrap_or_else(|p| p.into_inner()).take();
    match failure {
        None => code,
        Some((stream, file, e)) => {
            if stream != "stderr" {
                let _ = writeln!(io::stderr(), "error: writing {stream} ({file}): {e}");
            }
            crate::verdict::EXIT_USAGE
        }
    }
}
