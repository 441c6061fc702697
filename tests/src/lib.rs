//! End-to-end tests against real SIP peers live in `tests/`; this library holds what they
//! share.

use std::path::{Path, PathBuf};

/// The `dialer` binary under test: `DIALER_BIN` if set, else the one Cargo built beside this
/// test executable (`<target>/<profile>/deps/<test>` → `<target>/<profile>/dialer`). Cargo
/// does not build another package's binaries for a package's tests, hence the hint.
pub fn dialer_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("DIALER_BIN") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "DIALER_BIN={} is not a file", p.display());
        return p;
    }
    let exe = std::env::current_exe().expect("path of the test executable");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in <target>/<profile>/deps");
    let bin = profile_dir.join(format!("dialer{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "the dialer binary is not built: {} is missing.\n\
         Build it first: cargo build -p control-api --bin dialer, or point DIALER_BIN at it.",
        bin.display()
    );
    bin
}
