//! tinyderp's server built from the same library, but with symbols and line tables, for
//! heap and instruction profiles (the shipped binary is stripped). Not the shipped build:
//! optimised for speed rather than size, and it logs nothing.

use std::process::ExitCode;

use tinyderp::command::{self, Command};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match command::parse(&args) {
        Ok(Command::Serve(config)) => match tinyderp::net::run(config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("tinyderp-profiled: {err}");
                ExitCode::FAILURE
            }
        },
        Ok(
            Command::DerpMap(_) | Command::Validate(_) | Command::Check { .. } | Command::Status(_),
        ) => {
            eprintln!(
                "tinyderp-profiled: only serves; use tinyderp for derpmap, validate, check or status"
            );
            ExitCode::from(2)
        }
        Err(exit) => {
            exit.print();
            ExitCode::from(u8::try_from(exit.code).unwrap_or(2))
        }
    }
}
