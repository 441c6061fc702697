//! `dialer campaign run`: import contacts, create (or find) a campaign, run it to the end
//! through the configured trunks, and print its progress as JSON.
//!
//! Idempotent, so the same command line resumes after a crash: contacts are upserted, an
//! existing campaign (same tenant and name) is resumed rather than created again, and the
//! engine's recovery closes the attempts the previous run left open.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use engine::dialer::call_media::{PumpMedia, PumpMediaConfig};
use engine::dialer::{Dialer, DialerConfig};
use engine::model::contacts::parse_csv;
use engine::model::{
    AmdPolicy, AmdSpec, CallingWindow, CampaignSpec, CampaignState, Delivery, Priority,
    RetryPolicy, Target, Until, ZoneMessage,
};
use engine::store::{SqliteOptions, SqliteStore, Store};

/// `dialer campaign ...`
#[derive(Debug, Args)]
pub struct CampaignArgs {
    #[command(subcommand)]
    cmd: CampaignCmd,
}

#[derive(Debug, Subcommand)]
enum CampaignCmd {
    /// Run a campaign to completion (creating it, and importing contacts, if needed).
    Run(RunArgs),
}

/// Options of `dialer campaign run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// SQLite database file (created if missing).
    #[arg(long)]
    db: PathBuf,
    /// TOML configuration with the trunks (see engine::dialer::config).
    #[arg(long)]
    config: PathBuf,
    /// Contacts CSV to import first (columns: number, street, house_number, zone, source,
    /// opt_out).
    #[arg(long)]
    contacts: Option<PathBuf>,
    /// Tenant (town).
    #[arg(long)]
    tenant: String,
    /// Campaign name (unique per tenant; an existing one is resumed).
    #[arg(long)]
    name: String,
    /// Prompt audio file (WAV or MP3).
    #[arg(long)]
    prompt: PathBuf,
    /// Target zones, comma-separated.
    #[arg(long, value_delimiter = ',')]
    zones: Vec<String>,
    /// Target streets, comma-separated.
    #[arg(long, value_delimiter = ',')]
    streets: Vec<String>,
    /// Target every contact of the tenant.
    #[arg(long)]
    all: bool,
    /// `normal` or `emergency`.
    #[arg(long, default_value = "normal")]
    priority: String,
    /// Call at any hour (normal campaigns default to Mon–Sat 09:00–20:00 Europe/Rome).
    #[arg(long)]
    no_window: bool,
    /// Caller ID (E.164) when the trunk does not force one.
    #[arg(long)]
    caller_id: Option<String>,
    /// Ring timeout, seconds (the trunk's when absent).
    #[arg(long)]
    ring_timeout: Option<u64>,
    /// How many times the message plays.
    #[arg(long, default_value_t = 1)]
    play_count: u32,
    /// When a contact is done: `answered`, `heard` or `confirmed` (keys: 1 confirms, 2
    /// repeats, 9 opts out on normal campaigns).
    #[arg(long, default_value = "answered")]
    until: String,
    /// A message for one zone, `ZONE=FILE` (repeatable); contacts of other zones hear
    /// `--prompt`.
    #[arg(long = "message")]
    messages: Vec<String>,
    /// Answering-machine detection and what to do with machines: `drop` (leave the
    /// message after the beep, or after the greeting without one), `hangup` or
    /// `retry_later`. Without it, every answered call hears the message at once.
    #[arg(long)]
    amd: Option<String>,
    /// `synchronous=NORMAL` instead of FULL (survives a process crash, not a power cut).
    #[arg(long)]
    fast_sync: bool,
}

/// Keys by default; `until` and per-zone messages from the options (prompt files made
/// absolute, like `--prompt`).
fn delivery(a: &RunArgs) -> Result<Delivery> {
    let until = Until::parse(&a.until).context("--until: answered, heard or confirmed")?;
    let mut messages = vec![];
    for m in &a.messages {
        let (zone, file) = m.split_once('=').context("--message ZONE=FILE")?;
        let path = std::fs::canonicalize(file).with_context(|| format!("prompt {file}"))?;
        messages.push(ZoneMessage {
            zones: vec![zone.trim().to_string()],
            streets: vec![],
            prompt: path.display().to_string(),
        });
    }
    let amd = match a.amd.as_deref() {
        None => None,
        Some(word) => {
            let policy: AmdPolicy = serde_json::from_value(serde_json::json!(word))
                .context("--amd: drop, hangup or retry_later")?;
            Some(AmdSpec {
                policy,
                params: Default::default(),
            })
        }
    };
    Ok(Delivery {
        until,
        messages,
        amd,
        ..Delivery::default()
    })
}

/// Runs the command.
pub async fn run(args: CampaignArgs) -> Result<()> {
    match args.cmd {
        CampaignCmd::Run(a) => run_campaign(a).await,
    }
}

