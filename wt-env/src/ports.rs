//! Port blocks: a range to take them from, the ports browsers refuse, probing that a port is
//! really free, and finding who holds a port that is not.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use nix::errno::Errno;
use nix::sys::socket::{bind, socket, AddressFamily, SockFlag, SockType, SockaddrStorage};
use wt_common::Error;

/// An inclusive range of ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl PortRange {
    /// Parses `LO-HI`.
    pub fn parse(text: &str) -> Result<PortRange, Error> {
        let bad = || {
            Error::usage(
                "bad-range",
                format!("--range '{text}' is not LO-HI with 1 ≤ LO ≤ HI ≤ 65535 (e.g. 20000-29999)"),
            )
        };
        let (lo, hi) = text.split_once('-').ok_or_else(bad)?;
        let lo: u16 = lo.trim().parse().map_err(|_| bad())?;
        let hi: u16 = hi.trim().parse().map_err(|_| bad())?;
        if lo == 0 || lo > hi {
            return Err(bad());
        }
        Ok(PortRange { lo, hi })
    }

    pub fn count(&self) -> u32 {
        u32::from(self.hi) - u32::from(self.lo) + 1
    }

    /// The default: 20000 up to just below the kernel's ephemeral range (where outgoing
    /// connections take their local ports), or above it when that leaves too little.
    pub fn default_for_this_machine() -> PortRange {
        let (eph_lo, eph_hi) = ephemeral_range().unwrap_or((32768, 60999));
        if eph_lo > 21000 {
            PortRange { lo: 20000, hi: eph_lo - 1 }
        } else if eph_hi < 64000 {
            PortRange { lo: eph_hi + 1, hi: 65535 }
        } else {
            PortRange { lo: 1025, hi: eph_lo.saturating_sub(1).max(1025) }
        }
    }

    pub fn show(&self) -> String {
        format!("{}-{}", self.lo, self.hi)
    }
}

fn ephemeral_range() -> Option<(u16, u16)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = text.split_whitespace().map(|s| s.parse::<u16>().ok());
    Some((it.next()??, it.next()??))
}

/// Ports that Chromium and Firefox refuse to connect to (the "restricted ports" of the fetch
/// standard, plus 10080, which Firefox and Chromium added): a dev server there is unreachable
/// from a browser, so they are never handed out.
pub fn browser_refuses(port: u16) -> bool {
    const REFUSED: &[u16] = &[
        1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101, 102, 103, 104, 109,
        110, 111, 113, 115, 117, 119, 123, 135, 137, 139, 143, 161, 179, 389, 427, 465, 512, 513, 514, 515, 526, 530,
        531, 532, 540, 548, 554, 556, 563, 587, 601, 636, 989, 990, 993, 995, 1719, 1720, 1723, 2049, 3659, 4045, 4190,
        5060, 5061, 6000, 6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080,
    ];
    REFUSED.contains(&port)
}

/// The addresses a port must be free on: a server may listen on any of them.
const PROBE_ADDRS: [IpAddr; 4] = [
    IpAddr::V4(Ipv4Addr::LOCALHOST),
    IpAddr::V6(Ipv6Addr::LOCALHOST),
    IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    IpAddr::V6(Ipv6Addr::UNSPECIFIED),
];

/// True when a TCP socket can bind `port` on every address family the machine has. The probe
/// sockets do not set SO_REUSEADDR (std's `TcpListener` does), so a port in TIME_WAIT counts
/// as taken, as it would for a server that does not set it either.
pub fn is_free(port: u16) -> bool {
    PROBE_ADDRS.iter().all(|ip| match try_bind(SocketAddr::new(*ip, port)) {
        Ok(()) => true,
        // This address family does not exist here (no IPv6): nothing can listen on it.
        Err(Errno::EAFNOSUPPORT) | Err(Errno::EADDRNOTAVAIL) => true,
        Err(_) => false,
    })
}

fn try_bind(addr: SocketAddr) -> Result<(), Errno> {
    let family = if addr.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
    let fd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrStorage::from(addr))
}

/// Ports in `ports` that a process outside `worktree` listens on. A server the worktree's own
/// agent started is not a conflict. Listeners whose owner cannot be seen count as foreign.
pub fn foreign_listeners(ports: impl IntoIterator<Item = u16>, worktree: &Path) -> Vec<u16> {
    let busy: Vec<u16> = ports.into_iter().filter(|p| !is_free(*p)).collect();
    if busy.is_empty() {
        return busy;
    }
    let listeners = listening_inodes(&busy.iter().copied().collect());
    busy.into_iter()
        .filter(|port| {
            let inodes: Vec<u64> = listeners.iter().filter(|(p, _)| p == port).map(|(_, i)| *i).collect();
            inodes.is_empty() || !inodes.iter().all(|i| owner_cwd(*i).is_some_and(|cwd| cwd.starts_with(worktree)))
        })
        .collect()
}

/// (port, socket inode) of listening TCP sockets on the given ports, from /proc/net/tcp{,6}.
fn listening_inodes(ports: &BTreeSet<u16>) -> Vec<(u16, u64)> {
    let mut out = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address is HEXIP:HEXPORT; state 0A is LISTEN; inode is the 10th field.
            let (Some(local), Some(state), Some(inode)) = (f.get(1), f.get(3), f.get(9)) else { continue };
            let port = local.rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
            if let (Some(port), "0A", Ok(inode)) = (port, *state, inode.parse::<u64>()) {
                if ports.contains(&port) {
                    out.push((port, inode));
                }
            }
        }
    }
    out
}

/// The working directory of the process holding socket `inode`, if it can be seen.
fn owner_cwd(inode: u64) -> Option<std::path::PathBuf> {
    let needle = format!("socket:[{inode}]");
    for proc_dir in std::fs::read_dir("/proc").ok()?.flatten() {
        let pid_dir = proc_dir.path();
        if !proc_dir.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(pid_dir.join("fd")) else { continue };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == needle.as_str()) {
                return std::fs::read_link(pid_dir.join("cwd")).ok();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges_and_refuses_nonsense() {
        assert_eq!(PortRange::parse("20000-20009").unwrap(), PortRange { lo: 20000, hi: 20009 });
        for bad in ["", "5", "9-1", "0-10", "1-70000", "a-b"] {
            assert_eq!(PortRange::parse(bad).unwrap_err().code, "bad-range", "{bad}");
        }
    }

    #[test]
    fn default_range_avoids_the_ephemeral_range() {
        let r = PortRange::default_for_this_machine();
        let (lo, hi) = ephemeral_range().unwrap();
        assert!(r.hi < lo || r.lo > hi, "{r:?} overlaps {lo}-{hi}");
        assert!(r.count() >= 1000);
    }

    #[test]
    fn a_listener_makes_a_port_not_free_even_on_one_family() {
        let l = std::net::TcpListener::bind("[::1]:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(!is_free(port));
        drop(l);
        assert!(is_free(port));
    }

    #[test]
    fn browser_refused_ports() {
        assert!(browser_refuses(6000) && browser_refuses(6667) && browser_refuses(10080));
        assert!(!browser_refuses(3000));
    }
}
