//! Contacts: residents with a number, an address (street, house number, zone), where the
//! number came from, and whether they opted out. One contact per number per tenant.
//!
//! CSV import is hostile input: every row is parsed into a value or a per-line error;
//! nothing panics.

use std::io::Read;

use serde::{Deserialize, Serialize};

use super::numbers::{normalize, NumberType};

/// Where a number came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The phone directory (landlines).
    Directory,
    /// The resident registered it (IVR or web form).
    Registration,
}

impl Source {
    /// The stored word.
    pub fn as_str(&self) -> &'static str {
        match self {
            Source::Directory => "directory",
            Source::Registration => "registration",
        }
    }

    /// Parses a word; `None` for anything else.
    pub fn parse(s: &str) -> Option<Source> {
        match s.trim().to_ascii_lowercase().as_str() {
            "directory" => Some(Source::Directory),
            "registration" => Some(Source::Registration),
            _ => None,
        }
    }
}

/// A contact ready to store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewContact {
    /// E.164.
    pub number: String,
    /// Fixed, mobile, unknown.
    pub number_type: NumberType,
    /// Street name.
    pub street: String,
    /// House number (text: `12/B`).
    pub house_number: String,
    /// Zone (neighbourhood).
    pub zone: String,
    /// Where the number came from.
    pub source: Source,
    /// The resident asked not to be called.
    pub opt_out: bool,
}

/// A row that could not be imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct RowError {
    /// 1-based line number (the header is line 1).
    pub line: u64,
    /// Why.
    pub reason: String,
}

/// Parses a contacts CSV with a header row. Columns (by name, any order): `number`
/// (required), `street`, `house_number`, `zone`, `source` (`directory` by default),
/// `opt_out` (`1`/`true`/`yes`). Numbers are normalised with `default_region`. Rows that
/// repeat a number keep the first one. Returns the good rows and the bad ones.
pub fn parse_csv(input: impl Read, default_region: &str) -> (Vec<NewContact>, Vec<RowError>) {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(input);
    let mut ok = vec![];
    let mut bad = vec![];
    let headers = match rdr.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            bad.push(RowError {
                line: 1,
                reason: e.to_string(),
            });
            return (ok, bad);
        }
    };
    let col = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let Some(num_col) = col("number") else {
        bad.push(RowError {
            line: 1,
            reason: "no `number` column".into(),
        });
        return (ok, bad);
    };
    let (street, house, zone, source, opt) = (
        col("street"),
        col("house_number"),
        col("zone"),
        col("source"),
        col("opt_out"),
    );
    let mut seen = std::collections::HashSet::new();
    for (i, rec) in rdr.records().enumerate() {
        let line = i as u64 + 2;
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                bad.push(RowError {
                    line,
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let get = |c: Option<usize>| c.and_then(|c| rec.get(c)).unwrap_or("").to_string();
        let n = match normalize(&get(Some(num_col)), default_region) {
            Ok(n) => n,
            Err(e) => {
                bad.push(RowError {
                    line,
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let src = get(source);
        let src = if src.is_empty() {
            Source::Directory
        } else if let Some(s) = Source::parse(&src) {
            s
        } else {
            bad.push(RowError {
                line,
                reason: format!("unknown source {src:?}"),
            });
            continue;
        };
        if !seen.insert(n.e164.clone()) {
            continue;
        }
        ok.push(NewContact {
            number: n.e164,
            number_type: n.number_type,
            street: get(street),
            house_number: get(house),
            zone: get(zone),
            source: src,
            opt_out: matches!(
                get(opt).to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "y"
            ),
        });
    }
    (ok, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_good_rows_and_reports_bad_ones() {
        let csv = "number,street,house_number,zone,source,opt_out\n\
                   0771 286891,Via Roma,12,Centro,directory,\n\
                   347 1234567,Via Verdi,3/B,Borgo,registration,yes\n\
                   not a number,Via X,1,Centro,,\n\
                   +390771286891,Via Roma,12,Centro,,\n\
                   0771 286892,Via Roma,14,Centro,carrier-pigeon,\n\
                   \"unterminated,\n";
        let (ok, bad) = parse_csv(csv.as_bytes(), "IT");
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[0].number, "+390771286891");
        assert_eq!(ok[0].number_type, NumberType::Fixed);
        assert_eq!(ok[1].number_type, NumberType::Mobile);
        assert!(ok[1].opt_out);
        assert_eq!(ok[1].source, Source::Registration);
        assert_eq!(bad.len(), 3, "{bad:?}");
        assert_eq!(bad[0].line, 4);
    }

    #[test]
    fn missing_number_column() {
        let (ok, bad) = parse_csv("phone\n123\n".as_bytes(), "IT");
        assert!(ok.is_empty());
        assert_eq!(bad.len(), 1);
        let (ok, bad) = parse_csv(&b"\xff\xfe,\x00"[..], "IT");
        assert!(ok.is_empty() && !bad.is_empty());
    }
}
