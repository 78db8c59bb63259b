//! The `converge` binary: parse, dispatch, exit with the verdict's code.

use converge::cli::{dispatch, parse_from};
use converge::output::{exit_code, print_stderr, print_stdout};
use converge::verdict::EXIT_USAGE;

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    for arg in &args {
        converge::secrets::register_in(&arg.to_string_lossy());
    }
    let cli = match parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let text = e.render().to_string();
            if e.use_stderr() {
                print_stderr(format_args!("{text}"));
                std::process::exit(exit_code(EXIT_USAGE));
            }
            print_stdout(format_args!("{text}"));
            std::process::exit(exit_code(0));
        }
    };
    let code = match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            print_stderr(format_args!("error: {e:#}\n"));
            EXIT_USAGE
        }
    };
    converge::history::lock::release_all();
    std::process::exit(exit_code(code));
}
