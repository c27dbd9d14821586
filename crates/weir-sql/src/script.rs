//! A script's statements, split and pre-parsed at the token level.
//!
//! sqlparser has no Flink `WATERMARK FOR col AS expr` clause and no `SET 'key' = 'value'`
//! with dotted quoted keys, so both are taken out here from the token stream (which keeps
//! every token's line and column, so later errors still point into the original script);
//! everything else goes to sqlparser's generic dialect.

use crate::error::{Result, SqlError};
use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

/// `WATERMARK FOR column AS expr` of a `CREATE TABLE`.
#[derive(Debug, Clone, PartialEq)]
pub struct Watermark {
    pub column: String,
    /// The watermark expression as SQL text (evaluated on the table's rows).
    pub expr: String,
    pub at: Location,
}

#[derive(Debug)]
pub enum Item {
    Set {
        key: String,
        value: String,
        at: Location,
    },
    Statement {
        stmt: Box<Statement>,
        at: Location,
        watermark: Option<Watermark>,
    },
}

fn is_ws(t: &TokenWithSpan) -> bool {
    matches!(t.token, Token::Whitespace(_))
}

fn keyword(t: &TokenWithSpan) -> Option<Keyword> {
    match &t.token {
        Token::Word(w) if w.quote_style.is_none() => Some(w.keyword),
        _ => None,
    }
}

fn is_word(t: &TokenWithSpan, text: &str) -> bool {
    matches!(&t.token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(text))
}

/// Splits `sql` into statements and pre-parses each.
pub fn split(sql: &str) -> Result<Vec<Item>> {
    let dialect = GenericDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| SqlError::at(e.location, e.message))?;
    let mut items = Vec::new();
    let mut current: Vec<TokenWithSpan> = Vec::new();
    let mut depth = 0i32;
    for t in tokens {
        match t.token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            Token::SemiColon if depth == 0 => {
                if let Some(item) = statement(std::mem::take(&mut current))? {
                    items.push(item);
                }
                continue;
            }
            _ => {}
        }
        current.push(t);
    }
    if let Some(item) = statement(current)? {
        items.push(item);
    }
    Ok(items)
}

fn statement(mut tokens: Vec<TokenWithSpan>) -> Result<Option<Item>> {
    while tokens.last().is_some_and(is_ws) {
        tokens.pop();
    }
    let Some(first) = tokens.iter().position(|t| !is_ws(t)) else {
        return Ok(None);
    };
    tokens.drain(..first);
    let at = tokens[0].span.start;
    if keyword(&tokens[0]) == Some(Keyword::SET) {
        return set(&tokens[1..], at).map(Some);
    }
    let mut watermark = None;
    let words: Vec<&TokenWithSpan> = tokens.iter().filter(|t| !is_ws(t)).take(2).collect();
    if words.len() == 2
        && keyword(words[0]) == Some(Keyword::CREATE)
        && keyword(words[1]) == Some(Keyword::TABLE)
    {
        watermark = take_watermark(&mut tokens)?;
    }
    strip_table_arguments(&mut tokens);
    let dialect = GenericDialect {};
    let mut stmts = Parser::new(&dialect)
        .with_tokens_with_locations(tokens)
        .parse_statements()
        .map_err(|e| SqlError::from_parser(&e.to_string(), at))?;
    if stmts.len() != 1 {
        return Err(SqlError::at(at, "expected one statement here"));
    }
    Ok(Some(Item::Statement {
        stmt: Box::new(stmts.remove(0)),
        at,
        watermark,
    }))
}

/// Flink's window functions take their input as `TUMBLE(TABLE bid, …)`, which sqlparser
/// cannot parse as a function argument: the `TABLE` keyword right after `TUMBLE(`, `HOP(`,
/// `SESSION(` or `CUMULATE(` is dropped, leaving `TUMBLE(bid, …)`.
fn strip_table_arguments(tokens: &mut Vec<TokenWithSpan>) {
    let mut i = 0;
    while i < tokens.len() {
        if keyword(&tokens[i]) == Some(Keyword::TABLE) {
            let mut prev = tokens[..i].iter().rev().filter(|t| !is_ws(t));
            let paren = prev.next().is_some_and(|t| t.token == Token::LParen);
            let func = prev.next().is_some_and(|t| {
                ["TUMBLE", "HOP", "SESSION", "CUMULATE"]
                    .iter()
                    .any(|f| is_word(t, f))
            });
            if paren && func {
                tokens.remove(i);
                partition_by_argument(tokens, i);
                continue;
            }
        }
        i += 1;
    }
}

