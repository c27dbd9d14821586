//! The differential test against Flink: every query of `tests/sql-golden/queries/` runs in Weir
//! (`weir run`, embedded) over the tables of `tests/sql-golden/tables.sql`, and its result is
//! compared, as a multiset, with the answer Flink 2.3 gave (`tests/sql-golden/expected/`,
//! written by `scripts/sql-golden/regen`, never by hand). Updating results are folded to
//! their final state (the last row of each key), floating point is compared to a relative
//! 1e-9. A query Weir refuses must be listed, with its message's first words, in
//! `tests/sql-golden/refused.txt`; a listed query that Weir now runs fails the test until it
//! is taken off the list, so the list only shrinks. No query may differ.

mod common;

use common::sqlrun::{canonical, complaint, print_keys, printed_rows, run};

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/sql-golden")
}

/// A result column's type as Weir's sink declares it: every number as DOUBLE (values are
/// compared as numbers, and every number type of a query casts to DOUBLE implicitly), text as
/// VARCHAR.
fn sink_type(flink: &str) -> Option<&'static str> {
    let t = flink
        .replace(" NOT NULL", "")
        .replace(" *ROWTIME*", "")
        .replace(" *PROCTIME*", "")
        .to_ascii_uppercase();
    Some(match t.trim().split('(').next().unwrap_or("").trim() {
        "TINYINT" | "SMALLINT" | "INT" | "INTEGER" | "BIGINT" => "DOUBLE",
        "FLOAT" | "DOUBLE" | "DECIMAL" | "REAL" => "DOUBLE",
        "VARCHAR" | "CHAR" | "STRING" => "VARCHAR",
        "BOOLEAN" => "BOOLEAN",
        "TIMESTAMP" | "TIMESTAMP_LTZ" => "TIMESTAMP(3)",
        _ => return None,
    })
}

enum Outcome {
    Same,
    Refused(String),
    Differs(String),
    /// Flink refused the query; what Weir did.
    FlinkRefused(String),
}

fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            );
            x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs())
        }
        (x, y) => canonical(x) == canonical(y),
    }
}

/// Matches each expected row with one actual row (floating point within tolerance); the rows
/// left over on either side.
fn unmatched(expected: &[Vec<Value>], actual: &[Vec<Value>]) -> (Vec<String>, Vec<String>) {
    let mut used = vec![false; actual.len()];
    let mut missing = Vec::new();
    for e in expected {
        let hit = actual.iter().enumerate().position(|(i, a)| {
            !used[i] && a.len() == e.len() && a.iter().zip(e).all(|(x, y)| same_value(x, y))
        });
        match hit {
            Some(i) => used[i] = true,
            None => missing.push(Value::Array(e.clone()).to_string()),
        }
    }
    let extra = actual
        .iter()
        .zip(&used)
        .filter(|(_, u)| !**u)
        .map(|(a, _)| Value::Array(a.iter().map(canonical).collect()).to_string())
        .collect();
    (missing, extra)
}

fn check(name: &str, query: &str, expected: &Value, tables: &str) -> Outcome {
    let dir = tempfile::tempdir().expect("temp dir");
    if let Some(e) = expected.get("flink_error") {
        let script = format!(
            "{tables}\nCREATE TABLE golden_out (x BIGINT) WITH ('connector' = 'blackhole');\nINSERT INTO golden_out {query};\n"
        );
        let (ok, _, err) = run(dir.path(), &script);
        return Outcome::FlinkRefused(format!(
            "Flink: {}; Weir: {}",
            e.as_str().unwrap_or_default(),
            if ok { "ran".into() } else { complaint(&err) }
        ));
    }
    let columns: Vec<&str> = expected["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| c.as_str().expect("column name"))
        .collect();
    let mut decl = Vec::new();
    for (c, t) in columns
        .iter()
        .zip(expected["types"].as_array().expect("types"))
    {
        let t = t.as_str().expect("type name");
        let Some(w) = sink_type(t) else {
            return Outcome::Refused(format!("the harness has no Weir type for Flink's {t}"));
        };
        decl.push(format!("`{}` {w}", c.replace('`', "``")));
    }
    let script = format!(
        "SET 'parallelism.default' = '1';\n{tables}\nCREATE TABLE golden_out ({}) WITH ('connector' = 'print');\nINSERT INTO golden_out {query};\n",
        decl.join(", ")
    );
    // The key of an updating result, from the compiled job's print sink.
    let keys = match weir_sql::compile(&script, name) {
        Err(e) => return Outcome::Refused(e.to_string()),
        Ok(job) => print_keys(&job),
    };
    let (ok, out, err) = run(dir.path(), &script);
    if !ok {
        return Outcome::Refused(format!("run failed: {}", complaint(&err)));
    }
    let actual = printed_rows(&out, &columns, &keys);
    let expected_rows: Vec<Vec<Value>> = expected["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r.as_array().expect("a row").clone())
        .collect();
    let (missing, extra) = unmatched(&expected_rows, &actual);
    if missing.is_empty() && extra.is_empty() {
        return Outcome::Same;
    }
    let show = |v: &[String]| v.iter().take(5).cloned().collect::<Vec<_>>().join(" ");
    Outcome::Differs(format!(
        "{} rows from Flink, {} from Weir; Flink's not in Weir's ({}): {}; Weir's not in Flink's ({}): {}",
        expected_rows.len(),
        actual.len(),
        missing.len(),
        show(&missing),
        extra.len(),
        show(&extra)
    ))
}

/// `name: message` lines of refused.txt (`#` comments and blank lines skipped).
fn listed_refusals() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(golden().join("refused.txt")).unwrap_or_default();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(": "))
        .map(|(n, m)| (n.trim().to_string(), m.trim().to_string()))
        .collect()
}

