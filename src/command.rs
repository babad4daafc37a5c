//! From process arguments to what the program should do: run the relay, print the DERP
//! map, or only check the options (`validate`, run by the init script before it starts
//! an instance); or exit at once for help, version and usage errors.
//!
//! This is the one place that joins [`crate::cli`] (flag definitions) and
//! [`crate::config`] (derper spellings and validation), so neither imports the other
//! back.

use argh::FromArgs;

use crate::cli::{
    Flags, CHECK_COMMAND, CHECK_JSON, DERPMAP_COMMAND, EXIT_OK, EXIT_USAGE, HELP_TRIGGERS,
    PROGRAM_NAME, STATUS_COMMAND, VALIDATE_COMMAND, VERSION,
};
use crate::config::derper::{flag_positions, normalize_args};
use crate::config::{Config, ConfigError};

/// What the program should do, with its validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run the relay.
    Serve(Config),
    /// Print the DERP map snippets (needs the certificate pin) and exit.
    DerpMap(Config),
    /// The options are valid: exit 0.
    Validate(Config),
    /// Check reachability (see [`crate::check`]) and exit; `json` selects JSON output.
    Check {
        /// The server's configuration.
        config: Config,
        /// `--json` was given.
        json: bool,
    },
    /// Print the running relay's counters (fetched from its status socket) and exit.
    Status(StatusQuery),
}

/// What `tinyderp status` asks the running relay for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusQuery {
    /// The relay's configuration (where its status socket is).
    pub config: Config,
    /// `--json`: the counters, learn mode's refused keys and the mesh peers as JSON.
    pub json: bool,
}

/// The program should exit now, printing `output`: help, version, or a usage error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliExit {
    /// Process exit status: [`EXIT_OK`] or [`EXIT_USAGE`].
    pub code: i32,
    /// Text to print (no trailing newline needed).
    pub output: String,
    /// Print to stderr (errors) rather than stdout (help, version).
    pub to_stderr: bool,
}

impl CliExit {
    fn usage_error(problem: &str) -> CliExit {
        CliExit {
            code: EXIT_USAGE,
            output: format!("{PROGRAM_NAME}: {problem}"),
            to_stderr: true,
        }
    }

    /// A refused option; `validate` also names its UCI spelling, for `logread`.
    fn config_error(err: &ConfigError, validating: bool) -> CliExit {
        if validating {
            CliExit::usage_error(&format!("option {}: {err}", err.uci_option()))
        } else {
            CliExit::usage_error(&err.to_string())
        }
    }

    /// Prints the output, with a trailing newline, to the stream it belongs on.
    pub fn print(&self) {
        let text = self.output.trim_end_matches('\n');
        if self.to_stderr {
            eprintln!("{text}");
        } else {
            println!("{text}");
        }
    }
}

/// Parses the process arguments, `std::env::args()` as is: `args[0]` is the program
/// name and is ignored. A `derpmap` or `validate` word among the options (normally
/// first: `tinyderp derpmap [options]`) selects [`Command::DerpMap`] or
/// [`Command::Validate`].
pub fn parse(args: &[String]) -> Result<Command, CliExit> {
    let rest = args.get(1..).unwrap_or_default();
    let validating_word = rest.first().is_some_and(|word| word == VALIDATE_COMMAND);
    let mut normalized =
        normalize_args(rest).map_err(|err| CliExit::config_error(&err, validating_word))?;
    let in_flag_position = flag_positions(&normalized);
    // `--help` anywhere shows the help, even after other options (argh would refuse).
    let wants_help = in_flag_position
        .iter()
        .filter_map(|index| normalized.get(*index))
        .any(|token| HELP_TRIGGERS.contains(&token.as_str()));
    if wants_help {
        return Err(help());
    }
    let command_at = in_flag_position.iter().copied().find(|index| {
        normalized.get(*index).is_some_and(|token| {
            token == DERPMAP_COMMAND
                || token == VALIDATE_COMMAND
                || token == CHECK_COMMAND
                || token == STATUS_COMMAND
        })
    });
    let command_word = command_at.map(|index| normalized.remove(index));
    // `check --json`, `status --json`: the one option that belongs to the command, not to
    // the server.
    let mut json = false;
    if matches!(
        command_word.as_deref(),
        Some(CHECK_COMMAND | STATUS_COMMAND)
    ) {
        if let Some(at) = normalized.iter().position(|token| token == CHECK_JSON) {
            normalized.remove(at);
            json = true;
        }
    }
    let refs: Vec<&str> = normalized.iter().map(String::as_str).collect();
    let flags = Flags::from_args(&[PROGRAM_NAME], &refs).map_err(|early| match early.status {
        Ok(()) => CliExit {
            code: EXIT_OK,
            output: early.output,
            to_stderr: false,
        },
        Err(()) => CliExit::usage_error(&one_line(&early.output)),
    })?;
    if flags.version {
        return Err(CliExit {
            code: EXIT_OK,
            output: format!("{PROGRAM_NAME} {VERSION}"),
            to_stderr: false,
        });
    }
    let validating = command_word.as_deref() == Some(VALIDATE_COMMAND);
    let config =
        Config::from_flags(&flags).map_err(|err| CliExit::config_error(&err, validating))?;
    Ok(match command_word.as_deref() {
        Some(DERPMAP_COMMAND) => Command::DerpMap(config),
        Some(VALIDATE_COMMAND) => Command::Validate(config),
        Some(CHECK_COMMAND) => Command::Check { config, json },
        Some(STATUS_COMMAND) => Command::Status(StatusQuery { config, json }),
        _ => Command::Serve(config),
    })
}

/// The full `--help` text, as an exit with status 0 on stdout.
fn help() -> CliExit {
    let output = match Flags::from_args(&[PROGRAM_NAME], &["--help"]) {
        Err(early) => early.output,
        Ok(_) => String::new(),
    };
    CliExit {
        code: EXIT_OK,
        output,
        to_stderr: false,
    }
}

/// argh's error text as one line, with a pointer to the help.
fn one_line(text: &str) -> String {
    let joined: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    format!(
        "{} (see {PROGRAM_NAME} --help)",
        joined.join(" ").trim_end_matches('.')
    )
}

#[cfg(test)]
mod tests;
