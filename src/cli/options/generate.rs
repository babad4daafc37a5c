//! Writes the files generated from the option table and checks the copies on disk:
//! the init script's validation block, the shipped UCI file, the configuration
//! reference, the JSON table for the tests on real OpenWrt and the option list of the
//! LuCI settings form. `TINYDERP_BLESS=1` rewrites them instead of comparing.

use std::fmt::Write as _;
use std::path::PathBuf;

use super::{uci_options, DefaultValue, Kind, OptionSpec, OPTIONS, SCRIPT_OPTIONS};
use crate::cli::{Flags, PROGRAM_NAME};

/// First line of the generated block in `init.d/tinyderp`.
pub const INIT_BEGIN: &str =
    "# BEGIN options: generated from src/cli/options.rs by `TINYDERP_BLESS=1 cargo test --lib generated_files`; do not edit";
/// How [`INIT_BEGIN`] starts: enough to find the block.
const INIT_BEGIN_PREFIX: &str = "# BEGIN options";
/// Last line of the generated block in `init.d/tinyderp`.
pub const INIT_END: &str = "# END options";

/// How the regeneration command is named in generated files.
const BLESS: &str = "TINYDERP_BLESS=1 cargo test --lib generated_files";

/// Single-quoted for a shell or UCI file (`'` as `'\''`).
fn quoted(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

/// The UCI names of the options of `kind`, space-separated, in lines of at most 90
/// columns (continued with a backslash inside the double quotes).
fn names_of(kind: Kind) -> String {
    let mut out = String::new();
    let mut line_len = 0;
    for name in uci_options()
        .filter(|spec| spec.kind == kind)
        .map(OptionSpec::uci_name)
    {
        if line_len > 0 && line_len + name.len() + 2 > 90 {
            out.push_str(" \\\n\t");
            line_len = 8;
        } else if line_len > 0 {
            out.push(' ');
            line_len += 1;
        }
        line_len += name.len();
        out.push_str(&name);
    }
    out
}

/// The block between [`INIT_BEGIN`] and [`INIT_END`] (both included).
pub fn init_block() -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{INIT_BEGIN}");
    out.push_str(
        "# Every option below is passed to the binary: values as `--flag VALUE` when set,\n\
         # each list item as `--flag ITEM`, switches as a bare `--flag` when 1.\n",
    );
    let _ = writeln!(out, "VALUE_OPTIONS=\"{}\"", names_of(Kind::Value));
    let _ = writeln!(out, "LIST_OPTIONS=\"{}\"", names_of(Kind::List));
    let _ = writeln!(out, "SWITCH_OPTIONS=\"{}\"", names_of(Kind::Switch));
    out.push('\n');
    out.push_str(
        "# Datatypes for procd and uci_load_validate (list options item by item); the binary\n\
         # checks the rest (`tinyderp validate`). Defaults only where this script reads the value.\n",
    );
    out.push_str("validate_section_tinyderp() {\n");
    out.push_str("\tuci_load_validate \"$NAME\" tinyderp \"$1\" \"$2\"");
    let mut specs: Vec<String> = SCRIPT_OPTIONS
        .iter()
        .map(|opt| format!("{}:{}:{}", opt.name, opt.datatype, opt.default))
        .collect();
    specs.extend(uci_options().map(|spec| match spec.script_default {
        Some(default) => format!("{}:{}:{default}", spec.uci_name(), spec.datatype),
        None => format!("{}:{}", spec.uci_name(), spec.datatype),
    }));
    for spec in specs {
        let _ = write!(out, " \\\n\t\t{}", quoted(&spec));
    }
    out.push_str("\n}\n");
    let _ = writeln!(out, "{INIT_END}");
    out
}

/// The value shown on an option's commented line: the literal default, else the
/// valid example, else the refused example (for an option no value of which works).
fn shown_value(spec: &OptionSpec) -> &'static str {
    match (spec.default, spec.valid) {
        (DefaultValue::Literal(value), _) => value,
        (_, Some(value)) => value,
        _ => spec.invalid.unwrap_or(""),
    }
}

/// The default as a sentence fragment.
fn default_text(default: DefaultValue) -> String {
    match default {
        DefaultValue::Literal(value) => format!("'{value}'"),
        DefaultValue::Derived(text) | DefaultValue::Unset(text) => String::from(text),
    }
}