#[test]
fn weir_gives_flinks_answers() {
    let root = golden();
    let data = root.join("data").canonicalize().expect("golden data");
    let tables = std::fs::read_to_string(root.join("tables.sql"))
        .expect("tables.sql")
        .replace("@DATA@", data.to_str().expect("utf8"));
    let only = std::env::var("WEIR_GOLDEN_ONLY").ok();
    let mut names: Vec<String> = std::fs::read_dir(root.join("queries"))
        .expect("queries")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sql"))
        .map(|n| n.trim_end_matches(".sql").to_string())
        .filter(|n| only.as_deref().is_none_or(|o| n.contains(o)))
        .collect();
    names.sort();
    assert!(
        only.is_some() || names.len() >= 150,
        "the corpus has {} queries",
        names.len()
    );
    let listed = listed_refusals();
    let (mut same, mut refused, mut differ, mut flink) = (vec![], vec![], vec![], vec![]);
    for name in &names {
        let query = std::fs::read_to_string(root.join("queries").join(format!("{name}.sql")))
            .expect("query");
        let query: String = query
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n");
        let query = query.trim().trim_end_matches(';');
        let expected: Value = serde_json::from_str(
            &std::fs::read_to_string(root.join("expected").join(format!("{name}.json")))
                .unwrap_or_else(|_| {
                    panic!("no expected answer for {name}: run scripts/sql-golden/regen")
                }),
        )
        .expect("expected JSON");
        match check(name, query, &expected, &tables) {
            Outcome::Same => same.push(name.clone()),
            Outcome::Refused(m) => refused.push((name.clone(), m)),
            Outcome::Differs(m) => differ.push((name.clone(), m)),
            Outcome::FlinkRefused(m) => flink.push((name.clone(), m)),
        }
    }
    let mut report = format!(
        "{} queries: {} as Flink's, {} refused by Weir, {} refused by Flink, {} different\n",
        names.len(),
        same.len(),
        refused.len(),
        flink.len(),
        differ.len()
    );
    for (n, m) in &differ {
        report.push_str(&format!("DIFFERS {n}: {m}\n"));
    }
    for (n, m) in &refused {
        report.push_str(&format!("refused {n}: {m}\n"));
    }
    for (n, m) in &flink {
        report.push_str(&format!("flink-refused {n}: {m}\n"));
    }
    eprintln!("{report}");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let _ = std::fs::create_dir_all(&target);
    let _ = std::fs::write(target.join("sql-golden-report.txt"), &report);
    assert!(
        differ.is_empty(),
        "{} queries differ from Flink's answers",
        differ.len()
    );
    if only.is_none() {
        let unlisted: Vec<&String> = refused
            .iter()
            .map(|(n, _)| n)
            .filter(|n| !listed.contains_key(*n))
            .collect();
        assert!(
            unlisted.is_empty(),
            "refused but not in tests/sql-golden/refused.txt (a regression, or list it with its reason): {unlisted:?}"
        );
        let now_run: Vec<&String> = listed
            .keys()
            .filter(|n| names.contains(n) && !refused.iter().any(|(r, _)| r == *n))
            .collect();
        assert!(
            now_run.is_empty(),
            "listed in refused.txt but now as Flink's: take them off the list: {now_run:?}"
        );
    }
}
