//! Calling windows: the hours of the week when a `normal` campaign may call residents, in
//! the town's time zone (Europe/Rome), across daylight-saving changes.

use chrono::{DateTime, Datelike, Duration as CDuration, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// A weekly calling window, e.g. Monday–Saturday 09:00–20:00 Europe/Rome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallingWindow {
    /// IANA time zone name.
    pub tz: String,
    /// Days on which calls may be made: `mon` .. `sun`.
    pub days: Vec<String>,
    /// Local opening time, `HH:MM`.
    pub start: String,
    /// Local closing time, `HH:MM` (exclusive; `24:00` for the end of the day).
    pub end: String,
}

/// Why a window is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    /// Unknown time zone.
    #[error("unknown time zone {0}")]
    Tz(String),
    /// A day that is not `mon`..`sun`.
    #[error("unknown day {0}")]
    Day(String),
    /// A time that is not `HH:MM`, or start not before end.
    #[error("bad window times {0}-{1}")]
    Times(String, String),
}

impl Default for CallingWindow {
    fn default() -> Self {
        CallingWindow {
            tz: "Europe/Rome".into(),
            days: ["mon", "tue", "wed", "thu", "fri", "sat"]
                .map(String::from)
                .to_vec(),
            start: "09:00".into(),
            end: "20:00".into(),
        }
    }
}

/// A validated window, ready to answer "is it open" quickly.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    tz: Tz,
    days: [bool; 7],
    start: NaiveTime,
    end: NaiveTime,
}

fn day(s: &str) -> Option<Weekday> {
    Some(match s.trim().to_ascii_lowercase().get(..3)? {
        "mon" => Weekday::Mon,
        "tue" => Weekday::Tue,
        "wed" => Weekday::Wed,
        "thu" => Weekday::Thu,
        "fri" => Weekday::Fri,
        "sat" => Weekday::Sat,
        "sun" => Weekday::Sun,
        _ => return None,
    })
}

impl CallingWindow {
    /// Every day, all day: for operators who choose to call at any hour.
    pub fn always() -> CallingWindow {
        CallingWindow {
            tz: "Europe/Rome".into(),
            days: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
                .map(String::from)
                .to_vec(),
            start: "00:00".into(),
            end: "24:00".into(),
        }
    }

    /// Validates the window.
    pub fn compile(&self) -> Result<Window, WindowError> {
        let tz: Tz = self
            .tz
            .parse()
            .map_err(|_| WindowError::Tz(self.tz.clone()))?;
        let mut days = [false; 7];
        for d in &self.days {
            let wd = day(d).ok_or_else(|| WindowError::Day(d.clone()))?;
            days[wd.num_days_from_monday() as usize] = true;
        }
        let bad = || WindowError::Times(self.start.clone(), self.end.clone());
        let start = NaiveTime::parse_from_str(&self.start, "%H:%M").map_err(|_| bad())?;
        // `24:00` closes at the end of the day.
        let end = if self.end == "24:00" {
            NaiveTime::from_hms_nano_opt(23, 59, 59, 999_999_999).ok_or_else(bad)?
        } else {
            NaiveTime::parse_from_str(&self.end, "%H:%M").map_err(|_| bad())?
        };
        if start >= end {
            return Err(bad());
        }
        Ok(Window {
            tz,
            days,
            start,
            end,
        })
    }
}

impl Window {
    /// Whether calls may be made at `t`.
    pub fn is_open(&self, t: DateTime<Utc>) -> bool {
        let local = t.with_timezone(&self.tz);
        let time = local.time();
        self.days[local.weekday().num_days_from_monday() as usize]
            && time >= self.start
            && time < self.end
    }

