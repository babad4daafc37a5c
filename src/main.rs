//! The `tinyderp` binary: parse the command line, start logging, run the server (or print
//! the DERP map, or check reachability), and map the outcome to an exit code: 0 ok, 1 runtime failure, 2 usage.

use std::process::ExitCode;

use tinyderp::command::{self, Command, StatusQuery};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let command = match command::parse(&args) {
        Ok(command) => command,
        Err(exit) => {
            exit.print();
            return ExitCode::from(u8::try_from(exit.code).unwrap_or(2));
        }
    };
    match command {
        Command::Validate(_) => ExitCode::SUCCESS,
        Command::Serve(config) => {
            init_logging(config.log_level);
            match tinyderp::net::run(config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    log::error!("{err}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::DerpMap(config) => {
            init_logging(config.log_level.min(log::LevelFilter::Warn));
            match tinyderp::net::cert_files::load(&config.cert_source()) {
                Ok(loaded) => {
                    let mut params = config.derp_map.clone();
                    // With --port-mapping, the ports the gateway forwards to the running relay.
                    if let Some(record) = config
                        .port_mapping
                        .then(|| tinyderp::net::portmap::read_record(&config.state_dir).ok())
                        .flatten()
                    {
                        params.derp_port = record.external_port("tcp").unwrap_or(params.derp_port);
                        params.stun_port = record.external_port("udp").or(params.stun_port);
                    }
                    println!("{}", tinyderp::derpmap::render_all(&params, &loaded.pin));
                    let peers: Vec<tinyderp::derpmap::RegionPeer> = config
                        .mesh_peers
                        .iter()
                        .map(|peer| tinyderp::derpmap::RegionPeer {
                            hostname: peer.name.clone(),
                            derp_port: peer.port,
                            pin: peer.pin.clone(),
                        })
                        .collect();
                    if let Some(region) =
                        tinyderp::derpmap::render_region(&params, &loaded.pin, &peers)
                    {
                        println!("\n{region}");
                    }
                    if let Some(listed) = config.mesh_own_pin.as_ref() {
                        if *listed != loaded.pin {
                            eprintln!(
                                "tinyderp: warning: --mesh-pin lists {} for this node, but its certificate's pin is {}",
                                config.hostname, loaded.pin
                            );
                        }
                    }
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("tinyderp: {err}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Status(StatusQuery { config, json }) => {
            init_logging(config.log_level.min(log::LevelFilter::Warn));
            match tinyderp::net::status_fetch::run(&config, json) {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(err) => {
                    eprintln!("tinyderp: status: {err}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Check { config, json } => {
            init_logging(config.log_level.min(log::LevelFilter::Warn));
            let report = tinyderp::net::check_probe::run_check(&config);
            if json {
                println!("{}", report.render_json());
            } else {
                println!("{}", report.render_text());
            }
            ExitCode::from(report.exit_code())
        }
    }
}

/// Logs go to stderr without timestamps or colours: procd forwards them to logread,
/// which adds its own time. rustls is kept quiet unless tracing was asked for.
fn init_logging(level: log::LevelFilter) {
    tinyderp::net::log_backend::init(level);
}

/// Thread names without musl's `printf`. Rust's standard library names a spawned thread
/// (smol's `blocking-N` pool, `async-io`) with `pthread_setname_np`, and musl's version
/// formats a `/proc` path with `snprintf`, which alone links musl's whole `printf` engine
/// (about 10 KB on MIPS) into the static router binaries. The standard library only ever
/// names the calling thread, which `prctl(PR_SET_NAME)` does without a path; this
/// definition takes the place of musl's in the static link.
#[cfg(target_env = "musl")]
mod thread_name {
    use nix::libc::{c_char, c_int, c_ulong, prctl, pthread_self, pthread_t, ENOTSUP, PR_SET_NAME};

    /// `pthread_setname_np(3)` for the calling thread; naming another thread is refused
    /// with `ENOTSUP` (nothing in this program asks for it).
    #[no_mangle]
    extern "C" fn pthread_setname_np(thread: pthread_t, name: *const c_char) -> c_int {
        // SAFETY: pthread_self has no preconditions. prctl(PR_SET_NAME) reads at most 16
        // bytes of the NUL-terminated string the caller passes (the standard library passes
        // a CStr it owns for the duration of the call) and writes nothing through it.
        unsafe {
            if thread != pthread_self() {
                return ENOTSUP;
            }
            if prctl(PR_SET_NAME, name, 0 as c_ulong, 0 as c_ulong, 0 as c_ulong) == 0 {
                0
            } else {
                nix::errno::Errno::last_raw()
            }
        }
    }
}
