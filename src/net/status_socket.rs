//! The status socket: the running relay's counters (`/debug/varz`) and, as JSON
//! (`/status.json`), the counters with learn mode's refused keys and the mesh peers, on a
//! Unix socket in the state directory, in plain HTTP, for `tinyderp status [--json]` and
//! LuCI's rpcd plugin. A Unix socket needs no TLS client (the router builds have none), is
//! reachable only by local users allowed into the state directory, and costs no port.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use smol::net::unix::{UnixListener, UnixStream};

use super::deadline::with_deadline;
use super::server::Server;
use crate::proto::json::{self, Value};

/// The socket's file name inside the state directory.
pub const STATUS_SOCKET_NAME: &str = "status.sock";
/// The counters as Prometheus text.
pub const VARZ_PATH: &str = "/debug/varz";
/// The counters, refused keys and mesh peers as one JSON object (see [`StatusJson`]).
pub const STATUS_JSON_PATH: &str = "/status.json";
/// Most mesh clients (relays dialling in with the mesh key) listed in `/status.json`.
pub const MAX_LISTED_MESH_CLIENTS: usize = 32;
/// Deadline for one whole request: read the head, write the answer.
const STATUS_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the status socket of a relay with state directory `state_dir` lives.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(STATUS_SOCKET_NAME)
}

/// Binds the status socket, replacing a stale one left by a relay that died.
pub(crate) fn bind(state_dir: &Path) -> std::io::Result<UnixListener> {
    let path = socket_path(state_dir);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    UnixListener::bind(&path)
}

