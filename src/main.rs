//! The `converge` binary: parse, dispatch, exit with the verdict's code.

use converge::cli::{dispatch, parse_from};
use converge::verdict::EXIT_USAGE;

fn main() {
    let cli = match parse_from(std::env::args_os()) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let code = match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            EXIT_USAGE
        }
    };
    std::process::exit(code);
}
