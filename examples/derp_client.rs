//! A tiny DERP client for the OpenWrt test harness (tests/openwrt/): the crate's own
//! client driving a relay that procd runs inside a network namespace.
//!
//! ```text
//! derp_client pubkey SEED                 print nodekey:... of the key [SEED; 32]
//! derp_client relay ADDR SEED_A SEED_B    A sends to B through the relay; exit 0 if B gets it
//! derp_client count ADDR N FIRST_SEED     connect N clients at once, print how many got in
//! derp_client hold ADDR SEED_A SEED_B     connect A and B, print "ready", wait for a line on
//!                                         stdin, then relay A -> B over the same connections
//! ```
//! Exit codes: 0 success, 2 refused or not delivered, 64 usage.

use std::io::BufRead;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use tinyderp::client::{Client, ClientConfig, ServerMessage};
use tinyderp::proto::key::SecretKey;

/// How long a receiver waits for the packet it expects.
const RECV_DEADLINE: Duration = Duration::from_secs(5);

fn secret(seed: &str) -> Option<SecretKey> {
    let b: u8 = seed.parse().ok()?;
    Some(SecretKey::from_bytes([b; 32]))
}

async fn connect(addr: SocketAddr, seed: &str) -> Result<Client, String> {
    let key = secret(seed).ok_or_else(|| format!("bad seed {seed}"))?;
    Client::connect(&ClientConfig::new(addr, key))
        .await
        .map_err(|e| format!("connect: {e}"))
}

/// Sends one packet from `a` to `b` and waits for it at `b`.
async fn relay_once(a: &mut Client, b: &mut Client, seed_b: &str) -> Result<(), String> {
    let dst = secret(seed_b).ok_or("bad seed")?.public_key();
    let payload = b"openwrt-harness".to_vec();
    a.send_packet(&dst, &payload)
        .await
        .map_err(|e| format!("send: {e}"))?;
    let wait = async {
        loop {
            match b.recv().await {
                Ok(ServerMessage::RecvPacket { data, .. }) if data == payload => return Ok(()),
                Ok(_) => continue,
                Err(e) => return Err(format!("recv: {e}")),
            }
        }
    };
    let timeout = async {
        smol::Timer::after(RECV_DEADLINE).await;
        Err("packet not delivered in time".to_string())
    };
    smol::future::or(wait, timeout).await
}

fn run(args: &[String]) -> Result<(), (u8, String)> {
    let usage = || (64, "usage: see the module doc".to_string());
    let addr = |s: &String| {
        s.parse::<SocketAddr>()
            .map_err(|e| (64, format!("addr: {e}")))
    };
    match args.first().map(String::as_str) {
        Some("pubkey") => {
            let key = args.get(1).and_then(|s| secret(s)).ok_or_else(usage)?;
            println!("{}", key.public_key());
            Ok(())
        }
        Some("relay") => {
            let (Some(a), Some(sa), Some(sb)) = (args.get(1), args.get(2), args.get(3)) else {
                return Err(usage());
            };
            let addr = addr(a)?;
            smol::block_on(async {
                let mut ca = connect(addr, sa).await.map_err(|e| (2, e))?;
                let mut cb = connect(addr, sb).await.map_err(|e| (2, e))?;
                relay_once(&mut ca, &mut cb, sb).await.map_err(|e| (2, e))
            })?;
            println!("relayed");
            Ok(())
        }
        Some("count") => {
            let (Some(a), Some(n), Some(first)) = (args.get(1), args.get(2), args.get(3)) else {
                return Err(usage());
            };
            let addr = addr(a)?;
            let n: u8 = n.parse().map_err(|_| usage())?;
            let first: u8 = first.parse().map_err(|_| usage())?;
            let got = smol::block_on(async {
                let mut held = Vec::new();
                for i in 0..n {
                    let seed = first.saturating_add(i).to_string();
                    if let Ok(mut c) = connect(addr, &seed).await {
                        // A refused client may get its ServerInfo before the close: ping it.
                        if c.ping([i; 8]).await.is_ok() {
                            let deadline = async {
                                smol::Timer::after(Duration::from_secs(2)).await;
                                true
                            };
                            let alive = async {
                                loop {
                                    match c.recv().await {
                                        Ok(ServerMessage::Pong(_)) => return true,
                                        Ok(_) => continue,
                                        Err(_) => return false,
                                    }
                                }
                            };
                            if smol::future::or(alive, deadline).await {
                                held.push(c);
                            }
                        }
                    }
                }
                held.len()
            });
            println!("{got}");
            Ok(())
        }
        Some("hold") => {
            let (Some(a), Some(sa), Some(sb)) = (args.get(1), args.get(2), args.get(3)) else {
                return Err(usage());
            };
            let addr = addr(a)?;
            smol::block_on(async {
                let mut ca = connect(addr, sa).await.map_err(|e| (2, e))?;
                let mut cb = connect(addr, sb).await.map_err(|e| (2, e))?;
                println!("ready");
                let mut line = String::new();
                let _ = std::io::stdin().lock().read_line(&mut line);
                relay_once(&mut ca, &mut cb, sb).await.map_err(|e| (2, e))
            })?;
            println!("relayed");
            Ok(())
        }
        _ => Err(usage()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, msg)) => {
            eprintln!("derp_client: {msg}");
            ExitCode::from(code)
        }
    }
}