/// Serves the status socket until the task is dropped (server stop). One request at a
/// time, each under [`STATUS_REQUEST_TIMEOUT`]: the callers are a poll every few seconds,
/// and a stalled local client holds the socket for that long at most.
pub(crate) async fn serve(server: Arc<Server>, listener: UnixListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                if with_deadline(STATUS_REQUEST_TIMEOUT, answer(&server, stream))
                    .await
                    .is_err()
                {
                    server
                        .telemetry
                        .metrics()
                        .http_requests
                        .bump("status_socket_failed");
                }
            }
            Err(err) => {
                log::warn!("status socket: accept failed: {err}");
                smol::Timer::after(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Reads one request head and answers `GET /debug/varz` with the metrics, `GET
/// /status.json` with [`StatusJson`], anything else with 404.
async fn answer(server: &Server, mut stream: UnixStream) -> std::io::Result<()> {
    let (head, _) = super::accept::read_head(&mut stream).await?;
    let (content_type, body) = match (head.method.as_str(), head.path.as_str()) {
        ("GET", VARZ_PATH) => (
            "text/plain; version=0.0.4",
            super::http::render_metrics(server),
        ),
        ("GET", STATUS_JSON_PATH) => ("application/json", status_json(server)),
        _ => {
            let response =
                "HTTP/1.1 404 Not Found\r\nContent-Length: 10\r\nConnection: close\r\n\r\nnot found\n";
            return super::accept::write_response(&mut stream, response.as_bytes()).await;
        }
    };
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    super::accept::write_response(&mut stream, response.as_bytes()).await
}

/// What `/status.json` (and `tinyderp status --json`) answers: everything LuCI's status
/// and access pages show, in one request.
pub struct StatusJson {
    /// The counters, as `/debug/varz` shows them (Prometheus text).
    pub varz: String,
    /// Learn mode's record of refused node keys.
    pub refused_keys: RefusedJson,
    /// The other relays of the region this relay knows.
    pub mesh: MeshJson,
}

/// Learn mode's refused keys (`--log-refused-keys`; empty while it is off).
pub struct RefusedJson {
    /// Learn mode is on.
    pub learn: bool,
    /// Most keys remembered ([`crate::admit::LEARN_MEMORY`]).
    pub bound: usize,
    /// Keys forgotten because the record was full.
    pub forgotten: u64,
    /// The remembered keys, most recently refused first.
    pub keys: Vec<RefusedKeyJson>,
}

/// One refused node key.
pub struct RefusedKeyJson {
    /// `nodekey:` and 64 hex digits.
    pub key: String,
    /// The address it last connected from, or empty.
    pub address: String,
    /// The last refusal's metrics label.
    pub reason: &'static str,
    /// Unix time of the last refusal.
    pub last_seen: u64,
    /// Seconds since the last refusal.
    pub last_seen_ago: u64,
    /// Refusals while remembered.
    pub count: u64,
}

/// The mesh: relays dialling in with the mesh key, and the peers this relay dials.
pub struct MeshJson {
    /// A mesh key is configured (`--mesh-psk-file`): other relays may log in with it.
    pub key_configured: bool,
    /// Connections logged in with the mesh key, at most [`MAX_LISTED_MESH_CLIENTS`].
    pub clients: Vec<MeshClientJson>,
    /// All connections logged in with the mesh key (may exceed the list).
    pub clients_total: usize,
    /// The `--mesh-with` peers this relay dials (builds with the `tls-client` feature).
    pub peers: Vec<MeshPeerJson>,
}

/// A relay logged in here with the mesh key.
pub struct MeshClientJson {
    /// Its server key.
    pub key: String,
    /// Where it connected from, or empty.
    pub address: String,
    /// Seconds since it logged in.
    pub connected_seconds: u64,
    /// It watches this relay's connections (WatchConns).
    pub watching: bool,
}

/// A `--mesh-with` peer and the dialer's status for it.
pub struct MeshPeerJson {
    /// The peer as configured (`host:port`).
    pub peer: String,
    /// The mesh client to it is logged in.
    pub connected: bool,
    /// Seconds since `connected` last changed (0 before the first dial).
    pub since_seconds: u64,
    /// Why the last connection ended or the last dial failed.
    pub last_error: Option<String>,
    /// Client keys this peer announces.
    pub clients_learned: usize,
}

impl StatusJson {
    /// The document, members in field order.
    pub fn to_json(&self) -> Value {
        Value::object([
            ("varz", Value::from(self.varz.as_str())),
            ("refused_keys", self.refused_keys.to_json()),
            ("mesh", self.mesh.to_json()),
        ])
    }
}

impl RefusedJson {
    fn to_json(&self) -> Value {
        Value::object([
            ("learn", Value::from(self.learn)),
            ("bound", Value::from(self.bound as u64)),
            ("forgotten", Value::from(self.forgotten)),
            (
                "keys",
                Value::Array(self.keys.iter().map(RefusedKeyJson::to_json).collect()),
            ),
        ])
    }
}

impl RefusedKeyJson {
    fn to_json(&self) -> Value {
        Value::object([
            ("key", Value::from(self.key.as_str())),
            ("address", Value::from(self.address.as_str())),
            ("reason", Value::from(self.reason)),
            ("last_seen", Value::from(self.last_seen)),
            ("last_seen_ago", Value::from(self.last_seen_ago)),
            ("count", Value::from(self.count)),
        ])
    }
}

impl MeshJson {
    fn to_json(&self) -> Value {
        Value::object([
            ("key_configured", Value::from(self.key_configured)),
            (
                "clients",
                Value::Array(self.clients.iter().map(MeshClientJson::to_json).collect()),
            ),
            ("clients_total", Value::from(self.clients_total as u64)),
            (
                "peers",
                Value::Array(self.peers.iter().map(MeshPeerJson::to_json).collect()),
            ),
        ])
    }
}

impl MeshClientJson {
    fn to_json(&self) -> Value {
        Value::object([
            ("key", Value::from(self.key.as_str())),
            ("address", Value::from(self.address.as_str())),
            ("connected_seconds", Value::from(self.connected_seconds)),
            ("watching", Value::from(self.watching)),
        ])
    }
}

impl MeshPeerJson {
    fn to_json(&self) -> Value {
        Value::object([
            ("peer", Value::from(self.peer.as_str())),
            ("connected", Value::from(self.connected)),
            ("since_seconds", Value::from(self.since_seconds)),
            ("last_error", Value::from(self.last_error.clone())),
            ("clients_learned", Value::from(self.clients_learned as u64)),
        ])
    }
}

/// Seconds from `then` to `now`.
fn ago(now: Instant, then: Instant) -> u64 {
    now.saturating_duration_since(then).as_secs()
}

/// Builds [`StatusJson`] for the running server.
fn status_json(server: &Server) -> String {
    let now = Instant::now();
    let unix_now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let (refused, forgotten) = server.admission.refused_keys();
    let keys = refused
        .iter()
        .rev()
        .map(|entry| RefusedKeyJson {
            key: entry.key.to_string(),
            address: entry.source.map(|ip| ip.to_string()).unwrap_or_default(),
            reason: entry.reason,
            last_seen: unix_now.saturating_sub(ago(now, entry.last_seen)),
            last_seen_ago: ago(now, entry.last_seen),
            count: entry.count,
        })
        .collect();
    let (clients, clients_total, learned) = {
        let hub = server.hub.lock();
        let (clients, total) = hub.relay.mesh_clients(MAX_LISTED_MESH_CLIENTS);
        let learned: Vec<usize> = (0..server.mesh.peers.len())
            .map(|index| hub.relay.mesh().learned(crate::relay::MeshPeerId(index)))
            .collect();
        (clients, total, learned)
    };
    let peers = server
        .mesh
        .peers
        .iter()
        .enumerate()
        .map(|(index, (spec, _))| {
            let status = server
                .mesh
                .status(index)
                .map(|status| status.clone())
                .unwrap_or_default();
            MeshPeerJson {
                peer: spec.label(),
                connected: status.connected,
                since_seconds: status.since.map_or(0, |since| ago(now, since)),
                last_error: status.last_error,
                clients_learned: learned.get(index).copied().unwrap_or(0),
            }
        })
        .collect();
    let whole = StatusJson {
        varz: super::http::render_metrics(server),
        refused_keys: RefusedJson {
            learn: server.config.admit.log_refused_keys,
            bound: crate::admit::LEARN_MEMORY,
            forgotten,
            keys,
        },
        mesh: MeshJson {
            key_configured: server.identity.mesh_key.is_some(),
            clients: clients
                .iter()
                .map(|client| MeshClientJson {
                    key: client.key.to_string(),
                    address: client.addr.map(|addr| addr.to_string()).unwrap_or_default(),
                    connected_seconds: ago(now, client.connected_at),
                    watching: client.watching,
                })
                .collect(),
            clients_total,
            peers,
        },
    };
    json::to_string(&whole.to_json())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/status.json` byte for byte as serde_json's derive wrote it before proto/json.rs
    /// (LuCI reads it).
    #[test]
    fn status_json_is_what_serde_json_wrote() {
        #[derive(serde::Serialize)]
        struct Status<'a> {
            varz: &'a str,
            refused_keys: Refused<'a>,
            mesh: Mesh<'a>,
        }
        #[derive(serde::Serialize)]
        struct Refused<'a> {
            learn: bool,
            bound: usize,
            forgotten: u64,
            keys: Vec<Key<'a>>,
        }
        #[derive(serde::Serialize)]
        struct Key<'a> {
            key: &'a str,
            address: &'a str,
            reason: &'a str,
            last_seen: u64,
            last_seen_ago: u64,
            count: u64,
        }
        #[derive(serde::Serialize)]
        struct Mesh<'a> {
            key_configured: bool,
            clients: Vec<Client<'a>>,
            clients_total: usize,
            peers: Vec<Peer<'a>>,
        }
        #[derive(serde::Serialize)]
        struct Client<'a> {
            key: &'a str,
            address: &'a str,
            connected_seconds: u64,
            watching: bool,
        }
        #[derive(serde::Serialize)]
        struct Peer<'a> {
            peer: &'a str,
            connected: bool,
            since_seconds: u64,
            last_error: Option<&'a str>,
            clients_learned: usize,
        }
        let ours = StatusJson {
            varz: String::from("# HELP derp_accepts_total x\nderp_accepts_total 3\n\"q\"\t"),
            refused_keys: RefusedJson {
                learn: true,
                bound: 64,
                forgotten: u64::MAX,
                keys: vec![RefusedKeyJson {
                    key: String::from("nodekey:00ff"),
                    address: String::from("192.0.2.1"),
                    reason: "not_allowed",
                    last_seen: 1_800_000_000,
                    last_seen_ago: 0,
                    count: 7,
                }],
            },
            mesh: MeshJson {
                key_configured: false,
                clients: vec![MeshClientJson {
                    key: String::from("nodekey:11"),
                    address: String::new(),
                    connected_seconds: 12,
                    watching: true,
                }],
                clients_total: 40,
                peers: vec![
                    MeshPeerJson {
                        peer: String::from("b.example:443"),
                        connected: true,
                        since_seconds: 5,
                        last_error: None,
                        clients_learned: 2,
                    },
                    MeshPeerJson {
                        peer: String::from("c.example:443"),
                        connected: false,
                        since_seconds: 0,
                        last_error: Some(String::from("tls: \u{e9}\u{7}")),
                        clients_learned: 0,
                    },
                ],
            },
        };
        let theirs = Status {
            varz: &ours.varz,
            refused_keys: Refused {
                learn: true,
                bound: 64,
                forgotten: u64::MAX,
                keys: vec![Key {
                    key: "nodekey:00ff",
                    address: "192.0.2.1",
                    reason: "not_allowed",
                    last_seen: 1_800_000_000,
                    last_seen_ago: 0,
                    count: 7,
                }],
            },
            mesh: Mesh {
                key_configured: false,
                clients: vec![Client {
                    key: "nodekey:11",
                    address: "",
                    connected_seconds: 12,
                    watching: true,
                }],
                clients_total: 40,
                peers: vec![
                    Peer {
                        peer: "b.example:443",
                        connected: true,
                        since_seconds: 5,
                        last_error: None,
                        clients_learned: 2,
                    },
                    Peer {
                        peer: "c.example:443",
                        connected: false,
                        since_seconds: 0,
                        last_error: Some("tls: \u{e9}\u{7}"),
                        clients_learned: 0,
                    },
                ],
            },
        };
        assert_eq!(
            json::to_string(&ours.to_json()),
            serde_json::to_string(&theirs).unwrap()
        );
    }
}
