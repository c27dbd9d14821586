//! Flink's answers to everyday SQL over NULLs, strings and times, each checked end to end with
//! `weir run` on the six-row table of issue 15 (`t`: JSON lines with NULL keys, NULL strings
//! and NULL numbers). Each test was a silently wrong answer before; the expected values are
//! Flink's (and standard SQL's). The golden corpus (`tests/sql_golden.rs`) checks hundreds
//! more queries against Flink itself.

mod common;

use common::sqlrun::{canonical, complaint, print_keys, printed_rows, run};
use serde_json::Value;
use std::path::Path;

const ROWS: &str = r#"{"k":1,"s":"a","x":1.5,"ts":"2024-03-01 00:00:01.000"}
{"k":1,"s":null,"x":null,"ts":"2024-03-01 00:00:02.481"}
{"k":2,"s":null,"x":null,"ts":"2024-03-01 00:00:03.000"}
{"k":0,"s":"b","x":2.0,"ts":"2024-03-01 00:00:04.000"}
{"k":null,"s":"c","x":3.0,"ts":"2024-03-01 00:00:05.000"}
{"k":null,"s":"d","x":4.0,"ts":"2024-03-01 00:00:06.000"}
"#;

fn table(dir: &Path) -> String {
    let data = dir.join("t");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("t.jsonl"), ROWS).unwrap();
    format!(
        "CREATE TABLE t (k BIGINT, s VARCHAR, x DOUBLE, ts TIMESTAMP(3), WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');",
        data.display()
    )
}

/// The rows of `query` (its columns declared as `columns`), each as JSON array text, sorted;
/// an updating result folded to its final rows.
fn select(columns: &str, query: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        "{}\nCREATE TABLE out ({columns}) WITH ('connector' = 'print');\nINSERT INTO out {query};\n",
        table(dir.path())
    );
    let job = weir_sql::compile(&script, "t").unwrap_or_else(|e| panic!("{query}: {e}"));
    let (ok, out, err) = run(dir.path(), &script);
    assert!(ok, "{query}: {}", complaint(&err));
    let names: Vec<&str> = columns
        .split(',')
        .map(|c| c.split_whitespace().next().unwrap())
        .collect();
    let mut rows: Vec<String> = printed_rows(&out, &names, &print_keys(&job))
        .into_iter()
        .map(|r| Value::Array(r.iter().map(canonical).collect()).to_string())
        .collect();
    rows.sort();
    rows
}

