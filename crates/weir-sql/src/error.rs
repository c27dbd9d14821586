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
        let message = user_words(&message.into());
        if loc.line == 0 {
            return SqlError::Script(message);
        }
        SqlError::At {
            line: loc.line,
            column: loc.column,
            message,
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
    user_words(m)
}

/// `msg` without the internal names a user never wrote: a window TVF's table is planned as
/// `__window_<n>`; its columns are named as the user's (`window_start`) and the table as
/// "the window table".
fn user_words(msg: &str) -> String {
    const INTERNAL: &str = "__window_";
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(i) = rest.find(INTERNAL) {
        out.push_str(&rest[..i]);
        let after = &rest[i + INTERNAL.len()..];
        let digits = after.chars().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            out.push_str(INTERNAL);
            rest = after;
            continue;
        }
        let after = &after[digits..];
        match after.strip_prefix('.') {
            Some(col) => rest = col,
            None => {
                out.push_str("the window table (TUMBLE, HOP or SESSION)");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_window_names_do_not_leak() {
        assert_eq!(
            user_words("Did you mean '__window_0.window_start'? no table __window_12"),
            "Did you mean 'window_start'? no table the window table (TUMBLE, HOP or SESSION)"
        );
        assert_eq!(user_words("a __window_x b"), "a __window_x b");
    }

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
