//! End-to-end tests against real SIP peers live in `tests/`; this library holds what they
//! share.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Where Cargo put the workspace's binaries for this test executable
/// (`<target>/<profile>/deps/<test>` → `<target>/<profile>`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("path of the test executable");
    exe.parent()
        .and_then(Path::parent)
        .expect("test executable lives in <target>/<profile>/deps")
        .to_path_buf()
}

/// A peer or tool a test needs is missing: under CI (`CI` set) that is a failure, locally
/// the test is skipped with the reason on stderr.
pub fn missing(reason: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{reason} (CI is set, so this is a failure, not a skip)");
    }
    eprintln!("SKIPPED: {reason}");
}

/// Whether `tool` runs (`probe` are arguments that make it print and exit); if not, says
/// which Debian `package` has it (see [`missing`]).
pub fn tool_available(tool: &str, probe: &[&str], package: &str) -> bool {
    let ok = Command::new(tool)
        .args(probe)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !ok {
        missing(&format!(
            "{tool} is not runnable; install the Debian package {package}"
        ));
    }
    ok
}

/// Whether SIPp runs.
pub fn sipp_available() -> bool {
    tool_available("sipp", &["-v"], "sip-tester")
}

/// A workspace binary (`dialer`, `loadtest`): `<NAME>_BIN` if set, else the one Cargo built
/// beside this test executable; None (a skip, or a failure under CI) when it is not built.
pub fn workspace_bin(name: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(format!("{}_BIN", name.to_uppercase())) {
        return Some(PathBuf::from(p));
    }
    let p = profile_dir().join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if p.is_file() {
        return Some(p);
    }
    missing(&format!(
        "{} is missing (cargo build -p control-api -p loadtest)",
        p.display()
    ));
    None
}

/// A loopback port free for both UDP and TCP (SIP listens on both).
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind UDP 127.0.0.1:0");
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no loopback port free for both UDP and TCP");
}

/// A loopback UDP port `p` with `p + 2` free too: SIPp's media port and the one it also
/// binds two above it.
pub fn free_media_port() -> u16 {
    for _ in 0..100 {
        let a = UdpSocket::bind("127.0.0.1:0").expect("bind UDP 127.0.0.1:0");
        let p = a.local_addr().unwrap().port();
        if p < 65533 && UdpSocket::bind(("127.0.0.1", p + 2)).is_ok() {
            return p;
        }
    }
    panic!("no loopback port pair free for SIPp media");
}

/// Waits for a child until `deadline`; past it the child is killed and None returned.
pub fn wait_bounded(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return Some(st);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Goertzel power of 8 kHz samples `x` at `hz`: how much of one tone a recording holds.
pub fn tone_power(x: &[i16], hz: f64) -> f64 {
    let k = 2.0 * (std::f64::consts::TAU * hz / 8000.0).cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &v in x {
        let s = f64::from(v) + k * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - k * s1 * s2
}

/// The `dialer` binary under test: `DIALER_BIN` if set, else the one Cargo built beside this
/// test executable (`<target>/<profile>/deps/<test>` → `<target>/<profile>/dialer`). Cargo
/// does not build another package's binaries for a package's tests, hence the hint.
pub fn dialer_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("DIALER_BIN") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "DIALER_BIN={} is not a file", p.display());
        return p;
    }
    let bin = profile_dir().join(format!("dialer{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "the dialer binary is not built: {} is missing.\n\
         Build it first: cargo build -p control-api --bin dialer, or point DIALER_BIN at it.",
        bin.display()
    );
    bin
}

/// A loopback UDP socket on a free port whose datagrams carry the kernel's arrival time
/// (`SO_TIMESTAMPNS`, read by [`recv_stamped`]): a carrier's view of the INVITE rate, free
/// of the relay's own scheduling delays on a loaded machine. Reads time out after 100 ms so
/// that a relay loop can see its stop flag.
pub fn stamped_socket() -> UdpSocket {
    use std::os::fd::AsRawFd;
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let on: libc::c_int = 1;
    // SAFETY: a valid socket and a c_int option value of the right size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            &on as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_TIMESTAMPNS");
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    sock
}

/// `recvmsg` on a [`stamped_socket`]: length, sender and the kernel's receive time
/// (seconds since the epoch); None on a timeout or without a timestamp.
pub fn recv_stamped(sock: &UdpSocket, buf: &mut [u8]) -> Option<(usize, SocketAddr, f64)> {
    use std::os::fd::AsRawFd;
    // SAFETY: zeroed plain C structs.
    let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    let mut control = [0u8; 128];
    // SAFETY: msghdr points at live buffers of the given sizes for the duration of the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = &mut addr as *mut _ as *mut libc::c_void;
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = control.len() as _;
    // SAFETY: as above.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        return None;
    }
    let mut ts = None;
    // SAFETY: walking the control messages the kernel wrote into `control`.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SO_TIMESTAMPNS {
                let t = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::timespec);
                ts = Some(t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9);
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    let ip = std::net::Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr));
    Some((
        n as usize,
        SocketAddr::from((ip, u16::from_be(addr.sin_port))),
        ts?,
    ))
}

/// The most timestamps (seconds) in any 1 s window: a rate ceiling as the carrier saw it.
pub fn max_per_second(mut starts: Vec<f64>) -> usize {
    starts.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let (mut best, mut j) = (0, 0);
    for i in 0..starts.len() {
        while starts[i] - starts[j] >= 1.0 {
            j += 1;
        }
        best = best.max(i - j + 1);
    }
    best
}
