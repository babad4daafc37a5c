//! Opening listeners and tuning sockets: dual-stack binds with an IPv4 fallback for
//! routers without IPv6, TCP keep-alive and `TCP_USER_TIMEOUT` as upstream derper sets
//! them, and the open-files limit raised for thousands of clients.

use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdTcpListener, UdpSocket as StdUdpSocket};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::Duration;

use nix::sys::socket::{
    self, sockopt, AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage,
};
use smol::net::{TcpListener, TcpStream, UdpSocket};

use super::error::RunError;

/// Opens a listening TCP socket; `[::]` is bound dual-stack and falls back to `0.0.0.0`
/// when the machine has IPv6 turned off.
pub(crate) fn bind_tcp(addr: SocketAddr) -> Result<TcpListener, RunError> {
    let fd = bind_with_fallback(addr, SockType::Stream)?;
    // The C library's SOMAXCONN: 4096 on glibc, 128 on musl (nix refuses anything larger).
    socket::listen(&fd, Backlog::MAXCONN).map_err(|err| bind_error(addr, err))?;
    let std_listener = StdTcpListener::from(fd);
    TcpListener::try_from(std_listener).map_err(|err| RunError::Register {
        addr,
        udp: false,
        err,
    })
}

/// Opens the STUN UDP socket, dual-stack like [`bind_tcp`].
pub(crate) fn bind_udp(addr: SocketAddr) -> Result<UdpSocket, RunError> {
    let fd = bind_with_fallback(addr, SockType::Datagram)?;
    let std_socket = StdUdpSocket::from(fd);
    UdpSocket::try_from(std_socket).map_err(|err| RunError::Register {
        addr,
        udp: true,
        err,
    })
}

fn bind_with_fallback(addr: SocketAddr, kind: SockType) -> Result<OwnedFd, RunError> {
    match bind_socket(addr, kind) {
        Ok(fd) => Ok(fd),
        Err(nix::Error::EAFNOSUPPORT) if addr.ip().is_unspecified() && addr.is_ipv6() => {
            let v4 = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), addr.port());
            log::warn!("IPv6 is not available here; listening on {v4} (IPv4 only)");
            bind_socket(v4, kind).map_err(|err| bind_error(v4, err))
        }
        Err(err) => Err(bind_error(addr, err)),
    }
}

fn bind_socket(addr: SocketAddr, kind: SockType) -> Result<OwnedFd, nix::Error> {
    let family = if addr.is_ipv6() {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    let fd = socket::socket(family, kind, SockFlag::SOCK_CLOEXEC, None)?;
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        socket::setsockopt(&fd, sockopt::Ipv6V6Only, &false)?;
    }
    socket::bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
    Ok(fd)
}

fn bind_error(addr: SocketAddr, err: nix::Error) -> RunError {
    RunError::Bind { addr, err }
}

/// Socket options for an accepted client: no Nagle delay (DERP batches its own writes),
/// keep-alive probes every `keepalive`, and `TCP_USER_TIMEOUT` so a peer that vanished
/// with unacknowledged data is dropped in bounded time.
pub(crate) fn tune_accepted(
    stream: &TcpStream,
    keepalive: Option<Duration>,
    user_timeout: Option<Duration>,
) {
    let fd = stream.as_fd();
    let _ = socket::setsockopt(&fd, sockopt::TcpNoDelay, &true);
    if let Some(keepalive) = keepalive {
        let secs = u32::try_from(keepalive.as_secs().max(1)).unwrap_or(u32::MAX);
        let _ = socket::setsockopt(&fd, sockopt::KeepAlive, &true);
        let _ = socket::setsockopt(&fd, sockopt::TcpKeepIdle, &secs);
        let _ = socket::setsockopt(&fd, sockopt::TcpKeepInterval, &secs);
    }
    if let Some(user_timeout) = user_timeout {
        let millis = u32::try_from(user_timeout.as_millis()).unwrap_or(u32::MAX);
        let _ = socket::setsockopt(&fd, sockopt::TcpUserTimeout, &millis);
    }
}

/// Raises the soft open-files limit to the hard limit: each client holds one descriptor.
pub(crate) fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
            log::debug!("open-files limit raised from {soft} to {hard}");
        }
    }
}
