//! Flink's window table-valued functions:
//! `FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(date_time), INTERVAL '10' SECOND))` and
//! `HOP(TABLE bid, DESCRIPTOR(date_time), <slide>, <size>)`.
//!
//! DataFusion cannot plan table functions, so each call is replaced in the statement by a
//! table named `__window_<n>` whose columns are the input's plus `window_start` and
//! `window_end`; DataFusion then plans `GROUP BY …, window_start, window_end` over it as
//! usual, and `translate` turns that aggregate into a `window_aggregate` operator reading the
//! input relation.

use crate::catalog::{Catalog, WindowDef};
use crate::error::{Result, SqlError};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::common::TableReference;
use datafusion::logical_expr::planner::ContextProvider;
use datafusion::sql::sqlparser::ast::{
    DateTimeField, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Statement, TableFactor,
    Value, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Location;
use std::ops::ControlFlow;
use std::sync::Arc;

/// `INTERVAL '10' SECOND`, `INTERVAL '1' MINUTE`, `INTERVAL '500' MILLISECOND`,
/// `INTERVAL '10 seconds'` in milliseconds.
pub fn interval_ms(e: &Expr) -> Option<u64> {
    let Expr::Interval(i) = e else { return None };
    let Expr::Value(v) = i.value.as_ref() else {
        return None;
    };
    let text = match &v.value {
        Value::SingleQuotedString(s) | Value::Number(s, _) => s.trim().to_string(),
        _ => return None,
    };
    let factor = match &i.leading_field {
        None => return crate::connectors::parse_duration_ms(&text),
        Some(DateTimeField::Millisecond | DateTimeField::Milliseconds) => 1,
        Some(DateTimeField::Second | DateTimeField::Seconds) => 1000,
        Some(DateTimeField::Minute | DateTimeField::Minutes) => 60_000,
        Some(DateTimeField::Hour | DateTimeField::Hours) => 3_600_000,
        Some(DateTimeField::Day | DateTimeField::Days) => 86_400_000,
        Some(_) => return None,
    };
    text.parse::<u64>().ok()?.checked_mul(factor)
}

fn name_of(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(id) if id.quote_style.is_some() => Some(id.value.clone()),
        Expr::Identifier(id) => Some(id.value.to_lowercase()),
        Expr::CompoundIdentifier(ids) => ids.last().map(|id| id.value.to_lowercase()),
        _ => None,
    }
}

struct Rewriter<'a> {
    catalog: &'a Catalog,
    at: Location,
    next: usize,
    found: Vec<(String, WindowDef)>,
}

impl Rewriter<'_> {
    fn window(&self, f: &datafusion::sql::sqlparser::ast::Function) -> Result<WindowDef> {
        let at = self.at;
        let fname = f.name.to_string().to_uppercase();
        let usage = match fname.as_str() {
            "TUMBLE" => "TUMBLE(TABLE <table>, DESCRIPTOR(<time column>), INTERVAL '<n>' <unit>)",
            "HOP" => {
                "HOP(TABLE <table>, DESCRIPTOR(<time column>), <slide interval>, <size interval>)"
            }
            "SESSION" => {
                "SESSION(TABLE <table> PARTITION BY <key columns>, DESCRIPTOR(<time column>), <gap interval>)"
            }
            other => {
                return Err(SqlError::at(
                    at,
                    format!(
                        "the window function {other} is not supported yet (TUMBLE, HOP and SESSION are)"
                    ),
                ))
            }
        };
        let bad = || SqlError::at(at, format!("expected {usage}"));
        let FunctionArguments::List(list) = &f.args else {
            return Err(bad());
        };
        let mut args: Vec<&Expr> = list
            .args
            .iter()
            .map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Ok(e),
                _ => Err(bad()),
            })
            .collect::<Result<_>>()?;
        // `TABLE t PARTITION BY cols` arrives as a `__partition_by(cols)` argument.
        let mut partition = Vec::new();
        if let Some(Expr::Function(p)) = args.get(1) {
            if p.name.to_string().eq_ignore_ascii_case("__partition_by") {
                let FunctionArguments::List(l) = &p.args else {
                    return Err(bad());
                };
                for a in &l.args {
                    let FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) = a else {
                        return Err(bad());
                    };
                    match e {
                        Expr::Tuple(es) => {
                            for e in es {
                                partition.push(name_of(e).ok_or_else(bad)?);
                            }
                        }
                        Expr::Nested(e) => partition.push(name_of(e).ok_or_else(bad)?),
                        e => partition.push(name_of(e).ok_or_else(bad)?),
                    }
                }
                args.remove(1);
            }
        }
        if fname == "SESSION" && partition.is_empty() {
            return Err(SqlError::at(
                at,
                format!("SESSION windows need PARTITION BY the GROUP BY key columns: {usage}"),
            ));
        }
        if fname != "SESSION" && !partition.is_empty() {
            return Err(SqlError::at(at, format!("{fname} takes no PARTITION BY")));
        }
        let expected = if fname == "HOP" { 4 } else { 3 };
        if args.len() != expected {
            return Err(bad());
        }
        let input = name_of(args[0]).ok_or_else(bad)?;
        let time = match args[1] {
            Expr::Function(d) if d.name.to_string().eq_ignore_ascii_case("DESCRIPTOR") => {
                match &d.args {
                    FunctionArguments::List(l) if l.args.len() == 1 => match &l.args[0] {
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => name_of(e),
                        _ => None,
                    },
                    _ => None,
                }
            }
            _ => None,
        }
        .ok_or_else(bad)?;
        let interval = |e: &Expr| {
            interval_ms(e).filter(|ms| *ms > 0).ok_or_else(|| {
                SqlError::at(
                    at,
                    format!("{e} is not a positive interval like INTERVAL '10' SECOND"),
                )
            })
        };
        let mut gap_ms = 0;
        let (slide_ms, size_ms) = match fname.as_str() {
            "TUMBLE" => {
                let s = interval(args[2])?;
                (s, s)
            }
            "SESSION" => {
                gap_ms = interval(args[2])?;
                (0, 0)
            }
            _ => (interval(args[2])?, interval(args[3])?),
        };
        if slide_ms > size_ms {
            return Err(SqlError::at(at, "HOP: the slide must not exceed the size"));
        }
        let source = self
            .catalog
            .get_table_source(TableReference::bare(input.as_str()))
            .map_err(|e| SqlError::from_datafusion(e, at))?;
        let input_schema = source.schema();
        let t = input_schema.field_with_name(&time).map_err(|_| {
            SqlError::at(at, format!("{fname}: {input} has no column {time} (DESCRIPTOR names the event-time column)"))
        })?;
        if !matches!(t.data_type(), DataType::Timestamp(_, _)) {
            return Err(SqlError::at(
                at,
                format!(
                    "{fname}: {time} is {}, not a TIMESTAMP(3) event-time column",
                    t.data_type()
                ),
            ));
        }
        let mut fields: Vec<Field> = input_schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        for name in ["window_start", "window_end"] {
            if fields.iter().any(|f| f.name() == name) {
                return Err(SqlError::at(
                    at,
                    format!("{fname}: {input} already has a column {name}"),
                ));
            }
            fields.push(Field::new(
                name,
                DataType::Timestamp(TimeUnit::Millisecond, None),
                false,
            ));
        }
        for p in &partition {
            if input_schema.field_with_name(p).is_err() {
                return Err(SqlError::at(
                    at,
                    format!("{fname}: {input} has no column {p} (in PARTITION BY)"),
                ));
            }
        }
        Ok(WindowDef {
            input,
            time,
            size_ms,
            slide_ms,
            gap_ms,
            partition,
            schema: Arc::new(Schema::new(fields)),
        })
    }
}

