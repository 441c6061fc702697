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
    /// The resident registered it (web form, or the API).
    Registration,
    /// The resident registered it by calling the town's phone menu.
    Ivr,
    /// The resident registered it on the town's web form and proved it theirs by keying
    /// the code of a verification call.
    Web,
}

impl Source {
    /// The stored word.
    pub fn as_str(&self) -> &'static str {
        match self {
            Source::Directory => "directory",
            Source::Registration => "registration",
            Source::Ivr => "ivr",
            Source::Web => "web",
        }
    }

    /// Parses a word; `None` for anything else.
    pub fn parse(s: &str) -> Option<Source> {
        match s.trim().to_ascii_lowercase().as_str() {
            "directory" => Some(Source::Directory),
            "registration" => Some(Source::Registration),
            "ivr" => Some(Source::Ivr),
            "web" => Some(Source::Web),
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

/// A CSV whose header cannot be used: nothing is imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The header row does not parse.
    #[error("CSV header: {0}")]
    Unreadable(String),
    /// No `number` column.
    #[error("CSV header must name a `number` column")]
    NoNumber,
}

/// The rows of a contacts CSV: the good ones and why the others were refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CsvContacts {
    /// Rows ready to store.
    pub ok: Vec<NewContact>,
    /// Rows refused.
    pub rejected: Vec<RowError>,
}

/// Parses a contacts CSV with a header row. Columns (by name, any order): `number`
/// (required), `street`, `house_number`, `zone`, `source` (`directory` by default),
/// `opt_out` (`1`/`true`/`yes`). Numbers are normalised with `default_region`; a number
/// invalid in both readings (see [`super::numbers`]) is refused. `zone_of(zone, street)`
/// gives a row's zone (the API fills a missing one from the town's street list) or why
/// there is none. A row that repeats a number is refused, naming the first line.
pub fn parse_csv(
    input: impl Read,
    default_region: &str,
    zone_of: impl Fn(&str, &str) -> Result<String, String>,
) -> Result<CsvContacts, HeaderError> {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(input);
    let headers = rdr
        .headers()
        .map_err(|e| HeaderError::Unreadable(e.to_string()))?
        .clone();
    let col = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let cols = Columns {
        number: col("number").ok_or(HeaderError::NoNumber)?,
        street: col("street"),
        house: col("house_number"),
        zone: col("zone"),
        source: col("source"),
        opt_out: col("opt_out"),
    };
    let mut out = CsvContacts::default();
    let mut seen = std::collections::HashMap::new();
    for (i, rec) in rdr.records().enumerate() {
        let line = i as u64 + 2;
        let row = rec
            .map_err(|e| e.to_string())
            .and_then(|r| cols.contact(&r, default_region, &zone_of))
            .and_then(|c| match seen.get(&c.number) {
                Some(first) => Err(format!("{} repeats line {first}", c.number)),
                None => Ok(c),
            });
        match row {
            Ok(c) => {
                seen.insert(c.number.clone(), line);
                out.ok.push(c);
            }
            Err(reason) => out.rejected.push(RowError { line, reason }),
        }
    }
    Ok(out)
}

/// Where each known column is.
struct Columns {
    number: usize,
    street: Option<usize>,
    house: Option<usize>,
    zone: Option<usize>,
    source: Option<usize>,
    opt_out: Option<usize>,
}

impl Columns {
    fn contact(
        &self,
        rec: &csv::StringRecord,
        region: &str,
        zone_of: &impl Fn(&str, &str) -> Result<String, String>,
    ) -> Result<NewContact, String> {
        let get = |c: Option<usize>| c.and_then(|c| rec.get(c)).unwrap_or("").to_string();
        let n = normalize(&get(Some(self.number)), region).map_err(|e| e.to_string())?;
        let src = get(self.source);
        let source = if src.is_empty() {
            Source::Directory
        } else {
            Source::parse(&src).ok_or_else(|| format!("unknown source {src:?}"))?
        };
        let street = get(self.street);
        let zone = zone_of(&get(self.zone), &street)?;
        Ok(NewContact {
            number: n.e164,
            number_type: n.number_type,
            street,
            house_number: get(self.house),
            zone,
            source,
            opt_out: matches!(
                get(self.opt_out).to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "y"
            ),
        })
    }
}

