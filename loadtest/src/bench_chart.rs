//! PNG charts of the `loadtest bench` scenarios (plotters, bitmap backend). Text is drawn
//! with a TrueType font read at run time (DejaVu or Liberation Sans from Debian's fonts), so
//! the build needs no font library; without a font the chart is skipped, the JSON stays.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{anyhow, Context, Result};
use plotters::prelude::*;
use plotters::style::FontStyle;
use serde_json::Value;

use crate::bench_campaign::{CampaignArgs, Sample};

const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

/// Registers "sans-serif" once; an error when no font file is there.
fn font() -> Result<()> {
    static DONE: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let bytes = FONTS
            .iter()
            .find_map(|p| std::fs::read(p).ok())
            .ok_or_else(|| format!("no font among {FONTS:?}"))?;
        // plotters keeps a &'static font: the bytes live as long as the process.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| "the font did not load".to_string())
    })
    .clone()
    .map_err(|e| anyhow!(e))
}

fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing the chart: {e:?}")
}

/// A named line of (x, y) points in its colour.
type Line<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);

/// A figure of the signalling runs: title, y axis, the value of one run.
type Metric<'a> = (&'a str, &'a str, &'a dyn Fn(&Value) -> Option<f64>);

/// What a panel's x axis says and whether its points are marked (a few runs) or not (a
/// second-by-second series).
struct XAxis<'a> {
    desc: &'a str,
    max: f64,
    dots: bool,
}

/// Lines of (x, y) points in a panel with its own y range.
fn panel(
    area: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    title: &str,
    y_desc: &str,
    axis: &XAxis,
    lines: &[Line],
) -> Result<()> {
    let y_max = lines
        .iter()
        .flat_map(|(_, _, p)| p.iter().map(|&(_, y)| y))
        .fold(1.0f64, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(8)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..axis.max.max(1.0), 0f64..y_max)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .x_desc(axis.desc)
        .y_desc(y_desc)
        .draw()
        .map_err(plot_err)?;
    for (name, color, pts) in lines {
        let c = *color;
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
            .map_err(plot_err)?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        if axis.dots {
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled())))
                .map_err(plot_err)?;
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(plot_err)?;
    Ok(())
}

/// The campaign scenario: INVITEs per second against the ceiling, RSS, CPU.
pub fn campaign(path: &Path, a: &CampaignArgs, per_s: &[u64], samples: &[Sample]) -> Result<()> {
    font()?;
    let first = per_s.iter().position(|&n| n > 0).unwrap_or(0);
    let rate: Vec<(f64, f64)> = per_s
        .iter()
        .enumerate()
        .skip(first)
        .map(|(i, &n)| ((i - first) as f64 + 0.5, n as f64))
        .collect();
    let x_max = samples
        .last()
        .map_or(0.0, |s| s.t)
        .max(rate.last().map_or(0.0, |p| p.0));
    let ceiling = vec![(0.0, a.cps), (x_max, a.cps)];
    let floor95 = vec![(0.0, 0.95 * a.cps), (x_max, 0.95 * a.cps)];
    let rss: Vec<(f64, f64)> = samples
        .iter()
        .map(|s| (s.t, s.rss_kib as f64 / 1024.0))
        .collect();
    let cpu: Vec<(f64, f64)> = samples
        .windows(2)
        .map(|w| {
            (
                w[1].t,
                (w[1].cpu_s - w[0].cpu_s) / (w[1].t - w[0].t).max(1e-3) * 100.0,
            )
        })
        .collect();
    let axis = XAxis {
        desc: "seconds since the campaign's first INVITE",
        max: x_max,
        dots: false,
    };
    let root = BitMapBackend::new(path, (1100, 1000)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let rows = root.split_evenly((3, 1));
    let title = format!(
        "dialer serve, one trunk cps={} max_channels={}, {} contacts, {} s message",
        a.cps, a.channels, a.contacts, a.message_secs
    );
    panel(
        &rows[0],
        &format!("{title}: INVITEs per second at the carrier"),
        "INVITEs / s",
        &axis,
        &[
            ("INVITEs received", BLUE, rate),
            ("ceiling", RED, ceiling),
            ("95 % of ceiling", RGBColor(255, 160, 0), floor95),
        ],
    )?;
    panel(
        &rows[1],
        "dialer serve resident set",
        "RSS MiB",
        &axis,
        &[("RSS", GREEN, rss)],
    )?;
    panel(
        &rows[2],
        "dialer serve CPU (user + system)",
        "% of one core",
        &axis,
        &[("CPU", MAGENTA, cpu)],
    )?;
    root.present().map_err(plot_err)?;
    Ok(())
}

/// The signalling scenario: achieved rate, failures and CPU per call for each UAC.
pub fn signalling(path: &Path, runs: &[Value]) -> Result<()> {
    font()?;
    let series = |uac: &str, f: &dyn Fn(&Value) -> Option<f64>| -> Vec<(f64, f64)> {
        runs.iter()
            .filter(|r| r["uac"] == uac)
            .filter_map(|r| Some((r["rate_asked"].as_f64()?, f(r)?)))
            .collect()
    };
    let axis = XAxis {
        desc: "calls per second asked",
        max: runs
            .iter()
            .filter_map(|r| r["rate_asked"].as_f64())
            .fold(1.0, f64::max)
            * 1.1,
        dots: true,
    };
    let root = BitMapBackend::new(path, (1500, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let cols = root.split_evenly((1, 3));
    let metrics: [Metric; 3] = [
        (
            "achieved rate over the INVITEs' span",
            "% of the rate asked",
            &|r| Some(r["rate_over_invite_span"].as_f64()? / r["rate_asked"].as_f64()? * 100.0),
        ),
        ("failed calls", "calls", &|r| r["failed"].as_f64()),
        ("CPU per call (media excluded)", "µs", &|r| {
            r["cpu_us_per_call"].as_f64()
        }),
    ];
    for (area, (title, y_desc, f)) in cols.iter().zip(metrics) {
        let lines = [
            ("dialer call", BLUE, series("dialer", f)),
            (
                "dialer call --no-media",
                GREEN,
                series("dialer-no-media", f),
            ),
            ("SIPp UAC", RED, series("sipp", f)),
        ];
        panel(area, title, y_desc, &axis, &lines)?;
    }
    root.present()
        .map_err(plot_err)
        .context("writing the PNG")?;
    Ok(())
}
