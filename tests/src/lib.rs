//! End-to-end tests against real SIP peers live in `tests/`; this library holds what they
//! share.

use std::net::{TcpListener, UdpSocket};
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