/// Runs hostile bytes through the CSV import (Italy's and the UK's numbering, a zone
/// resolver that refuses some streets) and every line through [`normalize`]: for the
/// `contacts_import` fuzz target and its corpus replay. Checks what must hold whatever
/// the input: accepted numbers are E.164, and normalising one again gives it back.
#[doc(hidden)]
pub fn fuzz_exercise(data: &[u8]) {
    for region in ["IT", "GB"] {
        let zone_of = |z: &str, s: &str| {
            if z.is_empty() && s.len() % 2 == 1 {
                Err("no zone".to_string())
            } else {
                Ok(z.to_string())
            }
        };
        if let Ok(rows) = parse_csv(data, region, zone_of) {
            for c in rows.ok {
                assert!(c.number.starts_with('+'), "{}", c.number);
                let again = normalize(&c.number, region).expect("an accepted number re-parses");
                assert_eq!(again.e164, c.number);
            }
        }
    }
    for line in String::from_utf8_lossy(data).lines().take(64) {
        let _ = normalize(line, "IT");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn as_given(zone: &str, _street: &str) -> Result<String, String> {
        Ok(zone.to_string())
    }

    #[test]
    fn parses_good_rows_and_reports_bad_ones() {
        let csv = "number,street,house_number,zone,source,opt_out\n\
                   0771 286891,Via Roma,12,Centro,directory,\n\
                   347 1234567,Via Verdi,3/B,Borgo,registration,yes\n\
                   not a number,Via X,1,Centro,,\n\
                   +390771286891,Via Roma,12,Centro,,\n\
                   0771 286892,Via Roma,14,Centro,carrier-pigeon,\n\
                   \"unterminated,\n";
        let r = parse_csv(csv.as_bytes(), "IT", as_given).unwrap();
        let (ok, bad) = (r.ok, r.rejected);
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[0].number, "+390771286891");
        assert_eq!(ok[0].number_type, NumberType::Fixed);
        assert_eq!(ok[1].number_type, NumberType::Mobile);
        assert!(ok[1].opt_out);
        assert_eq!(ok[1].source, Source::Registration);
        assert_eq!(bad.len(), 4, "{bad:?}");
        assert_eq!(bad[0].line, 4);
        assert_eq!(bad[1].reason, "+390771286891 repeats line 2");
    }

    #[test]
    fn national_39x_mobiles_import_and_invalid_both_ways_is_refused() {
        let csv = "number\n3931234567\n3921234567\n3989477288\n391234\n";
        let r = parse_csv(csv.as_bytes(), "IT", as_given).unwrap();
        let got: Vec<_> =
            r.ok.iter()
                .map(|c| (c.number.as_str(), c.number_type))
                .collect();
        assert_eq!(
            got,
            [
                ("+393931234567", NumberType::Mobile),
                ("+393921234567", NumberType::Mobile),
                ("+393989477288", NumberType::Mobile)
            ]
        );
        assert_eq!(r.rejected.len(), 1);
        assert_eq!(r.rejected[0].line, 5);
    }

    #[test]
    fn zone_resolver_can_refuse() {
        let csv = "number,street\n0771286891,Via Nuova\n";
        let r = parse_csv(csv.as_bytes(), "IT", |_, s| Err(format!("no zone for {s}"))).unwrap();
        assert!(r.ok.is_empty());
        assert_eq!(r.rejected[0].reason, "no zone for Via Nuova");
    }

    #[test]
    fn unusable_header() {
        assert_eq!(
            parse_csv("phone\n123\n".as_bytes(), "IT", as_given),
            Err(HeaderError::NoNumber)
        );
        assert!(parse_csv(&b"\xff\xfe,\x00"[..], "IT", as_given).is_err());
    }
}
