//! `CREATE TABLE … WITH ('connector' = …)` to Weir's sources and sinks.
//!
//! Option names follow Flink's where Flink has the connector (`filesystem`, `kafka`, `jdbc`,
//! `blackhole`, `print`); the `nexmark` and `postgres` options are Weir's. Every option is
//! checked: an unknown one is an error that lists the known ones.

use crate::catalog::TableDef;
use crate::error::{Result, SqlError};
use datafusion::arrow::datatypes::{DataType, Schema};
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;
use weir_types::{NexmarkTable, OperatorKind, WatermarkAlignment};

/// The options of one table, with the ones read so far.
struct Opts<'a> {
    table: &'a TableDef,
    used: BTreeSet<&'static str>,
}

impl<'a> Opts<'a> {
    fn new(table: &'a TableDef) -> Self {
        let mut used = BTreeSet::new();
        used.insert("connector");
        Self { table, used }
    }

    fn err(&self, msg: impl std::fmt::Display) -> SqlError {
        SqlError::at(self.table.at, format!("table {}: {msg}", self.table.name))
    }

    fn get(&mut self, key: &'static str) -> Option<&'a str> {
        self.used.insert(key);
        self.table.options.get(key).map(String::as_str)
    }

    fn required(&mut self, key: &'static str) -> Result<&'a str> {
        self.get(key)
            .ok_or_else(|| self.err(format!("option '{key}' is required")))
    }

    fn number(&mut self, key: &'static str) -> Result<Option<u64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => {
                v.trim().parse().map(Some).map_err(|_| {
                    self.err(format!("option '{key}' must be a whole number, not '{v}'"))
                })
            }
        }
    }

    fn boolean(&mut self, key: &'static str) -> Result<Option<bool>> {
        match self.get(key).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(None),
            Some(v) if v == "true" => Ok(Some(true)),
            Some(v) if v == "false" => Ok(Some(false)),
            Some(v) => Err(self.err(format!("option '{key}' must be true or false, not '{v}'"))),
        }
    }

    fn duration_ms(&mut self, key: &'static str) -> Result<Option<u64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => parse_duration_ms(v).map(Some).ok_or_else(|| {
                self.err(format!(
                    "option '{key}': '{v}' is not a duration (e.g. 500ms, 10s, 1min)"
                ))
            }),
        }
    }

    /// Options starting with `prefix` (Kafka's `properties.*`), prefix removed.
    fn prefixed(&mut self, prefix: &str) -> Map<String, Value> {
        self.table
            .options
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix(prefix)
                    .map(|rest| (rest.to_string(), Value::String(v.clone())))
            })
            .collect()
    }

    /// Errors on options nobody read (a typo must not be silently ignored).
    fn finish(self, connector: &str, also: &[&str]) -> Result<()> {
        let unknown: Vec<&String> = self
            .table
            .options
            .keys()
            .filter(|k| !self.used.contains(k.as_str()) && !also.iter().any(|p| k.starts_with(p)))
            .collect();
        if let Some(k) = unknown.first() {
            let known: Vec<&str> = self.used.iter().copied().collect();
            return Err(self.err(format!(
                "unknown option '{k}' for the {connector} connector (known: {}{})",
                known.join(", "),
                if also.is_empty() {
                    String::new()
                } else {
                    format!(", {}*", also.join("*, "))
                }
            )));
        }
        Ok(())
    }
}