/// Wraps `text` into comment lines of at most `width` columns after `prefix`.
fn wrap(prefix: &str, text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && prefix.len() + line.len() + 1 + word.len() > width {
            let _ = writeln!(out, "{prefix}{line}");
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        let _ = writeln!(out, "{prefix}{line}");
    }
    out
}

/// `init.d/tinyderp.config`, installed as `/etc/config/tinyderp`.
pub fn config_file() -> String {
    let mut out = String::new();
    out.push_str(
        "# tinyderp: Tailscale-compatible DERP relay and STUN server.\n\
         # Each option is the command-line flag of the same name (`_` for `-`); every one is\n\
         # listed below, commented out, with its default (or an example where the default is\n\
         # derived from other options). Change with `uci set tinyderp.main.OPTION=VALUE` (lists:\n\
         # `uci add_list tinyderp.main.OPTION=VALUE`), then `uci commit tinyderp`: the service\n\
         # reloads itself. An invalid value starts nothing and is named in `logread -e tinyderp`.\n",
    );
    let _ = writeln!(
        out,
        "# Generated from src/cli/options.rs ({BLESS}); docs/configuration.md says more.\n"
    );
    out.push_str("config tinyderp 'main'\n");
    for opt in SCRIPT_OPTIONS {
        out.push_str(&wrap("\t# ", opt.summary, 92));
        if opt.name == "enabled" {
            let _ = writeln!(out, "\toption {} {}\n", opt.name, quoted(opt.default));
        } else {
            let _ = writeln!(out, "\t#option {} {}\n", opt.name, quoted(opt.default));
        }
    }
    for spec in uci_options() {
        let default = format!("Default: {}.", default_text(spec.default));
        out.push_str(&wrap("\t# ", &format!("{} {default}", spec.summary), 92));
        let keyword = if spec.kind == Kind::List {
            "list"
        } else {
            "option"
        };
        let _ = writeln!(
            out,
            "\t#{keyword} {} {}\n",
            spec.uci_name(),
            quoted(shown_value(spec))
        );
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

/// Each flag's description from `--help` (argh's text, joined into one line).
pub fn help_descriptions() -> Vec<(String, String)> {
    let help = match <Flags as argh::FromArgs>::from_args(&[PROGRAM_NAME], &["--help"]) {
        Err(early) => early.output,
        Ok(_) => String::new(),
    };
    let mut entries: Vec<(String, String)> = Vec::new();
    let mut in_options = false;
    for line in help.lines() {
        if line.starts_with("Options:") {
            in_options = true;
            continue;
        }
        if !in_options {
            continue;
        }
        if line.trim().is_empty() {
            if !entries.is_empty() {
                break;
            }
            continue;
        }
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if indent <= 4 && trimmed.starts_with('-') {
            // "-a, --addr  text" or "--stun-port  text"
            let (names, text) = trimmed.split_once("  ").unwrap_or((trimmed, ""));
            let flag = names
                .split(", ")
                .find(|name| name.starts_with("--"))
                .unwrap_or(names)
                .trim();
            entries.push((String::from(flag), String::from(text.trim())));
        } else if let Some((_, text)) = entries.last_mut() {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(trimmed);
        }
    }
    entries
}

/// `docs/configuration.md`.
pub fn docs() -> String {
    let help = help_descriptions();
    let described = |flag: &str| {
        help.iter()
            .find(|(name, _)| name == flag)
            .map(|(_, text)| text.clone())
            .unwrap_or_default()
    };
    let mut out = String::new();
    out.push_str("# Configuration reference\n\n");
    let _ = writeln!(
        out,
        "<!-- Generated from src/cli/options.rs and the flags' --help text by `{BLESS}`; do not edit. -->\n"
    );
    out.push_str(
        "Every option of the relay is a command-line flag and a UCI option of the same name in\n\
         `/etc/config/tinyderp`: `--stun-port 3479` is `option stun_port '3479'`. A list option\n\
         is repeated (`uci add_list tinyderp.main.extra_name='router.lan'` gives one\n\
         `--extra-name router.lan` per item); a switch is `'1'` or `'0'` in UCI and a bare flag\n\
         on the command line.\n\n\
         After `uci commit tinyderp` the service reloads. The init script checks each value's\n\
         datatype (the `validate_data` type below), then runs `tinyderp validate` with the same\n\
         flags the relay will get; if either refuses a value, no instance starts and\n\
         `logread -e tinyderp` has a line naming the option, e.g.\n\
         `tinyderp: option max_clients: --max-clients: \"-5\" is not a client count (...)`.\n\
         Run `tinyderp validate [options]` by hand to check a command line the same way.\n\n",
    );
    out.push_str("| UCI option | flag | default | what it does |\n|---|---|---|---|\n");
    for spec in uci_options() {
        let flag = if spec.kind == Kind::List {
            format!("`{}` (repeatable)", spec.flag)
        } else {
            format!("`{}`", spec.flag)
        };
        let keyword = match spec.kind {
            Kind::List => "list",
            _ => "option",
        };
        let _ = writeln!(
            out,
            "| `{keyword} {}` | {flag} | {} | {} |",
            spec.uci_name(),
            default_text(spec.default),
            spec.summary
        );
    }
    out.push_str("\n## Options\n");
    for spec in uci_options() {
        let keyword = match spec.kind {
            Kind::List => "list",
            _ => "option",
        };
        let _ = writeln!(out, "\n### `{}`\n", spec.uci_name());
        let example = match spec.kind {
            Kind::Switch => format!("`{keyword} {} '1'` = `{}`", spec.uci_name(), spec.flag),
            _ => format!(
                "`{keyword} {} {}` = `{} {}`",
                spec.uci_name(),
                quoted(shown_value(spec)),
                spec.flag,
                shown_value(spec)
            ),
        };
        let _ = writeln!(out, "{example}\n");
        let _ = writeln!(out, "{}\n", described(spec.flag));
        let _ = writeln!(
            out,
            "Default: {}. Init-script datatype: `{}`.",
            default_text(spec.default),
            spec.datatype
        );
        if !spec.with.is_empty() {
            let with: Vec<String> = spec
                .with
                .iter()
                .map(|(name, value)| format!("`{name}` ({value})"))
                .collect();
            let _ = writeln!(out, "Used together with {}.", with.join(" and "));
        }
        if let Some(feature) = spec.feature {
            let _ = writeln!(
                out,
                "Needs a build with the `{feature}` cargo feature, which the router packages \
                 leave out to save flash ([building.md](building.md#optional-features))."
            );
        }
    }
    out.push_str(
        "\n## Options only the init script reads\n\n| UCI option | default | what it does |\n|---|---|---|\n",
    );
    for opt in SCRIPT_OPTIONS {
        let _ = writeln!(
            out,
            "| `option {}` | '{}' | {} |",
            opt.name, opt.default, opt.summary
        );
    }
    out.push_str("\n## Command-line only\n\n");
    for spec in OPTIONS.iter().filter(|s| s.kind == Kind::CommandLineOnly) {
        let text = described(spec.flag);
        let _ = writeln!(out, "- `{}`: {}", spec.flag, text);
    }
    out.push_str(
        "\nderper's spellings work on the command line too: `-hostname x`, `-a :443`, `-c FILE`,\n\
         `-certmode=manual`, `-verify-clients=true`, `-tcp-keepalive-time 10m`,\n\
         `-accept-connection-limit 10`, `-accept-connection-burst 20`.\n",
    );
    out
}

/// Escapes a string for JSON.
fn json_string(value: &str) -> String {
    crate::proto::json::quote(value)
}

/// `tests/openwrt/options.json`: the UCI options with a value a default build accepts,
/// for the table-driven tests on real OpenWrt.
pub fn options_json() -> String {
    let mut entries = Vec::new();
    for spec in uci_options() {
        let (Some(valid), None) = (spec.valid, spec.feature) else {
            continue;
        };
        let opt_string =
            |value: Option<&str>| value.map_or_else(|| String::from("null"), json_string);
        let default = match spec.default {
            DefaultValue::Literal(value) => Some(value),
            _ => None,
        };
        let with: Vec<String> = spec
            .with
            .iter()
            .map(|(name, value)| format!("{}: {}", json_string(name), json_string(value)))
            .collect();
        entries.push(format!(
            "  {{\"uci\": {}, \"flag\": {}, \"kind\": {}, \"valid\": {}, \"invalid\": {}, \"default\": {}, \"with\": {{{}}}}}",
            json_string(&spec.uci_name()),
            json_string(spec.flag),
            json_string(spec.kind.json_name()),
            json_string(valid),
            opt_string(spec.invalid),
            opt_string(default),
            with.join(", ")
        ));
    }
    format!("[\n{}\n]\n", entries.join(",\n"))
}

/// The LuCI settings form's tabs, in order, with the options each shows first (in this
/// order); an option of the table not named here lands on the last tab, "advanced".
const LUCI_GROUPS: &[(&str, &str, &[&str])] = &[
    (
        "basic",
        "Basic",
        &[
            "enabled",
            "hostname",
            "addr",
            "stun_port",
            "http_port",
            "open_firewall",
            "region_id",
            "region_code",
            "region_name",
            "node_name",
        ],
    ),
    (
        "certificate",
        "Certificate",
        &[
            "certmode",
            "extra_name",
            "extra_ip",
            "certdir",
            "tls_cert",
            "tls_key",
            "no_meta_cert",
            "state_dir",
            "server_key",
        ],
    ),
    (
        "access",
        "Who may connect",
        &[
            "allowed_key",
            "log_refused_keys",
            "verify_clients",
            "socket",
            "verify_client_url",
            "verify_client_url_ca",
            "verify_client_url_fail_open",
        ],
    ),
    (
        "limits",
        "Limits",
        &[
            "max_clients",
            "client_rate",
            "client_burst",
            "total_rate",
            "rate_config",
            "accept_rate",
            "accept_burst",
        ],
    ),
    ("advanced", "Advanced", &[]),
];

/// `openwrt/luci-app-tinyderp/.../tinyderp/options.js`: every UCI option with its kind,
/// `validate_data` datatype, default, tab and summary, for the LuCI settings form.
pub fn luci_options() -> String {
    struct Entry {
        name: String,
        kind: &'static str,
        datatype: &'static str,
        default: Option<&'static str>,
        summary: &'static str,
    }
    let mut all: Vec<Entry> = SCRIPT_OPTIONS
        .iter()
        .map(|opt| Entry {
            name: opt.name.to_string(),
            kind: "value",
            datatype: opt.datatype,
            default: Some(opt.default),
            summary: opt.summary,
        })
        .collect();
    all.extend(uci_options().map(|spec| Entry {
        name: spec.uci_name(),
        kind: spec.kind.json_name(),
        datatype: spec.datatype,
        default: match spec.default {
            DefaultValue::Literal(value) => Some(value),
            _ => None,
        },
        summary: spec.summary,
    }));
    let mut lines = Vec::new();
    let mut placed = vec![false; all.len()];
    for (group, _, names) in LUCI_GROUPS {
        let mut order: Vec<usize> = names
            .iter()
            .map(|name| {
                all.iter()
                    .position(|e| e.name == *name)
                    .unwrap_or_else(|| panic!("LUCI_GROUPS names {name}, not in the table"))
            })
            .collect();
        if *group == "advanced" {
            let rest: Vec<usize> = (0..all.len())
                .filter(|i| !placed[*i] && !order.contains(i))
                .collect();
            order.extend(rest);
        }
        for i in order {
            placed[i] = true;
            let e = &all[i];
            lines.push(format!(
                "\t\t{{ name: {}, kind: {}, datatype: {}, default: {}, group: {}, summary: _({}) }}",
                json_string(&e.name),
                json_string(e.kind),
                json_string(e.datatype),
                e.default.map_or_else(|| String::from("null"), json_string),
                json_string(group),
                json_string(e.summary),
            ));
        }
    }
    let groups: Vec<String> = LUCI_GROUPS
        .iter()
        .map(|(name, title, _)| format!("\t\t[ {}, _({}) ]", json_string(name), json_string(title)))
        .collect();
    format!(
        "// Generated from src/cli/options.rs by `{BLESS}`; do not edit.\n\
         // The UCI options of /etc/config/tinyderp for the settings form: kind (value, list,\n\
         // switch), validate_data datatype as the init script checks it, default, tab, summary.\n\
         'use strict';\n'require baseclass';\n\n\
         return baseclass.extend({{\n\tgroups: [\n{}\n\t],\n\n\toptions: [\n{}\n\t]\n}});\n",
        groups.join(",\n"),
        lines.join(",\n")
    )
}

/// The repository root.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Replaces the generated block of the init script text with `block`.
fn with_init_block(script: &str, block: &str) -> Option<String> {
    let begin = script.find(INIT_BEGIN_PREFIX)?;
    let end_marker = script[begin..].find(INIT_END)? + begin;
    let end = script[end_marker..]
        .find('\n')
        .map_or(script.len(), |n| end_marker + n + 1);
    Some(format!("{}{block}{}", &script[..begin], &script[end..]))
}

#[test]
fn generated_files() {
    let bless = std::env::var_os("TINYDERP_BLESS").is_some_and(|v| v == "1");
    let init_path = root().join("init.d/tinyderp");
    let script = std::fs::read_to_string(&init_path).unwrap();
    let init = with_init_block(&script, &init_block())
        .expect("init.d/tinyderp lacks the generated-options markers");
    let files = [
        (init_path, init),
        (root().join("init.d/tinyderp.config"), config_file()),
        (root().join("docs/configuration.md"), docs()),
        (root().join("tests/openwrt/options.json"), options_json()),
        (
            root()
                .join("openwrt/luci-app-tinyderp/htdocs/luci-static/resources/tinyderp/options.js"),
            luci_options(),
        ),
    ];
    let mut stale = Vec::new();
    for (path, want) in files {
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        if have == want {
            continue;
        }
        if bless {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, want).unwrap();
        } else {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "out of date (regenerate with `{BLESS}`): {stale:?}"
    );
}

#[test]
fn help_is_parsed_for_every_flag() {
    let help = help_descriptions();
    for spec in OPTIONS {
        let text = help
            .iter()
            .find(|(name, _)| name == spec.flag)
            .map(|(_, text)| text.as_str());
        assert!(
            text.is_some_and(|t| t.len() > 10),
            "{}: {text:?}",
            spec.flag
        );
    }
}

#[test]
fn json_is_a_list_of_the_agreed_objects() {
    let value: serde_json::Value = serde_json::from_str(&options_json()).unwrap();
    let list = value.as_array().unwrap();
    assert!(list.len() > 30, "{}", list.len());
    for entry in list {
        let object = entry.as_object().unwrap();
        let keys: Vec<&str> = object.keys().map(String::as_str).collect();
        for key in ["uci", "flag", "kind", "valid", "invalid", "default", "with"] {
            assert!(keys.contains(&key), "{entry}");
        }
        assert!(object["valid"].is_string(), "{entry}");
        assert!(
            ["value", "list", "switch"].contains(&object["kind"].as_str().unwrap()),
            "{entry}"
        );
    }
}

/// The datatype names ubox's `validate_data` knows (its `validate/validate.c` table).
const VALIDATE_DATA_TYPES: &[&str] = &[
    "or",
    "and",
    "not",
    "neg",
    "list",
    "min",
    "max",
    "range",
    "minlength",
    "maxlength",
    "rangelength",
    "integer",
    "uinteger",
    "float",
    "ufloat",
    "bool",
    "string",
    "hexstring",
    "ip4addr",
    "ip6addr",
    "ipaddr",
    "cidr4",
    "cidr6",
    "cidr",
    "netmask4",
    "netmask6",
    "ipmask4",
    "ipmask6",
    "ipmask",
    "port",
    "portrange",
    "macaddr",
    "uciname",
    "wpakey",
    "wepkey",
    "hostname",
    "host",
    "network",
    "phonedigit",
    "directory",
    "device",
    "file",
    "regex",
    "uci",
];

/// The type names in a datatype expression (quoted strings and numbers skipped).
fn type_names(expression: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut word = String::new();
    let mut in_quotes = false;
    for c in expression.chars().chain(std::iter::once(',')) {
        if c == '"' {
            in_quotes = !in_quotes;
            continue;
        }
        if in_quotes {
            continue;
        }
        if c.is_ascii_alphanumeric() || c == '-' {
            word.push(c);
        } else {
            if word.starts_with(|c: char| c.is_ascii_alphabetic()) {
                names.push(word.clone());
            }
            word.clear();
        }
    }
    names
}

#[test]
fn datatypes_exist_in_validate_data() {
    let script = SCRIPT_OPTIONS.iter().map(|opt| opt.datatype);
    let flags = uci_options().map(|spec| spec.datatype);
    for expression in script.chain(flags) {
        let names = type_names(expression);
        assert!(!names.is_empty(), "{expression:?}");
        for name in names {
            assert!(
                VALIDATE_DATA_TYPES.contains(&name.as_str()),
                "{expression}: {name} is not a validate_data type"
            );
        }
    }
    assert_eq!(
        type_names("or(\"self-signed\",\"manual\")"),
        ["or"],
        "quoted words are values"
    );
    assert_eq!(type_names("range(-1,65535)"), ["range"]);
}
