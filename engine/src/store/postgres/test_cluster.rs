//! A throw-away PostgreSQL cluster for tests: one per test process (`initdb` + `pg_ctl`
//! from Debian's `postgresql` package, in a temporary directory, on a free loopback
//! port), and one fresh database per test so that tests stay independent and parallel.
//!
//! As root the cluster runs as the `postgres` OS user (`initdb` refuses root). A watchdog
//! process stops it (`pg_ctl stop -m immediate`) and deletes its directory once the test
//! process is gone, however it ended. Where `initdb` is absent the PostgreSQL tests are
//! skipped, unless `CI` is set: there it is a failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use sqlx::Connection;

/// Where Debian's `postgresql` package puts the server binaries; `DIALER_PG_BIN`
/// overrides it.
const DEFAULT_BIN: &str = "/usr/lib/postgresql/15/bin";

/// Most seconds the watchdog waits for the test process (a bound on a stuck test).
const WATCHDOG_MAX_S: u32 = 4 * 3600;

/// A running throw-away cluster.
#[derive(Debug)]
pub struct Cluster {
    port: u16,
}

static CLUSTER: OnceLock<Option<Cluster>> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

/// The process's cluster, started on first use; None (tests skip) when PostgreSQL is not
/// installed and `CI` is not set.
///
/// # Panics
/// When the cluster cannot start, or PostgreSQL is absent under `CI`.
pub fn cluster() -> Option<&'static Cluster> {
    CLUSTER
        .get_or_init(|| {
            let bin = PathBuf::from(std::env::var("DIALER_PG_BIN").unwrap_or(DEFAULT_BIN.into()));
            if !bin.join("initdb").exists() {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "CI is set but {} has no initdb (apt-get install postgresql)",
                    bin.display()
                );
                eprintln!("skipping PostgreSQL tests: no initdb in {}", bin.display());
                return None;
            }
            Some(start(&bin, false).unwrap_or_else(|e| panic!("test PostgreSQL cluster: {e}")))
        })
        .as_ref()
}

/// A URL to a new, empty database of the process's cluster; None when PostgreSQL tests
/// are skipped (see [`cluster`]).
pub async fn new_database() -> Option<String> {
    let c = cluster()?;
    let name = format!(
        "t{}_{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::Relaxed)
    );
    let mut admin = sqlx::PgConnection::connect(&c.url("postgres"))
        .await
        .expect("connect to the test cluster");
    sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create a test database");
    let _ = admin.close().await;
    Some(c.url(&name))
}

/// A throw-away cluster of its own with durable commits (`fsync` on, as in production),
/// for the store benchmark (`loadtest store`); stopped and deleted when this process ends.
pub fn start_durable() -> Result<Cluster, String> {
    let bin = PathBuf::from(std::env::var("DIALER_PG_BIN").unwrap_or(DEFAULT_BIN.into()));
    start(&bin, true)
}

impl Cluster {
    /// The URL of database `db` on this cluster.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

fn start(bin: &Path, durable: bool) -> Result<Cluster, String> {
    let root = unsafe { libc::geteuid() } == 0;
    let dir = std::env::temp_dir().join(format!(
        "dialer-pg-{}-{}",
        std::process::id(),
        crate::store::now_ms()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if root {
        run(Command::new("chown").arg("postgres:postgres").arg(&dir))?;
    }
    let data = dir.join("data");
    let as_pg = |prog: &str| -> Command {
        let path = bin.join(prog);
        if root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    };
    run(as_pg("initdb").arg("-D").arg(&data).args([
        "-A",
        "trust",
        "-U",
        "postgres",
        "-E",
        "UTF8",
        "--locale=C",
        "--no-sync",
    ]))?;
    let port = free_port()?;
    // Durability is not what the tests measure: fsync off spares the shared disk.
    let fsync = if durable { "on" } else { "off" };
    let opts = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync={fsync} -c max_connections=300",
        dir.display()
    );
    run(as_pg("pg_ctl")
        .arg("-D")
        .arg(&data)
        .arg("-l")
        .arg(dir.join("log"))
        .args(["-w", "-t", "60", "-o", &opts, "start"]))?;
    watchdog(&as_pg("pg_ctl"), &data, &dir)?;
    Ok(Cluster { port })
}

/// Starts a process, in a session of its own, that stops the cluster and deletes its
/// directory when this process is gone.
fn watchdog(pg_ctl: &Command, data: &Path, dir: &Path) -> Result<(), String> {
    let mut stop: Vec<String> = vec![pg_ctl.get_program().to_string_lossy().into_owned()];
    stop.extend(pg_ctl.get_args().map(|a| a.to_string_lossy().into_owned()));
    let script = format!(
        "i=0; while kill -0 {pid} 2>/dev/null && [ $i -lt {WATCHDOG_MAX_S} ]; do sleep 1; i=$((i+1)); done; \
         {stop} -D '{data}' stop -m immediate; rm -rf '{dir}'",
        pid = std::process::id(),
        stop = stop.join(" "),
        data = data.display(),
        dir = dir.display(),
    );
    Command::new("setsid")
        .args(["sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(drop)
        .map_err(|e| format!("watchdog: {e}"))
}

/// Runs a command to its end with no inherited output (a test runner waits on its pipes,
/// which a server started by the command would otherwise hold).
fn run(c: &mut Command) -> Result<(), String> {
    let what = format!("{c:?}");
    let st = c
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("{what}: {e}"))?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("{what}: {st}"))
    }
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}