fn rows(expected: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// The error `weir` gives for a script (compiling it as `weir run` does).
fn refusal(script_tail: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let script = format!("{}\n{script_tail}", table(dir.path()));
    let (ok, _, err) = run(dir.path(), &script);
    assert!(!ok, "the script ran: {script_tail}");
    err
}

const TUMBLE: &str = "TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), INTERVAL '1' MINUTE))";

#[test]
fn count_of_a_varchar_column_counts_its_non_null_values() {
    assert_eq!(
        select(
            "k BIGINT, c BIGINT",
            "SELECT k, COUNT(s) AS c FROM t GROUP BY k"
        ),
        rows(&["[0,1]", "[1,1]", "[2,0]", "[null,2]"])
    );
    assert_eq!(
        select(
            "k BIGINT, c BIGINT",
            &format!("SELECT k, COUNT(s) AS c FROM {TUMBLE} GROUP BY k, window_start, window_end")
        ),
        rows(&["[0,1]", "[1,1]", "[2,0]", "[null,2]"])
    );
    assert_eq!(
        select(
            "d BIGINT",
            &format!(
                "SELECT COUNT(DISTINCT s) AS d FROM {TUMBLE} GROUP BY window_start, window_end"
            )
        ),
        rows(&["[4]"])
    );
}

#[test]
fn a_null_key_is_its_own_group_not_zero() {
    for from in [
        TUMBLE.to_string(),
        "TABLE(HOP(TABLE t, DESCRIPTOR(ts), INTERVAL '1' MINUTE, INTERVAL '1' MINUTE))".into(),
    ] {
        assert_eq!(
            select(
                "k BIGINT, n BIGINT",
                &format!(
                    "SELECT k, COUNT(*) AS n FROM {from} GROUP BY k, window_start, window_end"
                )
            ),
            rows(&["[0,1]", "[1,2]", "[2,1]", "[null,2]"]),
            "{from}"
        );
    }
    assert_eq!(
        select(
            "k BIGINT, n BIGINT, sx DOUBLE",
            "SELECT k, COUNT(*) AS n, SUM(x) AS sx FROM t GROUP BY k"
        ),
        rows(&["[0,1,2.0]", "[1,2,1.5]", "[2,1,null]", "[null,2,7.0]"])
    );
    // COUNT(DISTINCT k) does not count NULL as a value.
    assert_eq!(
        select(
            "d BIGINT",
            &format!(
                "SELECT COUNT(DISTINCT k) AS d FROM {TUMBLE} GROUP BY window_start, window_end"
            )
        ),
        rows(&["[3]"])
    );
}

#[test]
fn sum_min_max_over_only_nulls_are_null() {
    let expected = rows(&[
        "[0,2.0,2.0,2.0,2.0]",
        "[1,1.5,1.5,1.5,1.5]",
        "[2,null,null,null,null]",
        "[null,7.0,3.0,4.0,3.5]",
    ]);
    let cols = "k BIGINT, sx DOUBLE, mn DOUBLE, mx DOUBLE, av DOUBLE";
    let aggs = "k, SUM(x) AS sx, MIN(x) AS mn, MAX(x) AS mx, AVG(x) AS av";
    assert_eq!(
        select(cols, &format!("SELECT {aggs} FROM t GROUP BY k")),
        expected
    );
    assert_eq!(
        select(
            cols,
            &format!("SELECT {aggs} FROM {TUMBLE} GROUP BY k, window_start, window_end")
        ),
        expected
    );
    // An OVER frame of only NULLs.
    assert_eq!(
        select(
            "k BIGINT, sx DOUBLE",
            "SELECT k, SUM(x) OVER (PARTITION BY k ORDER BY ts ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS sx FROM t"
        ),
        rows(&["[0,2.0]", "[1,1.5]", "[1,1.5]", "[2,null]", "[null,3.0]", "[null,7.0]"])
    );
}

#[test]
fn similar_to_is_a_whole_string_pattern() {
    assert_eq!(
        select("s VARCHAR", "SELECT s FROM t WHERE s SIMILAR TO '[a-c]'"),
        rows(&["[\"a\"]", "[\"b\"]", "[\"c\"]"])
    );
    assert_eq!(
        select(
            "s VARCHAR",
            "SELECT s FROM t WHERE s NOT SIMILAR TO '(a|b)%'"
        ),
        rows(&["[\"c\"]", "[\"d\"]"])
    );
}

#[test]
fn coalesce_and_the_clock_functions_run() {
    assert_eq!(
        select(
            "c1 VARCHAR, c2 VARCHAR, c3 VARCHAR",
            "SELECT COALESCE(s, 'z') AS c1, IFNULL(s, 'y') AS c2, NVL(s, 'w') AS c3 FROM t WHERE k = 1"
        ),
        rows(&["[\"a\",\"a\",\"a\"]", "[\"z\",\"y\",\"w\"]"])
    );
    let got = select(
        "n TIMESTAMP(3), c TIMESTAMP(3), k BIGINT",
        "SELECT NOW() AS n, CURRENT_TIMESTAMP AS c, k FROM t WHERE k = 2",
    );
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(!got[0].contains("null"), "{got:?}");
}

#[test]
fn concat_with_a_null_is_null_and_regexp_replace_replaces_every_match() {
    assert_eq!(
        select(
            "c VARCHAR, r VARCHAR",
            "SELECT CONCAT('x', s) AS c, REGEXP_REPLACE('aXbXc', 'X', '-') AS r FROM t WHERE k = 1"
        ),
        rows(&["[\"xa\",\"a-b-c\"]", "[null,\"a-b-c\"]"])
    );
}

#[test]
fn timestamps_as_text_use_a_space_and_date_format_takes_java_patterns() {
    assert_eq!(
        select(
            "c VARCHAR, d VARCHAR",
            "SELECT CAST(ts AS VARCHAR) AS c, DATE_FORMAT(ts, 'yyyy-MM-dd HH:mm') AS d FROM t WHERE k = 1 AND s IS NULL"
        ),
        rows(&["[\"2024-03-01 00:00:02.481\",\"2024-03-01 00:00\"]"])
    );
}

#[test]
fn rows_exactly_the_gap_apart_are_one_session() {
    // Keys 1 (00:01 and 00:02.481, 1.481 s apart) and NULL (00:05 and 00:06, 1 s apart):
    // with a 1 s gap, key NULL's rows are exactly the gap apart: one session in Flink.
    assert_eq!(
        select(
            "k BIGINT, n BIGINT, ws TIMESTAMP(3), we TIMESTAMP(3)",
            "SELECT k, COUNT(*) AS n, window_start AS ws, window_end AS we FROM TABLE(SESSION(TABLE t PARTITION BY k, DESCRIPTOR(ts), INTERVAL '1' SECOND)) GROUP BY k, window_start, window_end"
        ),
        rows(&[
            "[0,1,\"2024-03-01 00:00:04.000\",\"2024-03-01 00:00:05.000\"]",
            "[1,1,\"2024-03-01 00:00:01.000\",\"2024-03-01 00:00:02.000\"]",
            "[1,1,\"2024-03-01 00:00:02.481\",\"2024-03-01 00:00:03.481\"]",
            "[2,1,\"2024-03-01 00:00:03.000\",\"2024-03-01 00:00:04.000\"]",
            "[null,2,\"2024-03-01 00:00:05.000\",\"2024-03-01 00:00:07.000\"]",
        ])
    );
}

#[test]
fn csv_files_have_no_header_unless_the_table_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    // No header line; an empty VARCHAR field is '' (Flink), not NULL.
    std::fs::write(
        input.join("a.csv"),
        "1,x,2024-03-01 00:00:01.000\n2,,2024-03-01 00:00:02.000\n3,\"\",2024-03-01 00:00:03.500\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    for (header, expect) in [(false, 3), (true, 2)] {
        let opt = if header {
            ", 'csv.header' = 'true'"
        } else {
            ""
        };
        let script = format!(
            "SET 'execution.checkpointing.interval' = '1s';
CREATE TABLE f (id BIGINT, s VARCHAR, ts TIMESTAMP(3)) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv'{opt});
CREATE TABLE o (id BIGINT, s VARCHAR, empty BOOLEAN, ts TIMESTAMP(3)) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'csv');
INSERT INTO o SELECT id, s, s = '' AS empty, ts FROM f;",
            input.display(),
            out.join(format!("h{header}")).display()
        );
        let (ok, _, err) = run(dir.path(), &script);
        assert!(ok, "{}", complaint(&err));
        let mut lines = common::committed_lines(&out.join(format!("h{header}")));
        lines.sort();
        assert_eq!(lines.len(), expect, "header {header}: {lines:?}");
        if !header {
            // The sink writes no header either, and timestamps as Flink does (no trailing zeros).
            assert_eq!(
                lines,
                vec![
                    "1,x,false,2024-03-01 00:00:01",
                    "2,,true,2024-03-01 00:00:02",
                    "3,,true,2024-03-01 00:00:03.5",
                ]
            );
        }
    }
}