    /// The first instant at or after `t` when the window is open.
    pub fn next_open(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        if self.is_open(t) {
            return t;
        }
        let local_date = t.with_timezone(&self.tz).date_naive();
        for d in 0..8 {
            let date = local_date + CDuration::days(d);
            if !self.days[date.weekday().num_days_from_monday() as usize] {
                continue;
            }
            let naive = date.and_time(self.start);
            // A start inside the spring-forward gap opens at the first valid minute after.
            let opening = (0..=120)
                .find_map(|m| {
                    self.tz
                        .from_local_datetime(&(naive + CDuration::minutes(m)))
                        .earliest()
                })
                .map(|l| l.with_timezone(&Utc));
            if let Some(o) = opening {
                if o > t {
                    return o;
                }
            }
        }
        t // no open day configured: never reached with a validated, non-empty window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn default_window_across_spring_forward() {
        let w = CallingWindow::default().compile().unwrap();
        // Sat 28 March 2026, CET (UTC+1): 09:00 local = 08:00 UTC.
        assert!(!w.is_open(utc("2026-03-28T07:59:00Z")));
        assert!(w.is_open(utc("2026-03-28T08:00:00Z")));
        assert!(w.is_open(utc("2026-03-28T18:59:00Z")));
        assert!(!w.is_open(utc("2026-03-28T19:00:00Z")));
        // Sunday 29 March (DST starts): closed all day; next opening Monday 09:00 CEST
        // = 07:00 UTC.
        assert!(!w.is_open(utc("2026-03-29T10:00:00Z")));
        assert_eq!(
            w.next_open(utc("2026-03-28T19:30:00Z")),
            utc("2026-03-30T07:00:00Z")
        );
        assert!(w.is_open(utc("2026-03-30T07:00:00Z")));
        assert!(!w.is_open(utc("2026-03-30T06:59:59Z")));
        assert!(!w.is_open(utc("2026-03-30T18:00:00Z")));
    }

    #[test]
    fn default_window_across_fall_back() {
        let w = CallingWindow::default().compile().unwrap();
        // Sat 24 October 2026, CEST: 20:00 local = 18:00 UTC.
        assert!(w.is_open(utc("2026-10-24T17:59:00Z")));
        assert!(!w.is_open(utc("2026-10-24T18:00:00Z")));
        // Sunday 25: DST ends. Monday 26 opens at 09:00 CET = 08:00 UTC.
        assert_eq!(
            w.next_open(utc("2026-10-24T18:00:00Z")),
            utc("2026-10-26T08:00:00Z")
        );
        assert!(w.is_open(utc("2026-10-26T18:59:00Z")));
    }

    #[test]
    fn window_starting_in_the_dst_gap_and_the_repeated_hour() {
        let w = CallingWindow {
            tz: "Europe/Rome".into(),
            days: vec!["sun".into()],
            start: "02:30".into(),
            end: "04:00".into(),
        }
        .compile()
        .unwrap();
        // 29 March 2026: 02:00–03:00 local does not exist; opens at 03:00 CEST = 01:00 UTC.
        assert_eq!(
            w.next_open(utc("2026-03-28T12:00:00Z")),
            utc("2026-03-29T01:00:00Z")
        );
        // 25 October 2026: 02:30 happens twice; the first (CEST, 00:30 UTC) opens it.
        assert_eq!(
            w.next_open(utc("2026-10-24T12:00:00Z")),
            utc("2026-10-25T00:30:00Z")
        );
        assert!(w.is_open(utc("2026-10-25T01:30:00Z"))); // 02:30 CET, second time round
    }

    #[test]
    fn rejects_bad_windows() {
        let bad = [
            CallingWindow {
                tz: "Mars/Olympus".into(),
                ..Default::default()
            },
            CallingWindow {
                days: vec!["xyz".into()],
                ..Default::default()
            },
            CallingWindow {
                start: "21:00".into(),
                ..Default::default()
            },
        ];
        for c in bad {
            assert!(c.compile().is_err(), "{c:?}");
        }
        assert!(CallingWindow::always()
            .compile()
            .unwrap()
            .is_open(utc("2026-03-29T01:30:00Z")));
    }
}