/// `500ms`, `10s`, `10 s`, `1min`, `2h`, or a bare number of milliseconds.
pub fn parse_duration_ms(text: &str) -> Option<u64> {
    let t = text.trim().to_ascii_lowercase();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let factor = match unit.trim() {
        "" | "ms" | "milli" | "millis" | "milliseconds" => 1,
        "s" | "sec" | "secs" | "second" | "seconds" => 1000,
        "min" | "mins" | "minute" | "minutes" => 60_000,
        "h" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(factor)
}

/// A size in bytes as Flink's `MemorySize` reads it: `64mb`, `64 mb`, `1g`, `4096`.
pub fn parse_bytes(text: &str) -> Option<u64> {
    let t = text.trim().to_ascii_lowercase();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let shift = match unit.trim() {
        "" | "b" | "bytes" => 0,
        "k" | "kb" | "kibibytes" => 10,
        "m" | "mb" | "mebibytes" => 20,
        "g" | "gb" | "gibibytes" => 30,
        "t" | "tb" | "tebibytes" => 40,
        _ => return None,
    };
    n.checked_mul(1u64 << shift)
}

/// A column type as the file and Kafka sources name it.
fn type_name(t: &DataType) -> Option<&'static str> {
    Some(match t {
        DataType::Int64 => "int64",
        DataType::Int32 => "int32",
        DataType::Float64 => "float64",
        DataType::Utf8 => "utf8",
        DataType::Boolean => "bool",
        DataType::Timestamp(_, _) => "timestamp",
        _ => return None,
    })
}

fn schema_pairs(opts: &Opts, schema: &Schema, connector: &str) -> Result<Vec<Value>> {
    schema
        .fields()
        .iter()
        .map(|f| {
            let t = type_name(f.data_type()).ok_or_else(|| {
                opts.err(format!(
                    "column {} has type {}, which the {connector} connector does not read (use BIGINT, INT, DOUBLE, VARCHAR, BOOLEAN or TIMESTAMP(3))",
                    f.name(),
                    f.data_type()
                ))
            })?;
            Ok(json!([f.name(), t]))
        })
        .collect()
}

fn file_format(opts: &mut Opts, sink: bool) -> Result<&'static str> {
    Ok(
        match opts.required("format")?.to_ascii_lowercase().as_str() {
            "csv" => "csv",
            "json" | "jsonl" => "jsonl",
            "parquet" => "parquet",
            "raw" | "lines" => "lines",
            other => {
                return Err(opts.err(format!(
                    "format '{other}' is not one of csv, json, parquet, raw{}",
                    if sink { "" } else { " (one line per row)" }
                )))
            }
        },
    )
}

fn kafka_format(opts: &mut Opts) -> Result<&'static str> {
    Ok(
        match opts
            .get("format")
            .unwrap_or("json")
            .to_ascii_lowercase()
            .as_str()
        {
            "json" => "json",
            "csv" => "csv",
            "raw" => "raw",
            other => return Err(opts.err(format!("format '{other}' is not one of json, csv, raw"))),
        },
    )
}

fn decode(opts: &Opts, v: Value) -> Result<OperatorKind> {
    serde_json::from_value(v).map_err(|e| opts.err(e.to_string()))
}

/// Flink's watermark alignment options of a source table.
fn alignment(o: &mut Opts) -> Result<Option<WatermarkAlignment>> {
    const GROUP: &str = "scan.watermark.alignment.group";
    const DRIFT: &str = "scan.watermark.alignment.max-drift";
    let group = o.get(GROUP);
    let drift = o.duration_ms(DRIFT)?;
    let (group, max_drift_ms) = match (group, drift) {
        (None, None) => return Ok(None),
        (Some(g), Some(d)) => (g.trim(), d),
        (Some(_), None) => return Err(o.err(format!("option '{GROUP}' needs '{DRIFT}'"))),
        (None, Some(_)) => return Err(o.err(format!("option '{DRIFT}' needs '{GROUP}'"))),
    };
    if group.is_empty() {
        return Err(o.err(format!("option '{GROUP}' must not be empty")));
    }
    if o.table.watermark.is_none() {
        return Err(o.err(
            "watermark alignment needs a WATERMARK FOR clause: it aligns the table's watermarks",
        ));
    }
    Ok(Some(WatermarkAlignment {
        group: group.to_string(),
        max_drift_ms,
    }))
}

