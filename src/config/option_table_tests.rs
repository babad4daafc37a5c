//! The option table in [`crate::cli::options`] against the real flags and validation:
//! the same flags as `--help`, the same arity as the derper-spelling table, every valid
//! example accepted and every invalid one refused by [`Config::from_flags`].

use argh::FromArgs;

use super::derper::{normalize_args, Arity, KNOWN_FLAGS};
use super::{Config, ConfigError};
use crate::cli::options::{Kind, OptionSpec, OPTIONS};
use crate::cli::{Flags, PROGRAM_NAME};

/// The long flags `--help` lists.
fn help_flags() -> Vec<String> {
    let help = match Flags::from_args(&[PROGRAM_NAME], &["--help"]) {
        Err(early) => early.output,
        Ok(_) => String::new(),
    };
    let options = help.split("Options:").nth(1).unwrap_or_default();
    let options = options.split("\n\n").next().unwrap_or_default();
    options
        .lines()
        .filter_map(|line| {
            let trimmed = line.trim_start();
            if line.len() - trimmed.len() > 4 || !trimmed.starts_with('-') {
                return None;
            }
            let names = trimmed.split("  ").next().unwrap_or_default();
            names
                .split(", ")
                .find(|name| name.starts_with("--"))
                .map(|name| String::from(name.trim()))
        })
        .collect()
}

/// Validates a command line the way the server does (derper spellings, argh, checks).
fn check(args: &[String]) -> Result<Config, String> {
    let normalized = normalize_args(args).map_err(|err| err.to_string())?;
    let refs: Vec<&str> = normalized.iter().map(String::as_str).collect();
    let flags = Flags::from_args(&[PROGRAM_NAME], &refs).map_err(|early| early.output)?;
    Config::from_flags(&flags).map_err(|err| err.to_string())
}

/// The flag's command line for `value`, after the flags of `spec.with`.
fn command_line(spec: &OptionSpec, value: &str) -> Vec<String> {
    let mut args = Vec::new();
    for (name, with_value) in spec.with {
        let flag = format!("--{}", name.replace('_', "-"));
        let with_spec = OPTIONS.iter().find(|s| s.flag == flag);
        let with_spec = with_spec.unwrap_or_else(|| panic!("{}: unknown {name}", spec.flag));
        args.push(flag);
        if with_spec.kind != Kind::Switch {
            args.push(String::from(*with_value));
        }
    }
    match spec.kind {
        Kind::Switch => args.push(String::from(spec.flag)),
        // A default-true boolean takes its value after `=` (Go's spelling).
        Kind::Value if spec.datatype == "bool" => args.push(format!("{}={value}", spec.flag)),
        _ => args.extend([String::from(spec.flag), String::from(value)]),
    }
    args
}

#[test]
fn table_and_help_name_the_same_flags() {
    let mut help = help_flags();
    let mut table: Vec<String> = OPTIONS.iter().map(|s| String::from(s.flag)).collect();
    assert_eq!(help, table, "table order follows --help");
    help.sort();
    table.sort();
    table.dedup();
    assert_eq!(help.len(), OPTIONS.len(), "a flag is in the table twice");
    assert_eq!(help, table);
}

#[test]
fn table_kinds_agree_with_the_derper_spelling_table() {
    for spec in OPTIONS {
        let arity = KNOWN_FLAGS
            .iter()
            .find(|(_, long, _)| *long == spec.flag)
            .map(|(_, _, arity)| *arity);
        let arity = arity.unwrap_or_else(|| panic!("{} missing from KNOWN_FLAGS", spec.flag));
        let expected: &[Arity] = match spec.kind {
            Kind::Value => &[Arity::Value, Arity::Bool],
            Kind::List => &[Arity::Repeated],
            Kind::Switch => &[Arity::Switch],
            Kind::CommandLineOnly => &[Arity::Switch, Arity::Value],
        };
        assert!(expected.contains(&arity), "{}", spec.flag);
        // A default-true boolean is a value in UCI, spelled as validate_data's 0/1.
        if arity == Arity::Bool {
            assert_eq!(spec.datatype, "bool", "{}", spec.flag);
        }
    }
    for (_, long, _) in KNOWN_FLAGS {
        assert!(
            OPTIONS.iter().any(|spec| spec.flag == *long),
            "{long} missing from the option table"
        );
    }
}

#[test]
fn every_valid_example_is_accepted() {
    for spec in OPTIONS.iter().filter(|s| s.kind != Kind::CommandLineOnly) {
        let Some(valid) = spec.valid else {
            assert!(spec.invalid.is_some(), "{}: no example at all", spec.flag);
            continue;
        };
        let args = command_line(spec, valid);
        let wants_feature = spec.feature.filter(|feature| match *feature {
            "https-admission" => !cfg!(feature = "https-admission"),
            "port-mapping" => !cfg!(feature = "port-mapping"),
            "tls-client" => !cfg!(feature = "tls-client"),
            _ => false,
        });
        match check(&args) {
            Ok(_) => assert!(
                wants_feature.is_none(),
                "{args:?} accepted without the feature"
            ),
            Err(err) if wants_feature.is_some() => {
                let feature = wants_feature.unwrap_or_default();
                assert!(err.contains(&format!("{feature} cargo feature")), "{err}")
            }
            Err(err) => panic!("{args:?}: {err}"),
        }
        // The UCI spelling of a switch's default and a list item alone.
        if spec.kind == Kind::List && wants_feature.is_none() {
            let item = [String::from(spec.flag), String::from(valid)];
            let twice = [args.clone(), item.to_vec()].concat();
            assert!(check(&twice).is_ok(), "{twice:?}");
        }
    }
}

#[test]
fn every_invalid_example_is_refused_naming_the_option() {
    for spec in OPTIONS {
        let Some(invalid) = spec.invalid else {
            continue;
        };
        // Refused on its own, without the options its valid example needs.
        let alone = OptionSpec { with: &[], ..*spec };
        let args = command_line(&alone, invalid);
        let err: ConfigError = match normalize_args(&args) {
            Err(err) => err,
            Ok(normalized) => {
                let refs: Vec<&str> = normalized.iter().map(String::as_str).collect();
                let flags = Flags::from_args(&[PROGRAM_NAME], &refs).unwrap();
                Config::from_flags(&flags).unwrap_err()
            }
        };
        assert_eq!(err.flag(), spec.flag, "{args:?}: {err}");
        assert_eq!(err.uci_option(), spec.uci_name());
        assert!(!err.label().is_empty());
    }
}

#[test]
fn invalid_examples_of_switches_do_not_exist() {
    for spec in OPTIONS.iter().filter(|s| s.kind == Kind::Switch) {
        assert_eq!(spec.invalid, None, "{}", spec.flag);
        assert_eq!(spec.datatype, "bool", "{}", spec.flag);
    }
}
