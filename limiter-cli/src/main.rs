//! The `limiter` binary; see the crate docs.

use std::process::ExitCode;

fn main() -> ExitCode {
    limiter_cli::main_with(std::env::args_os())
}