/// The media pump on the config's address and ports, its prompt cache beside the database
/// (so a restart does not encode the message again).
async fn start_media(
    cfg: &DialerConfig,
    db: &std::path::Path,
) -> Result<(
    Arc<PumpMedia>,
    tokio::sync::mpsc::UnboundedReceiver<engine::dialer::call_media::MediaNote>,
)> {
    let ip = media_ip(cfg).await?;
    let (lo, hi) = cfg
        .rtp_ports
        .split_once('-')
        .and_then(|(l, h)| Some((l.trim().parse().ok()?, h.trim().parse().ok()?)))
        .context("rtp_ports must be MIN-MAX")?;
    let mut cache = db.as_os_str().to_owned();
    cache.push(".prompt-cache");
    PumpMedia::start(PumpMediaConfig {
        ip,
        port_min: lo,
        port_max: hi,
        prompt_cache: Some(cache.into()),
        ptimes: cfg.trunks.iter().map(|t| t.ptime_ms).collect(),
    })
    .context("starting the media pump")
}

async fn run_campaign(a: RunArgs) -> Result<()> {
    let text = std::fs::read_to_string(&a.config)
        .with_context(|| format!("reading {}", a.config.display()))?;
    let cfg = DialerConfig::load(&text)?;
    let store = SqliteStore::open(
        &a.db,
        SqliteOptions {
            full_sync: !a.fast_sync,
            ..Default::default()
        },
    )
    .await
    .with_context(|| format!("opening {}", a.db.display()))?;

    if let Some(path) = &a.contacts {
        import_contacts(&store, &a.tenant, path, &cfg.default_region).await?;
    }

    let (media, notes) = start_media(&cfg, &a.db).await?;
    let retry = cfg.retry;
    let dialer = Dialer::start(cfg, store.clone(), Arc::clone(&media), notes).await?;

    let rec = match store.campaign_by_name(&a.tenant, &a.name).await? {
        Some(r) => r,
        None => {
            let spec = spec_of(&a, retry)?;
            dialer.create_campaign(spec).await?
        }
    };
    let id = rec.id;
    match rec.state {
        CampaignState::Draft => drop(dialer.start_campaign(id).await?),
        CampaignState::Paused => drop(dialer.resume(id).await?),
        CampaignState::Running => {}
        CampaignState::Completed | CampaignState::Canceled => {
            bail!("campaign {} is already {}", a.name, rec.state)
        }
    }
    eprintln!("campaign {id} running");
    let progress = {
        let store = store.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if let Ok(p) = store.progress(id).await {
                    eprintln!("{}", serde_json::json!({ "progress": p }));
                }
            }
        })
    };
    dialer.wait_completed(id).await?;
    progress.abort();
    dialer.shutdown().await?;
    let p = store.progress(id).await?;
    let snap = store.campaign(id).await?.map(|c| c.state.as_str());
    println!(
        "{}",
        serde_json::json!({ "campaign": id, "state": snap, "progress": p })
    );
    Ok(())
}

/// Imports a contacts CSV (zones as written: the CLI has no street list to fill a missing
/// one from); the first rejected rows are logged.
async fn import_contacts(
    store: &SqliteStore,
    tenant: &str,
    path: &std::path::Path,
    region: &str,
) -> Result<()> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let rows = parse_csv(std::io::BufReader::new(f), region, |z, _| Ok(z.to_string()))
        .with_context(|| format!("contacts {}", path.display()))?;
    let bad = rows.rejected;
    for e in bad.iter().take(20) {
        tracing::warn!("contacts: {e}");
    }
    let rep = store.upsert_contacts(tenant, rows.ok).await?;
    eprintln!(
        "contacts: {} new, {} updated, {} rejected",
        rep.inserted,
        rep.updated,
        bad.len()
    );
    Ok(())
}

/// The campaign the command's flags describe.
fn spec_of(a: &RunArgs, retry: RetryPolicy) -> Result<CampaignSpec> {
    let priority = Priority::parse(&a.priority).context("--priority: normal or emergency")?;
    Ok(CampaignSpec {
        tenant: a.tenant.clone(),
        name: a.name.clone(),
        // Absolute, so that a restart from another directory finds it.
        prompt: std::fs::canonicalize(&a.prompt)
            .with_context(|| format!("prompt {}", a.prompt.display()))?
            .display()
            .to_string(),
        target: Target {
            all: a.all,
            zones: a.zones.clone(),
            streets: a.streets.clone(),
        },
        priority,
        window: a.no_window.then(CallingWindow::always),
        caller_id: a.caller_id.clone(),
        ring_timeout_s: a.ring_timeout,
        play_count: a.play_count,
        retry,
        delivery: delivery(a)?,
    })
}

/// The address for SDP: the one the kernel would use towards the first trunk.
async fn media_ip(cfg: &DialerConfig) -> Result<std::net::IpAddr> {
    let bind: std::net::SocketAddr = cfg.sip_bind.parse().context("sip_bind")?;
    if !bind.ip().is_unspecified() {
        return Ok(bind.ip());
    }
    let Some(t) = cfg.trunks.first() else {
        bail!("no trunk configured");
    };
    let dest = tokio::net::lookup_host(&t.proxy)
        .await?
        .next()
        .context("trunk proxy has no address")?;
    let s = std::net::UdpSocket::bind(("0.0.0.0", 0))?;
    s.connect(dest)?;
    Ok(s.local_addr()?.ip())
}
