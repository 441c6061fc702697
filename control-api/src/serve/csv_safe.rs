//! CSV cells made safe to open in a spreadsheet (OWASP, "CSV Injection").
//!
//! Exports carry text from outside: a carrier's SIP reason phrase, a DTMF string, a trunk
//! name. A cell beginning with `=`, `+`, `-`, `@`, a tab or a carriage return is read by
//! spreadsheets as a formula (`=HYPERLINK(…)`, `-2+3+cmd|…`), so such a cell gets a leading
//! single quote, which spreadsheets show as text and do not evaluate. The CSV writer then
//! quotes the cell as needed.
//!
//! One exemption keeps number columns usable: a cell that is a plain signed decimal
//! number (`+390771286891`, `-5`, `12.5`) is written as is. A spreadsheet can only read such a
//! cell as a number, never as a formula, and the phone numbers we export are E.164 strings
//! produced by our own parser (`+` and digits only), so quoting them would only break
//! re-imports and lookups without protecting anything.

/// The cell as written to an export.
pub fn cell(value: &str) -> std::borrow::Cow<'_, str> {
    let risky = matches!(
        value.as_bytes().first(),
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
    );
    if !risky || is_plain_number(value) {
        return value.into();
    }
    format!("'{value}").into()
}

/// A CSV writer whose every cell goes through [`cell`]: exports use it instead of
/// `csv::Writer`, so no cell can be written unescaped.
pub struct SafeWriter<W: std::io::Write>(csv::Writer<W>);

impl<W: std::io::Write> SafeWriter<W> {
    /// Wraps a writer.
    pub fn new(w: csv::Writer<W>) -> Self {
        SafeWriter(w)
    }

    /// Writes one record, each cell made safe.
    pub fn write_record<I, T>(&mut self, record: I) -> csv::Result<()>
    where
        I: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        self.0
            .write_record(record.into_iter().map(|c| cell(c.as_ref()).into_owned()))
    }

    /// Flushes and returns the inner writer.
    pub fn into_inner(self) -> std::io::Result<W> {
        self.0.into_inner().map_err(|e| e.into_error())
    }
}

/// `[+-]?digits(.digits)?`: read by any spreadsheet as a number only.
fn is_plain_number(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    digits(int) && frac.is_none_or(digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_neutralised() {
        for (raw, want) in [
            (
                "=HYPERLINK(\"http://x\",\"y\")",
                "'=HYPERLINK(\"http://x\",\"y\")",
            ),
            ("+SUM(A1)", "'+SUM(A1)"),
            ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
            ("@SUM(1)", "'@SUM(1)"),
            ("\t=1", "'\t=1"),
            ("\r=1", "'\r=1"),
            ("+", "'+"),
            ("-", "'-"),
            ("+1e5", "'+1e5"),
            ("+39 0771", "'+39 0771"),
        ] {
            assert_eq!(cell(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn ordinary_cells_and_numbers_stay() {
        for v in [
            "",
            "Busy Here",
            "+390771286891",
            "-5",
            "12.5",
            "0",
            "answered",
            "1#2*",
        ] {
            assert_eq!(cell(v), v);
        }
    }

    #[test]
    fn a_written_row_opens_as_text() {
        let mut w = SafeWriter::new(csv::Writer::from_writer(vec![]));
        w.write_record(["+390771286891", "=HYPERLINK(\"http://evil\",\"x\")"])
            .unwrap();
        let out = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert_eq!(
            out,
            "+390771286891,\"'=HYPERLINK(\"\"http://evil\"\",\"\"x\"\")\"\n"
        );
    }
}
