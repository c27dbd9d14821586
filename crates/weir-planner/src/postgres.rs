//! The PostgreSQL sink's statements: how each Arrow column is written and the `INSERT` and
//! `CREATE TABLE` it runs, built from its spec and input schema. The job manager checks them
//! at submit time; the sink (weir-connectors) runs them.

use crate::error::{PlanError, Result};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use weir_types::{OnConflict, PostgresSinkSpec};

/// How one Arrow column goes to PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PgType {
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Text,
    Bool,
    Bytea,
    Timestamp(TimeUnit, bool),
}

impl PgType {
    pub fn of(t: &DataType) -> Option<PgType> {
        Some(match t {
            DataType::Int8 | DataType::Int16 | DataType::UInt8 => PgType::Int2,
            DataType::Int32 | DataType::UInt16 => PgType::Int4,
            DataType::Int64 | DataType::UInt32 | DataType::UInt64 => PgType::Int8,
            DataType::Float32 => PgType::Float4,
            DataType::Float64 => PgType::Float8,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => PgType::Text,
            DataType::Boolean => PgType::Bool,
            DataType::Binary | DataType::LargeBinary => PgType::Bytea,
            DataType::Timestamp(unit, tz) => PgType::Timestamp(*unit, tz.is_some()),
            _ => return None,
        })
    }

    pub fn sql(&self) -> &'static str {
        match self {
            PgType::Int2 => "int2",
            PgType::Int4 => "int4",
            PgType::Int8 => "int8",
            PgType::Float4 => "float4",
            PgType::Float8 => "float8",
            PgType::Text => "text",
            PgType::Bool => "bool",
            PgType::Bytea => "bytea",
            PgType::Timestamp(_, false) => "timestamp",
            PgType::Timestamp(_, true) => "timestamptz",
        }
    }
}

/// Quotes an SQL identifier (`a.b` is schema `a`, table `b`).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

pub fn quote_table(name: &str) -> String {
    name.split('.')
        .map(quote_ident)
        .collect::<Vec<_>>()
        .join(".")
}

pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The statements the sink runs, built from the spec and the input schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Sql {
    pub insert: String,
    pub create: String,
    pub types: Vec<PgType>,
}

pub fn build_sql(spec: &PostgresSinkSpec, schema: &SchemaRef, op: &str) -> Result<Sql> {
    let mut types = Vec::new();
    let mut cols = Vec::new();
    let mut casts = Vec::new();
    let mut defs = Vec::new();
    for (i, f) in schema.fields().iter().enumerate() {
        let t = PgType::of(f.data_type()).ok_or_else(|| {
            PlanError::Invalid(format!(
                "postgres_sink {op:?}: column {:?} has type {}, which it cannot write (integers, floats, strings, booleans, binary, timestamps)",
                f.name(),
                f.data_type()
            ))
        })?;
        cols.push(quote_ident(f.name()));
        casts.push(format!("${}::{}[]", i + 1, t.sql()));
        defs.push(format!(
            "{} {}{}",
            quote_ident(f.name()),
            t.sql(),
            if f.is_nullable() { "" } else { " NOT NULL" }
        ));
        types.push(t);
    }
    for k in &spec.key {
        if schema.field_with_name(k).is_err() {
            return Err(PlanError::Invalid(format!(
                "postgres_sink {op:?}: key column {k:?} is not in its input"
            )));
        }
    }
    let table = quote_table(&spec.table);
    let mut insert = format!(
        "INSERT INTO {table} ({}) SELECT * FROM unnest({})",
        cols.join(", "),
        casts.join(", ")
    );
    if !spec.key.is_empty() {
        let keys: Vec<String> = spec.key.iter().map(|k| quote_ident(k)).collect();
        let rest: Vec<String> = schema
            .fields()
            .iter()
            .filter(|f| !spec.key.contains(f.name()))
            .map(|f| format!("{0} = EXCLUDED.{0}", quote_ident(f.name())))
            .collect();
        insert.push_str(&format!(" ON CONFLICT ({}) ", keys.join(", ")));
        if spec.on_conflict == OnConflict::Nothing || rest.is_empty() {
            insert.push_str("DO NOTHING");
        } else {
            insert.push_str(&format!("DO UPDATE SET {}", rest.join(", ")));
        }
        defs.push(format!("PRIMARY KEY ({})", keys.join(", ")));
    }
    let create = format!("CREATE TABLE IF NOT EXISTS {table} ({})", defs.join(", "));
    Ok(Sql {
        insert,
        create,
        types,
    })
}

/// Checks the sink's settings against its input schema (at submit time).
pub fn check(spec: &PostgresSinkSpec, schema: &SchemaRef, op: &str) -> Result<()> {
    build_sql(spec, schema, op).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{Field, Schema};
    use std::sync::Arc;
    use weir_types::PostgresSinkMode;

    fn spec(key: &[&str], on_conflict: OnConflict) -> PostgresSinkSpec {
        PostgresSinkSpec {
            url: "postgresql://u@h/d".into(),
            table: "public.counts".into(),
            mode: PostgresSinkMode::Upsert,
            key: key.iter().map(|k| k.to_string()).collect(),
            on_conflict,
            create_table: true,
            batch_rows: 10,
            connect_timeout_ms: 10,
        }
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    #[test]
    fn statements_are_built_from_the_schema() {
        let s = build_sql(&spec(&["id"], OnConflict::Update), &schema(), "o").unwrap();
        assert_eq!(
            s.insert,
            "INSERT INTO \"public\".\"counts\" (\"id\", \"name\") SELECT * FROM unnest($1::int8[], $2::text[]) ON CONFLICT (\"id\") DO UPDATE SET \"name\" = EXCLUDED.\"name\""
        );
        assert_eq!(
            s.create,
            "CREATE TABLE IF NOT EXISTS \"public\".\"counts\" (\"id\" int8 NOT NULL, \"name\" text, PRIMARY KEY (\"id\"))"
        );
        let s = build_sql(&spec(&["id"], OnConflict::Nothing), &schema(), "o").unwrap();
        assert!(s.insert.ends_with("ON CONFLICT (\"id\") DO NOTHING"));
        let s = build_sql(&spec(&[], OnConflict::Update), &schema(), "o").unwrap();
        assert!(s.insert.ends_with("unnest($1::int8[], $2::text[])"));
        let e = build_sql(&spec(&["nope"], OnConflict::Update), &schema(), "o").unwrap_err();
        assert!(e.to_string().contains("\"nope\""), "{e}");
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_table("a.b"), "\"a\".\"b\"");
    }
}