impl VisitorMut for Rewriter<'_> {
    type Break = SqlError;

    fn pre_visit_table_factor(&mut self, tf: &mut TableFactor) -> ControlFlow<SqlError> {
        let TableFactor::TableFunction { expr, alias } = tf else {
            return ControlFlow::Continue(());
        };
        let Expr::Function(f) = expr else {
            return ControlFlow::Break(SqlError::at(
                self.at,
                format!("TABLE({expr}) is not a window function"),
            ));
        };
        let def = match self.window(f) {
            Ok(d) => d,
            Err(e) => return ControlFlow::Break(e),
        };
        // The same windows over the same input are one window table, so the plans over it
        // can be recognised as the same and computed once (`translate`'s sub-plan reuse).
        let known = self
            .found
            .iter()
            .map(|(n, d)| (n, d))
            .chain(self.catalog.windows.iter())
            .find(|(_, d)| **d == def)
            .map(|(n, _)| n.clone());
        let name = match known {
            Some(n) => n,
            None => {
                let n = format!("__window_{}", self.next);
                self.next += 1;
                self.found.push((n.clone(), def));
                n
            }
        };
        let dialect = GenericDialect {};
        let parsed = Parser::new(&dialect)
            .try_with_sql(&name)
            .and_then(|mut p| p.parse_table_factor());
        let mut table = match parsed {
            Ok(t) => t,
            Err(e) => return ControlFlow::Break(SqlError::at(self.at, e.to_string())),
        };
        if let TableFactor::Table { alias: a, .. } = &mut table {
            *a = alias.clone();
        }
        *tf = table;
        ControlFlow::Continue(())
    }
}

/// Replaces window function calls in `stmt` by window tables and registers them.
pub fn rewrite(stmt: &mut Statement, catalog: &mut Catalog, at: Location) -> Result<()> {
    let next = catalog.windows.len();
    let found = {
        let mut r = Rewriter {
            catalog: &*catalog,
            at,
            next,
            found: Vec::new(),
        };
        if let ControlFlow::Break(e) = stmt.visit(&mut r) {
            return Err(e);
        }
        r.found
    };
    for (name, def) in found {
        catalog.windows.insert(name, def);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expr(sql: &str) -> Expr {
        Parser::new(&GenericDialect {})
            .try_with_sql(sql)
            .unwrap()
            .parse_expr()
            .unwrap()
    }

    #[test]
    fn intervals() {
        assert_eq!(interval_ms(&expr("INTERVAL '10' SECOND")), Some(10_000));
        assert_eq!(interval_ms(&expr("INTERVAL '2' MINUTE")), Some(120_000));
        assert_eq!(interval_ms(&expr("INTERVAL '10 seconds'")), Some(10_000));
        assert_eq!(interval_ms(&expr("INTERVAL '1' MONTH")), None);
        assert_eq!(interval_ms(&expr("10")), None);
    }
}