/// The source operator reading `columns` of `table` (sources that can skip columns make only
/// those; the others read every declared column), and its watermark alignment.
pub fn source(
    table: &TableDef,
    columns: &[String],
) -> Result<(OperatorKind, Option<WatermarkAlignment>)> {
    let connector = table.connector()?.to_ascii_lowercase();
    let mut o = Opts::new(table);
    let aligned = alignment(&mut o)?;
    let kind = match connector.as_str() {
        "nexmark" => {
            let which = match o.get("table") {
                Some(t) => NexmarkTable::parse(t).ok_or_else(|| {
                    o.err(format!("nexmark table '{t}' is not person, auction or bid"))
                })?,
                None => NexmarkTable::parse(&table.name)
                    .ok_or_else(|| o.err("option 'table' (person, auction or bid) is required"))?,
            };
            check_nexmark_columns(&o, which)?;
            let mut spec = json!({
                "type": "nexmark",
                "table": which.name(),
                "columns": columns,
            });
            for (key, field) in [
                ("events", "events"),
                ("rate", "rate"),
                ("event-rate", "event_rate"),
                ("seed", "seed"),
                ("partitions", "partitions"),
                ("batch-size", "batch_size"),
                ("person-proportion", "person_proportion"),
                ("auction-proportion", "auction_proportion"),
                ("bid-proportion", "bid_proportion"),
            ] {
                if let Some(n) = o.number(key)? {
                    spec[field] = json!(n);
                }
            }
            decode(&o, spec)?
        }
        "filesystem" => {
            let format = file_format(&mut o, false)?;
            let mut spec = json!({
                "type": "file_source",
                "path": o.required("path")?,
                "format": format,
            });
            if format == "parquet" || format == "jsonl" {
                // Self-describing rows: read only the columns the query uses (Parquet then
                // fetches only their column chunks).
                let read: Vec<_> = table
                    .schema
                    .fields()
                    .iter()
                    .filter(|f| columns.contains(f.name()))
                    .cloned()
                    .collect();
                let by_query: Vec<_> = columns
                    .iter()
                    .filter_map(|c| read.iter().find(|f| f.name() == c).cloned())
                    .collect();
                let projected = Schema::new(by_query);
                spec["schema"] = Value::Array(schema_pairs(&o, &projected, "filesystem")?);
            } else if format != "lines" {
                spec["schema"] = Value::Array(schema_pairs(&o, &table.schema, "filesystem")?);
            }
            if format == "csv" && o.boolean("csv.header")? == Some(true) {
                spec["header"] = json!(true);
            }
            if format == "csv" {
                if let Some(n) = o.get("csv.null-literal") {
                    spec["null_literal"] = json!(n);
                }
            }
            if let Some(ms) = o.duration_ms("source.monitor-interval")? {
                if ms == 0 {
                    return Err(o.err("option 'source.monitor-interval' must be above 0 (leave it out to read the files once)"));
                }
                spec["monitor_interval_ms"] = json!(ms);
            }
            if let Some(ms) = o.duration_ms("source.forget-after")? {
                spec["forget_after_ms"] = json!(ms);
            }
            if let Some(v) = o.get("source.split-size") {
                let n = parse_bytes(v).ok_or_else(|| {
                    o.err(format!(
                        "option 'source.split-size': '{v}' is not a size (e.g. 64mb, 1gb, 0 to read each file whole)"
                    ))
                })?;
                spec["split_bytes"] = json!(n);
            }
            decode(&o, spec)?
        }
        "kafka" => {
            let format = kafka_format(&mut o)?;
            let mut spec = json!({
                "type": "kafka_source",
                "bootstrap_servers": o.required("properties.bootstrap.servers")?,
                "topic": o.required("topic")?,
                "format": format,
            });
            if format != "raw" {
                spec["schema"] = Value::Array(schema_pairs(&o, &table.schema, "kafka")?);
            }
            if let Some(g) = o.get("properties.group.id") {
                spec["group_id"] = json!(g);
            }
            spec["start"] = match o.get("scan.startup.mode").unwrap_or("earliest-offset") {
                "earliest-offset" => json!("earliest"),
                "latest-offset" => json!("latest"),
                "group-offsets" => json!("group"),
                "timestamp" => json!({ "timestamp": o.number("scan.startup.timestamp-millis")?
                    .ok_or_else(|| o.err("scan.startup.mode 'timestamp' needs 'scan.startup.timestamp-millis'"))? }),
                other => {
                    return Err(o.err(format!(
                        "scan.startup.mode '{other}' is not earliest-offset, latest-offset, group-offsets or timestamp"
                    )))
                }
            };
            if let Some(b) = o.boolean("scan.bounded")? {
                spec["bounded"] = json!(b);
            }
            // Flink's option of the table's format: skip messages that do not parse.
            let ignore = match format {
                "json" => Some("json.ignore-parse-errors"),
                "csv" => Some("csv.ignore-parse-errors"),
                _ => None,
            };
            if let Some(key) = ignore {
                if o.boolean(key)? == Some(true) {
                    spec["bad_records"] = json!("skip");
                }
            }
            let mut props = o.prefixed("properties.");
            props.remove("bootstrap.servers");
            props.remove("group.id");
            spec["properties"] = Value::Object(props);
            o.finish("kafka", &["properties."])?;
            return Ok((decode(&Opts::new(table), spec)?, aligned));
        }
        "blackhole" | "print" | "jdbc" | "postgres" => {
            return Err(o.err(format!(
                "the {connector} connector is a sink; it cannot be read"
            )))
        }
        other => return Err(unknown_connector(&o, other)),
    };
    o.finish(&connector, &[])?;
    Ok((kind, aligned))
}

