//! [`StatTable`]: reads a `show stat` answer back, columns by name (the header) or by
//! position (the order HAProxy tooling relies on). `veza-lb ctl top`, `cargo xtask smoke`
//! and the tests read the runtime API through it.

/// A parsed `show stat` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatTable {
    columns: Vec<String>,
    rows: Vec<Vec<String>>,
}

/// Why an answer is not a `show stat` table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// No `# pxname,svname,...` header line: an error message or another command's answer.
    #[error("not a `show stat` answer (no `# pxname,svname,...` header): {0:?}")]
    NoHeader(String),
    /// The header lacks `pxname` or `svname`.
    #[error("the `show stat` header has no `{0}` column")]
    MissingColumn(&'static str),
    /// A quoted field is not closed.
    #[error("line {0} of the `show stat` answer has an unterminated quote")]
    Unterminated(usize),
}

impl StatTable {
    /// Parses the CSV answer: the `# ` header line, then one record per line (blank lines
    /// skipped; a trailing comma, as HAProxy writes, is not a column).
    ///
    /// # Errors
    /// See [`TableError`].
    pub fn parse(text: &str) -> Result<Self, TableError> {
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty());
        let Some((_, header)) = lines.next() else {
            return Err(TableError::NoHeader(String::new()));
        };
        let Some(header) = header.strip_prefix("# ") else {
            return Err(TableError::NoHeader(text.chars().take(200).collect()));
        };
        let columns = fields(header.trim_end_matches(','), 1)?;
        for needed in ["pxname", "svname"] {
            if !columns.iter().any(|c| c == needed) {
                return Err(TableError::MissingColumn(needed));
            }
        }
        let rows = lines
            .filter(|(_, l)| !l.starts_with('#'))
            .map(|(n, l)| fields(l, n + 1))
            .collect::<Result<_, _>>()?;
        Ok(Self { columns, rows })
    }

    /// Column names, in order.
    #[must_use]
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The position of column `name`.
    #[must_use]
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// Every record, in order.
    #[must_use]
    pub fn rows(&self) -> &[Vec<String>] {
        &self.rows
    }

    /// The record of `pxname`/`svname` (`FRONTEND` and `BACKEND` for the aggregate rows).
    #[must_use]
    pub fn row(&self, pxname: &str, svname: &str) -> Option<&[String]> {
        let (px, sv) = (self.column("pxname")?, self.column("svname")?);
        self.rows
            .iter()
            .find(|r| {
                r.get(px).is_some_and(|v| v == pxname) && r.get(sv).is_some_and(|v| v == svname)
            })
            .map(Vec::as_slice)
    }

    /// The value of `column` in the record `pxname`/`svname`.
    #[must_use]
    pub fn get(&self, pxname: &str, svname: &str, column: &str) -> Option<&str> {
        let col = self.column(column)?;
        self.row(pxname, svname)?.get(col).map(String::as_str)
    }

    /// A server's `status` (`UP`, `DOWN`, `UP 1/3`...).
    #[must_use]
    pub fn status(&self, pxname: &str, svname: &str) -> Option<&str> {
        self.get(pxname, svname, "status")
    }
}

/// Splits one CSV record; a field in double quotes may hold commas and doubled quotes.
fn fields(line: &str, number: usize) -> Result<Vec<String>, TableError> {
    let mut out = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (false, ',') => out.push(std::mem::take(&mut field)),
            (false, '"') if field.is_empty() => quoted = true,
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (_, c) => field.push(c),
        }
    }
    if quoted {
        return Err(TableError::Unterminated(number));
    }
    out.push(field);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_columns_up_by_name_and_position() {
        let text = "# pxname,svname,qcur,status,throttle,\n\
                    veza,FRONTEND,,OPEN,,\n\
                    api_pool,backend-api-1,0,UP,12,\n\
                    api_pool,backend-api-2,0,DOWN 1/2,,\n\
                    \n\
                    api_pool,BACKEND,0,UP,,\n";
        let table = StatTable::parse(text).expect("valid");
        assert_eq!(table.status("api_pool", "backend-api-1"), Some("UP"));
        assert_eq!(table.status("api_pool", "backend-api-2"), Some("DOWN 1/2"));
        assert_eq!(
            table.get("api_pool", "backend-api-1", "throttle"),
            Some("12")
        );
        assert_eq!(table.get("api_pool", "backend-api-2", "throttle"), Some(""));
        assert_eq!(table.status("api_pool", "nope"), None);
        assert_eq!(table.get("api_pool", "BACKEND", "nope"), None);
        assert_eq!(table.columns().len(), 5);
        assert_eq!(table.rows().len(), 4);
        assert_eq!(
            table.row("veza", "FRONTEND").map(|r| r[3].as_str()),
            Some("OPEN")
        );
    }

    #[test]
    fn quoted_fields_keep_their_commas() {
        let text = "# pxname,svname,check_desc\napi,a,\"Layer7 \"\"wrong\"\", status 503\"\n";
        let table = StatTable::parse(text).expect("valid");
        assert_eq!(
            table.get("api", "a", "check_desc"),
            Some("Layer7 \"wrong\", status 503")
        );
        assert_eq!(
            StatTable::parse("# pxname,svname\napi,\"a\n"),
            Err(TableError::Unterminated(2))
        );
    }

    #[test]
    fn other_answers_are_refused() {
        assert!(matches!(
            StatTable::parse("Unknown command.\n"),
            Err(TableError::NoHeader(_))
        ));
        assert_eq!(
            StatTable::parse(""),
            Err(TableError::NoHeader(String::new()))
        );
        assert_eq!(
            StatTable::parse("# pxname,status\n"),
            Err(TableError::MissingColumn("svname"))
        );
    }

    #[test]
    fn reads_what_the_renderer_writes() {
        let (frontends, snapshot) = super::super::fixture::snapshot();
        let csv = super::super::csv::render(
            &frontends,
            &snapshot,
            super::super::fixture::NOW_UNIX,
            &super::super::csv::Filter::default(),
        );
        let table = StatTable::parse(&csv).expect("our own CSV parses");
        assert_eq!(table.columns()[0], "pxname");
        assert!(table.row("api_pool", "BACKEND").is_some());
    }
}