/// `SESSION(TABLE bid PARTITION BY auction, …)`: the input table (at or after `at`) may be followed
/// by `PARTITION BY cols`, which becomes a separate argument `__partition_by(cols)`.
fn partition_by_argument(tokens: &mut Vec<TokenWithSpan>, at: usize) {
    let next =
        |from: usize, tokens: &[TokenWithSpan]| (from..tokens.len()).find(|j| !is_ws(&tokens[*j]));
    let Some(table) = next(at, tokens) else {
        return;
    };
    let Some(p) = next(table + 1, tokens) else {
        return;
    };
    if keyword(&tokens[p]) != Some(Keyword::PARTITION) {
        return;
    }
    let Some(b) = next(p + 1, tokens).filter(|b| keyword(&tokens[*b]) == Some(Keyword::BY)) else {
        return;
    };
    let span = tokens[p].span;
    let wrap = |token| TokenWithSpan { token, span };
    tokens.splice(
        p..=b,
        [
            wrap(Token::Comma),
            wrap(Token::make_word("__partition_by", None)),
            wrap(Token::LParen),
        ],
    );
    // Close it before the next comma (or closing parenthesis) outside parentheses.
    let mut depth = 0i32;
    let mut j = p + 3;
    while j < tokens.len() {
        match tokens[j].token {
            Token::LParen => depth += 1,
            Token::RParen if depth > 0 => depth -= 1,
            Token::Comma | Token::RParen if depth == 0 => break,
            _ => {}
        }
        j += 1;
    }
    tokens.insert(j, wrap(Token::RParen));
}

/// `SET 'key' = 'value'` (Flink's form), or unquoted `SET a.b = 1s`.
fn set(tokens: &[TokenWithSpan], at: Location) -> Result<Item> {
    let text = |t: &TokenWithSpan| -> Option<String> {
        Some(match &t.token {
            Token::SingleQuotedString(s) => s.clone(),
            Token::Word(w) => w.value.clone(),
            Token::Number(n, _) => n.clone(),
            Token::Period => ".".into(),
            Token::Minus => "-".into(),
            _ => return None,
        })
    };
    let usage = || SqlError::at(at, "expected SET 'key' = 'value'");
    let toks: Vec<&TokenWithSpan> = tokens.iter().filter(|t| !is_ws(t)).collect();
    let eq = toks
        .iter()
        .position(|t| t.token == Token::Eq)
        .ok_or_else(usage)?;
    let key: Option<String> = toks[..eq].iter().map(|t| text(t)).collect();
    let value: Option<String> = toks[eq + 1..].iter().map(|t| text(t)).collect();
    match (key, value) {
        (Some(k), Some(v)) if !k.is_empty() && !v.is_empty() => Ok(Item::Set {
            key: k,
            value: v,
            at,
        }),
        _ => Err(usage()),
    }
}