fn check_nexmark_columns(o: &Opts, which: NexmarkTable) -> Result<()> {
    let have = which.columns();
    for f in o.table.schema.fields() {
        let Some((_, t)) = have.iter().find(|(n, _)| *n == f.name()) else {
            let names: Vec<&str> = have.iter().map(|(n, _)| *n).collect();
            return Err(o.err(format!(
                "the nexmark {} table has no column {} (columns: {})",
                which.name(),
                f.name(),
                names.join(", ")
            )));
        };
        if type_name(f.data_type()) != Some(*t) {
            let sql = match *t {
                "int64" => "BIGINT",
                "timestamp" => "TIMESTAMP(3)",
                _ => "VARCHAR",
            };
            return Err(o.err(format!(
                "column {} is declared {}, the nexmark {} table has it as {sql}",
                f.name(),
                f.data_type(),
                which.name()
            )));
        }
    }
    Ok(())
}

fn unknown_connector(o: &Opts, name: &str) -> SqlError {
    o.err(format!(
        "unknown connector '{name}' (sources: nexmark, filesystem, kafka; sinks: filesystem, kafka, jdbc/postgres, blackhole, print)"
    ))
}

/// The sink operator writing `table`. `updating` names the key columns (of the table) when
/// the query produces an updating result rather than appends.
pub fn sink(table: &TableDef, updating: Option<&[String]>) -> Result<OperatorKind> {
    let connector = table.connector()?.to_ascii_lowercase();
    let mut o = Opts::new(table);
    let appends_only = |o: &Opts, c: &str| -> Result<()> {
        match updating {
            Some(keys) => Err(o.err(format!(
                "the query produces an updating result (a GROUP BY without a window, keyed by {}) and the {c} connector only takes appends; write it to a table that takes updates (jdbc/postgres with a PRIMARY KEY, print or blackhole)",
                keys.join(", ")
            ))),
            None => Ok(()),
        }
    };
    let kind = match connector.as_str() {
        "blackhole" => json!({ "type": "blackhole_sink" }),
        "print" => match updating {
            Some(keys) => json!({ "type": "stdout_sink", "upsert_keys": keys }),
            None => json!({ "type": "stdout_sink" }),
        },
        "filesystem" => {
            appends_only(&o, "filesystem")?;
            let format = file_format(&mut o, true)?;
            let mut spec =
                json!({ "type": "file_sink", "path": o.required("path")?, "format": format });
            if let Some(b) = o.number("sink.rolling-policy.file-size")? {
                spec["roll_bytes"] = json!(b);
            }
            if let Some(ms) = o.duration_ms("sink.rolling-policy.rollover-interval")? {
                spec["roll_interval_ms"] = json!(ms);
            }
            if format == "csv" && o.boolean("csv.header")? == Some(true) {
                spec["header"] = json!(true);
            }
            spec
        }
        "kafka" => {
            appends_only(&o, "kafka")?;
            let mut spec = json!({
                "type": "kafka_sink",
                "bootstrap_servers": o.required("properties.bootstrap.servers")?,
                "topic": o.required("topic")?,
                "format": kafka_format(&mut o)?,
            });
            spec["guarantee"] = match o.get("sink.delivery-guarantee").unwrap_or("exactly-once") {
                "exactly-once" => json!("exactly_once"),
                "at-least-once" => json!("at_least_once"),
                other => {
                    return Err(o.err(format!(
                        "sink.delivery-guarantee '{other}' is not exactly-once or at-least-once"
                    )))
                }
            };
            if let Some(k) = o.get("key.fields") {
                spec["key"] = json!(k);
            }
            if let Some(g) = o.get("sink.commit-source-offsets") {
                spec["commit_source_offsets"] = json!(g);
            }
            match o.get("sink.partitioner") {
                None | Some("default") => {}
                Some("fixed") => spec["partitioner"] = json!("fixed"),
                Some(other) => {
                    return Err(o.err(format!(
                        "sink.partitioner '{other}' is not default or fixed"
                    )))
                }
            }
            let mut props = o.prefixed("properties.");
            props.remove("bootstrap.servers");
            if let Some(Value::String(t)) = props.remove("transaction.timeout.ms") {
                let ms: u64 = t
                    .parse()
                    .map_err(|_| o.err("properties.transaction.timeout.ms must be a number"))?;
                spec["transaction_timeout_ms"] = json!(ms);
            }
            spec["properties"] = Value::Object(props);
            o.finish("kafka", &["properties."])?;
            return decode(&Opts::new(table), spec);
        }
        "jdbc" | "postgres" => {
            let url = o.required("url")?;
            let url = url.strip_prefix("jdbc:").unwrap_or(url);
            let mut spec = json!({
                "type": "postgres_sink",
                "url": url,
                "table": o.get("table-name").unwrap_or(&table.name),
            });
            if !table.primary_key.is_empty() {
                spec["mode"] = json!("upsert");
                spec["key"] = json!(table.primary_key);
                if let Some(c) = o.get("sink.upsert.on-conflict") {
                    spec["on_conflict"] = json!(c.to_ascii_lowercase());
                }
            } else if let Some(keys) = updating {
                return Err(o.err(format!(
                    "the query produces an updating result keyed by {}; declare PRIMARY KEY ({}) NOT ENFORCED on the table so the sink upserts",
                    keys.join(", "),
                    keys.join(", ")
                )));
            }
            if let (Some(keys), false) = (updating, table.primary_key.is_empty()) {
                let mut a: Vec<&String> = keys.iter().collect();
                let mut b: Vec<&String> = table.primary_key.iter().collect();
                a.sort();
                b.sort();
                if a != b {
                    return Err(o.err(format!(
                        "the query's result is keyed by ({}) but the table's PRIMARY KEY is ({})",
                        keys.join(", "),
                        table.primary_key.join(", ")
                    )));
                }
            }
            if let Some(b) = o.boolean("sink.create-table")? {
                spec["create_table"] = json!(b);
            }
            if let Some(n) = o.number("sink.buffer-flush.max-rows")? {
                spec["batch_rows"] = json!(n);
            }
            spec
        }
        "nexmark" => return Err(o.err("the nexmark connector is a source; it cannot be written")),
        other => return Err(unknown_connector(&o, other)),
    };
    o.finish(&connector, &[])?;
    decode(&Opts::new(table), kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("1s"), Some(1000));
        assert_eq!(parse_duration_ms("500 ms"), Some(500));
        assert_eq!(parse_duration_ms("2min"), Some(120_000));
        assert_eq!(parse_duration_ms("250"), Some(250));
        assert_eq!(parse_duration_ms("1 fortnight"), None);
        assert_eq!(parse_duration_ms("s"), None);
    }
}