#[test]
fn a_source_path_may_name_a_file_and_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("one.jsonl");
    std::fs::write(&file, ROWS).unwrap();
    let script = |path: &Path| {
        format!(
            "CREATE TABLE f (k BIGINT, s VARCHAR) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
CREATE TABLE o (k BIGINT, s VARCHAR) WITH ('connector' = 'print');
INSERT INTO o SELECT k, s FROM f;",
            path.display()
        )
    };
    let (ok, out, err) = run(dir.path(), &script(&file));
    assert!(ok, "{}", complaint(&err));
    assert_eq!(
        out.lines().filter(|l| l.starts_with('{')).count(),
        6,
        "{out}"
    );
    let started = std::time::Instant::now();
    let missing = dir.path().join("nowhere");
    let (ok, _, err) = run(dir.path(), &script(&missing));
    assert!(!ok);
    assert!(
        err.contains("does not exist") && err.contains("nowhere"),
        "{err}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "a missing path took {:?} to fail",
        started.elapsed()
    );
}

#[test]
fn sum_of_an_int_column_and_union_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("q");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("q.jsonl"),
        "{\"k\":1,\"qty\":2}\n{\"k\":1,\"qty\":3}\n{\"k\":2,\"qty\":null}\n",
    )
    .unwrap();
    let script = format!(
        "CREATE TABLE q (k BIGINT, qty INT) WITH ('connector' = 'filesystem', 'path' = '{}', 'format' = 'json');
CREATE TABLE o (k BIGINT, total BIGINT) WITH ('connector' = 'print');
INSERT INTO o SELECT k, SUM(qty) AS total FROM q GROUP BY k;",
        data.display()
    );
    let job = weir_sql::compile(&script, "q").unwrap();
    let (ok, out, err) = run(dir.path(), &script);
    assert!(ok, "{}", complaint(&err));
    let mut got: Vec<String> = printed_rows(&out, &["k", "total"], &print_keys(&job))
        .into_iter()
        .map(|r| Value::Array(r).to_string())
        .collect();
    got.sort();
    assert_eq!(got, rows(&["[1,5]", "[2,null]"]));
    assert_eq!(
        select(
            "s VARCHAR",
            "SELECT s FROM t WHERE k = 1 UNION SELECT s FROM t WHERE k = 0"
        ),
        rows(&["[\"a\"]", "[\"b\"]", "[null]"])
    );
    assert_eq!(
        select(
            "k BIGINT",
            "SELECT k FROM t WHERE k = 1 UNION ALL SELECT k FROM t WHERE k = 1"
        ),
        rows(&["[1]", "[1]", "[1]", "[1]"])
    );
}

#[test]
fn errors_speak_the_users_words() {
    // VARCHAR into a BIGINT column: refused when planning, naming the column.
    let err = refusal(
        "CREATE TABLE o (k BIGINT) WITH ('connector' = 'print');\nINSERT INTO o SELECT s FROM t;",
    );
    assert!(
        err.contains("column k is BIGINT") && err.contains("VARCHAR"),
        "{err}"
    );
    // No internal window table names.
    let err = refusal(&format!(
        "CREATE TABLE o (n BIGINT) WITH ('connector' = 'print');\nINSERT INTO o SELECT COUNT(*) AS n FROM {TUMBLE} GROUP BY window_start, windw_end;"
    ));
    assert!(!err.contains("__window"), "{err}");
    // A file sink without checkpoints names Flink's setting.
    let err = refusal(
        "CREATE TABLE o (k BIGINT) WITH ('connector' = 'filesystem', 'path' = 'out', 'format' = 'csv');\nINSERT INTO o SELECT k FROM t;",
    );
    assert!(err.contains("execution.checkpointing.interval"), "{err}");
}
