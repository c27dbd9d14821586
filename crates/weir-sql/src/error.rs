//! The SQL front end's error: what went wrong and where (1-based line and column of the script).

use datafusion::sql::sqlparser::tokenizer::Location;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SqlError {
    /// A syntax, name or type error at a place in the script.
    #[error("line {line}, column {column}: {message}")]
    At {
        line: u64,
        column: u64,
        message: String,
    },
    /// An error about the script as a whole (no single place to point at).
    #[error("{0}")]
    Script(String),
}

pub type Result<T, E = SqlError> = std::result::Result<T, E>;

impl SqlError {
    pub fn at(loc: Location, message: impl Into<String>) -> Self {
        if loc.line == 0 {
            return SqlError::Script(message.into());
        }
        SqlError::At {
            line: loc.line,
            column: loc.column,
            message: message.into(),
        }
    }

    /// A DataFusion error, placed at its own span if it has one, else at `fallback`.
    pub fn from_datafusion(e: datafusion::error::DataFusionError, fallback: Location) -> Self {
        let span = e.diagnostic().and_then(|d| d.span);
        let loc = span
            .map(|s| Location::new(s.start.line, s.start.column))
            .unwrap_or(fallback);
        // Context layers ("type_coercion caused by …") say where in DataFusion; keep the cause.
        SqlError::at(loc, clean(&e.find_root().strip_backtrace()))
    }

    /// A parser error: its message carries "at Line: L, Column: C"; lift that out.
    pub fn from_parser(msg: &str, fallback: Location) -> Self {
        let msg = msg.strip_prefix("sql parser error: ").unwrap_or(msg);
        if let Some((text, place)) = msg.rsplit_once(" at Line: ") {
            if let Some((l, c)) = place.split_once(", Column: ") {
                let col: String = c.chars().take_while(|ch| ch.is_ascii_digit()).collect();
                if let (Ok(line), Ok(column)) = (l.trim().parse(), col.parse()) {
                    return SqlError::At {
                        line,
                        column,
                        message: text.to_string(),
                    };
                }
            }
        }
        SqlError::at(fallback, msg.to_string())
    }
}

/// DataFusion's messages name its own layers ("Error during planning: …"); keep the substance.
fn clean(msg: &str) -> String {
    let mut m = msg.trim();
    for prefix in [
        "Error during planning: ",
        "Schema error: ",
        "This feature is not implemented: ",
        "SQL error: ",
        "Type Coercion error: ",
    ] {
        if let Some(rest) = m.strip_prefix(prefix) {
            m = rest;
        }
    }
    m.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parser_positions_are_lifted() {
        let e = SqlError::from_parser(
            "sql parser error: Expected: an expression, found: FROM at Line: 3, Column: 12",
            Location::new(1, 1),
        );
        assert_eq!(
            e,
            SqlError::At {
                line: 3,
                column: 12,
                message: "Expected: an expression, found: FROM".into()
            }
        );
        assert_eq!(
            e.to_string(),
            "line 3, column 12: Expected: an expression, found: FROM"
        );
        let e = SqlError::from_parser("no place", Location::new(2, 5));
        assert_eq!(e.to_string(), "line 2, column 5: no place");
    }
}
