//! `CREATE TABLE` to the catalog's table definitions (columns, `WITH` options, primary key,
//! `WATERMARK FOR` and its delay), and table and view names as DataFusion resolves them.

use crate::catalog::{normalize_schema, Catalog, TableDef};
use crate::error::{Result, SqlError};
use crate::{script, windows};
use datafusion::sql::planner::{ParserOptions, SqlToRel};
use datafusion::sql::sqlparser::ast::{
    ColumnOption, CreateTableOptions, Expr as SqlExpr, ObjectName, SqlOption, TableConstraint,
    Value,
};
use datafusion::sql::sqlparser::tokenizer::Location;
use std::sync::Arc;

/// The delay of `WATERMARK FOR c AS c` (0) or `… AS c - INTERVAL '<n>' <unit>`.
fn watermark_delay(w: &script::Watermark) -> Result<u64> {
    use datafusion::sql::sqlparser::ast::BinaryOperator;
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    let unsupported = || {
        SqlError::at(
            w.at,
            format!(
                "WATERMARK FOR {c} AS {}: Weir takes `{c}` or `{c} - INTERVAL '<n>' <unit>` (a bounded delay)",
                w.expr,
                c = w.column
            ),
        )
    };
    let e = Parser::new(&GenericDialect {})
        .try_with_sql(&w.expr)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| SqlError::at(w.at, e.to_string()))?;
    let is_col = |e: &SqlExpr| matches!(e, SqlExpr::Identifier(id) if id.value.eq_ignore_ascii_case(&w.column));
    match &e {
        e if is_col(e) => Ok(0),
        SqlExpr::BinaryOp {
            left,
            op: BinaryOperator::Minus,
            right,
        } if is_col(left) => windows::interval_ms(right).ok_or_else(unsupported),
        _ => Err(unsupported()),
    }
}

/// A table or view name as DataFusion resolves it: unquoted parts lower-cased, the last part.
pub(crate) fn object_name(n: &ObjectName) -> String {
    match n.0.last().and_then(|p| p.as_ident()) {
        Some(id) if id.quote_style.is_some() => id.value.clone(),
        Some(id) => id.value.to_lowercase(),
        None => n.to_string().to_lowercase(),
    }
}

pub(crate) fn table_def(
    catalog: &Catalog,
    ct: &datafusion::sql::sqlparser::ast::CreateTable,
    at: Location,
    watermark: Option<script::Watermark>,
) -> Result<TableDef> {
    let name = object_name(&ct.name);
    if ct.query.is_some() {
        return Err(SqlError::at(
            at,
            "CREATE TABLE … AS SELECT is not supported: create the table, then INSERT INTO it",
        ));
    }
    let opts = ParserOptions::new().with_map_string_types_to_utf8view(false);
    let planner = SqlToRel::new_with_options(catalog, opts);
    let schema = planner
        .build_schema(ct.columns.clone())
        .map_err(|e| SqlError::from_datafusion(e, at))?;
    let schema = Arc::new(normalize_schema(&schema));
    let mut options = std::collections::BTreeMap::new();
    if let CreateTableOptions::With(list) = &ct.table_options {
        for o in list {
            let SqlOption::KeyValue { key, value } = o else {
                return Err(SqlError::at(
                    at,
                    format!("table {name}: WITH takes 'key' = 'value' pairs, not {o}"),
                ));
            };
            let v = match value {
                SqlExpr::Value(v) => match &v.value {
                    Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
                    Value::Number(n, _) => n.to_string(),
                    Value::Boolean(b) => b.to_string(),
                    other => other.to_string(),
                },
                other => other.to_string(),
            };
            options.insert(key.value.clone(), v);
        }
    } else if !matches!(ct.table_options, CreateTableOptions::None) {
        return Err(SqlError::at(
            at,
            format!("table {name}: give the connector's options as WITH ('key' = 'value', …)"),
        ));
    }
    let mut primary_key = Vec::new();
    for c in &ct.constraints {
        if let TableConstraint::PrimaryKey(pk) = c {
            for col in &pk.columns {
                primary_key.push(match &col.column.expr {
                    SqlExpr::Identifier(id) if id.quote_style.is_some() => id.value.clone(),
                    SqlExpr::Identifier(id) => id.value.to_lowercase(),
                    other => {
                        return Err(SqlError::at(
                            at,
                            format!("table {name}: PRIMARY KEY takes columns, not {other}"),
                        ))
                    }
                });
            }
        }
    }
    for col in &ct.columns {
        if col
            .options
            .iter()
            .any(|o| matches!(o.option, ColumnOption::PrimaryKey(_)))
        {
            primary_key.push(if col.name.quote_style.is_some() {
                col.name.value.clone()
            } else {
                col.name.value.to_lowercase()
            });
        }
    }
    for k in &primary_key {
        if schema.field_with_name(k).is_err() {
            return Err(SqlError::at(
                at,
                format!("table {name}: PRIMARY KEY column {k} is not a column of the table"),
            ));
        }
    }
    let watermark = match watermark {
        None => None,
        Some(w) => {
            let f = schema.field_with_name(&w.column).map_err(|_| {
                SqlError::at(
                    w.at,
                    format!("table {name}: WATERMARK FOR {}: no such column", w.column),
                )
            })?;
            if !matches!(
                f.data_type(),
                datafusion::arrow::datatypes::DataType::Timestamp(_, _)
            ) {
                return Err(SqlError::at(
                    w.at,
                    format!(
                        "table {name}: WATERMARK FOR {}: the column is {}, not TIMESTAMP(3)",
                        w.column,
                        f.data_type()
                    ),
                ));
            }
            Some((w.column.clone(), watermark_delay(&w)?))
        }
    };
    Ok(TableDef {
        name,
        schema,
        options,
        primary_key,
        watermark,
        at,
    })
}