/// Takes `WATERMARK FOR col AS expr` (and the comma that separates it) out of a
/// `CREATE TABLE`'s column list.
fn take_watermark(tokens: &mut Vec<TokenWithSpan>) -> Result<Option<Watermark>> {
    let mut depth = 0;
    let mut start = None;
    for (i, t) in tokens.iter().enumerate() {
        match t.token {
            Token::LParen => depth += 1,
            Token::RParen => depth -= 1,
            _ if depth == 1 && is_word(t, "WATERMARK") => {
                let prev = tokens[..i].iter().rev().find(|t| !is_ws(t));
                if prev.is_some_and(|p| matches!(p.token, Token::LParen | Token::Comma)) {
                    start = Some(i);
                    break;
                }
            }
            _ => {}
        }
    }
    let Some(start) = start else { return Ok(None) };
    let at = tokens[start].span.start;
    let expect = |i: usize, what: &str| -> Result<usize> {
        let j = (i..tokens.len())
            .find(|&j| !is_ws(&tokens[j]))
            .ok_or_else(|| SqlError::at(at, format!("expected {what} in WATERMARK FOR")))?;
        Ok(j)
    };
    let f = expect(start + 1, "FOR")?;
    if keyword(&tokens[f]) != Some(Keyword::FOR) {
        return Err(SqlError::at(
            tokens[f].span.start,
            "expected WATERMARK FOR <column> AS <expression>",
        ));
    }
    let c = expect(f + 1, "a column")?;
    let column = match &tokens[c].token {
        Token::Word(w) if w.quote_style.is_some() => w.value.clone(),
        Token::Word(w) => w.value.to_lowercase(),
        _ => {
            return Err(SqlError::at(
                tokens[c].span.start,
                "expected the event-time column after WATERMARK FOR",
            ))
        }
    };
    let a = expect(c + 1, "AS")?;
    if keyword(&tokens[a]) != Some(Keyword::AS) {
        return Err(SqlError::at(
            tokens[a].span.start,
            "expected AS <expression> after WATERMARK FOR <column>",
        ));
    }
    // The expression runs to the next ',' or ')' of the column list.
    let mut end = a + 1;
    let mut d = 0;
    while end < tokens.len() {
        match tokens[end].token {
            Token::LParen => d += 1,
            Token::RParen if d == 0 => break,
            Token::RParen => d -= 1,
            Token::Comma if d == 0 => break,
            _ => {}
        }
        end += 1;
    }
    let expr_tokens: Vec<TokenWithSpan> = tokens[a + 1..end].to_vec();
    let dialect = GenericDialect {};
    let mut parser = Parser::new(&dialect).with_tokens_with_locations(expr_tokens);
    let expr = parser
        .parse_expr()
        .map_err(|e| SqlError::from_parser(&e.to_string(), at))?;
    if parser.peek_token_ref().token != Token::EOF {
        return Err(SqlError::at(
            parser.peek_token_ref().span.start,
            "unexpected text after the watermark expression",
        ));
    }
    // Remove the clause and one separating comma (before it, or after it if it came first).
    let before = tokens[..start].iter().rposition(|t| !is_ws(t));
    let (from, to) = match before {
        Some(b) if tokens[b].token == Token::Comma => (b, end),
        _ if end < tokens.len() && tokens[end].token == Token::Comma => (start, end + 1),
        _ => (start, end),
    };
    tokens.drain(from..to);
    Ok(Some(Watermark {
        column,
        expr: expr.to_string(),
        at,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_sets_and_watermarks() {
        let sql = "SET 'execution.checkpointing.interval' = '1s';\n\
                   SET parallelism.default = 2;\n\
                   CREATE TABLE bid (\n  auction BIGINT,\n  date_time TIMESTAMP(3),\n  WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND\n) WITH ('connector' = 'nexmark');\n\
                   -- a comment\n\
                   INSERT INTO out SELECT * FROM bid;;";
        let items = split(sql).unwrap();
        assert_eq!(items.len(), 4);
        match &items[0] {
            Item::Set { key, value, .. } => {
                assert_eq!(
                    (key.as_str(), value.as_str()),
                    ("execution.checkpointing.interval", "1s")
                )
            }
            other => panic!("{other:?}"),
        }
        match &items[1] {
            Item::Set { key, value, .. } => {
                assert_eq!((key.as_str(), value.as_str()), ("parallelism.default", "2"))
            }
            other => panic!("{other:?}"),
        }
        match &items[2] {
            Item::Statement {
                stmt, watermark, ..
            } => {
                let w = watermark.as_ref().unwrap();
                assert_eq!(w.column, "date_time");
                assert_eq!(w.expr, "date_time - INTERVAL '4' SECOND");
                assert_eq!((w.at.line, w.at.column), (6, 3));
                assert!(matches!(**stmt, Statement::CreateTable(_)));
                assert!(!stmt.to_string().contains("WATERMARK"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn watermark_first_in_the_list_and_bad_ones() {
        let items =
            split("CREATE TABLE t (WATERMARK FOR ts AS ts, ts TIMESTAMP(3)) WITH ('a' = 'b')")
                .unwrap();
        let Item::Statement { stmt, .. } = &items[0] else {
            panic!()
        };
        assert!(stmt
            .to_string()
            .starts_with("CREATE TABLE t (ts TIMESTAMP(3))"));
        let e = split("CREATE TABLE t (ts TIMESTAMP(3), WATERMARK ts AS ts)").unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 1, column 44: expected WATERMARK FOR <column> AS <expression>"
        );
        let e = split("CREATE TABLE t (ts BIGINT,\n WATERMARK FOR ts AS ts -)").unwrap_err();
        assert!(e.to_string().starts_with("line 2, column "), "{e}");
    }

    #[test]
    fn syntax_errors_name_line_and_column() {
        let e = split("SET 'a' = 'b';\nSELEC 1").unwrap_err();
        assert!(e.to_string().starts_with("line 2, column 1: "), "{e}");
        let e = split("INSERT INTO x\nSELECT a\nFROM t WHERE )").unwrap_err();
        assert!(e.to_string().starts_with("line 3, column 14: "), "{e}");
        let e = split("SET 'a'").unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 1, column 1: expected SET 'key' = 'value'"
        );
    }
}
