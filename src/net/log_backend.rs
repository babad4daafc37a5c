//! The process's `log` backend: one line per record on stderr, `LEVEL [target] message`,
//! without timestamps or colours (procd forwards stderr to logread, which adds its own time).
//! A few dozen lines instead of a logging crate keep router flash for the relay.

use std::io::Write;

use log::{LevelFilter, Log, Metadata, Record};

/// Writes records at or below `level` to stderr; rustls's own records only at `rustls_level`.
struct StderrLog {
    level: LevelFilter,
    rustls_level: LevelFilter,
}

impl StderrLog {
    fn level_for(&self, target: &str) -> LevelFilter {
        if target.starts_with("rustls") {
            self.rustls_level
        } else {
            self.level
        }
    }
}

/// The line written for one record (without the newline's write being separate, so lines from
/// two threads never interleave).
fn line(record: &Record<'_>) -> String {
    let target = if record.target().is_empty() {
        record.module_path().unwrap_or_default()
    } else {
        record.target()
    };
    format!(
        "{:<5} [{target}] {}\n",
        record.level().as_str(),
        record.args()
    )
}

impl Log for StderrLog {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.level_for(metadata.target())
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            // A closed or full stderr must not stop the relay: the line is dropped.
            let _ = std::io::stderr().write_all(line(record).as_bytes());
        }
    }

    fn flush(&self) {}
}

/// Installs the backend at `level` (once per process; a later call changes nothing). rustls is
/// kept at warnings unless tracing was asked for.
pub fn init(level: LevelFilter) {
    let rustls_level = if level >= LevelFilter::Trace {
        level
    } else {
        LevelFilter::Warn
    };
    let logger: &'static StderrLog = Box::leak(Box::new(StderrLog {
        level,
        rustls_level,
    }));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(level.max(rustls_level));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use log::Level;

    #[test]
    fn lines_have_the_level_padded_and_the_target() {
        let port = 8443;
        let args = format_args!("listening on {port}");
        let record = Record::builder()
            .level(Level::Info)
            .target("tinyderp::net")
            .args(args)
            .build();
        assert_eq!(line(&record), "INFO  [tinyderp::net] listening on 8443\n");
        let record = Record::builder()
            .level(Level::Error)
            .target("")
            .module_path(Some("tinyderp::cert"))
            .args(format_args!("x"))
            .build();
        assert_eq!(line(&record), "ERROR [tinyderp::cert] x\n");
    }

    #[test]
    fn rustls_is_quieter_than_the_rest() {
        let logger = StderrLog {
            level: LevelFilter::Debug,
            rustls_level: LevelFilter::Warn,
        };
        let at = |level, target| {
            logger.enabled(&Metadata::builder().level(level).target(target).build())
        };
        assert!(at(Level::Debug, "tinyderp::net"));
        assert!(!at(Level::Trace, "tinyderp::net"));
        assert!(!at(Level::Info, "rustls::server"));
        assert!(at(Level::Warn, "rustls::server"));
    }
}
