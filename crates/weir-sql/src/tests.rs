//! Tests of `compile`: scripts to job graphs, and the errors of scripts that do not compile.

use super::*;
use weir_types::{OperatorKind, Partitioning};

const BID: &str = "CREATE TABLE bid (auction BIGINT, bidder BIGINT, price BIGINT,
  date_time TIMESTAMP(3), extra VARCHAR,
  WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND
) WITH ('connector' = 'nexmark', 'events' = '1000');\n";

fn kinds(job: &JobSpec) -> Vec<&'static str> {
    job.operators.iter().map(|o| o.kind.type_name()).collect()
}

#[test]
fn projection_and_filter_chain_to_the_sink() {
    let sql = format!(
        "SET 'parallelism.default' = '3';\nSET 'execution.checkpointing.interval' = '2s';\n{BID}
CREATE TABLE out (a BIGINT, p DOUBLE) WITH ('connector' = 'blackhole');
INSERT INTO out SELECT auction, 0.5 * price FROM bid WHERE auction % 2 = 0;"
    );
    let job = compile(&sql, "t").unwrap();
    assert_eq!(job.checkpoint.interval_ms, 2000);
    assert_eq!(
        kinds(&job),
        vec!["nexmark", "filter", "project", "blackhole_sink"]
    );
    assert!(job.operators.iter().all(|o| o.parallelism == 3));
    match &job.operators[0].kind {
        OperatorKind::Nexmark(n) => {
            assert_eq!(n.events, Some(1000));
            assert_eq!(
                n.columns,
                vec!["auction", "price"],
                "only what the query uses"
            );
        }
        other => panic!("{other:?}"),
    }
    match &job.operators[1].kind {
        OperatorKind::Filter { predicate } => assert_eq!(predicate, "((auction % 2) = 0)"),
        other => panic!("{other:?}"),
    }
    match &job.operators[2].kind {
        OperatorKind::Project { exprs } => {
            let names: Vec<&str> = exprs.iter().map(|e| e.name.as_str()).collect();
            assert_eq!(names, vec!["a", "p"], "the sink's column names");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn kafka_to_kafka_with_source_offsets_in_the_sink_transactions() {
    let sql = "SET 'execution.checkpointing.interval' = '1s';
CREATE TABLE a (id BIGINT, v BIGINT) WITH ('connector' = 'kafka', 'topic' = 'a',
  'properties.bootstrap.servers' = '127.0.0.1:9092', 'format' = 'json');
CREATE TABLE b (id BIGINT, v BIGINT) WITH ('connector' = 'kafka', 'topic' = 'b',
  'properties.bootstrap.servers' = '127.0.0.1:9092', 'format' = 'json',
  'sink.commit-source-offsets' = 'a-readers', 'sink.partitioner' = 'fixed');
INSERT INTO b SELECT id, v * 2 FROM a WHERE v > 0;";
    let job = compile(sql, "t").unwrap();
    assert_eq!(
        kinds(&job),
        vec!["kafka_source", "filter", "project", "kafka_sink"]
    );
    match &job.operators[3].kind {
        OperatorKind::KafkaSink(k) => {
            assert_eq!(k.commit_source_offsets.as_deref(), Some("a-readers"));
            assert_eq!(k.partitioner, weir_types::KafkaPartitioner::Fixed);
        }
        other => panic!("{other:?}"),
    }
    assert!(job
        .operators
        .iter()
        .skip(1)
        .all(|o| o.inputs[0].partition == Partitioning::Forward));
}

/// Flink's `<format>.ignore-parse-errors` turns into the source's `bad_records: skip`;
/// without it malformed messages fail the job.
#[test]
fn kafka_tables_say_what_malformed_messages_do() {
    let source = |extra: &str| {
        let sql = format!(
            "CREATE TABLE a (id BIGINT) WITH ('connector' = 'kafka', 'topic' = 'a',
  'properties.bootstrap.servers' = '127.0.0.1:9092', 'format' = 'csv'{extra});
CREATE TABLE out (id BIGINT) WITH ('connector' = 'blackhole');
INSERT INTO out SELECT id FROM a;"
        );
        let job = compile(&sql, "t").unwrap();
        match &job.operators[0].kind {
            OperatorKind::KafkaSource(k) => k.bad_records,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(source(""), weir_types::BadRecords::Fail);
    assert_eq!(
        source(", 'csv.ignore-parse-errors' = 'true'"),
        weir_types::BadRecords::Skip
    );
    assert_eq!(
        source(", 'csv.ignore-parse-errors' = 'false'"),
        weir_types::BadRecords::Fail
    );
    let bad = "CREATE TABLE a (id BIGINT) WITH ('connector' = 'kafka', 'topic' = 'a',
  'properties.bootstrap.servers' = 'h:1', 'format' = 'json', 'json.ignore-parse-errors' = 'maybe');
CREATE TABLE out (id BIGINT) WITH ('connector' = 'blackhole');
INSERT INTO out SELECT id FROM a;";
    let e = compile(bad, "t").unwrap_err().to_string();
    assert!(e.contains("json.ignore-parse-errors"), "{e}");
}

#[test]
fn views_inline_and_sources_are_shared() {
    let sql = format!(
        "{BID}
CREATE VIEW cheap AS SELECT auction, price FROM bid WHERE price < 1000;
CREATE TABLE a (auction BIGINT, price BIGINT) WITH ('connector' = 'blackhole');
CREATE TABLE b (auction BIGINT, price BIGINT) WITH ('connector' = 'print');
INSERT INTO a SELECT * FROM cheap;
INSERT INTO b SELECT auction, price FROM bid;"
    );
    let job = compile(&sql, "t").unwrap();
    let sources = job.operators.iter().filter(|o| o.kind.is_source()).count();
    assert_eq!(sources, 1, "{:#?}", job.operators);
    assert_eq!(job.operators.iter().filter(|o| o.kind.is_sink()).count(), 2);
}

/// The same windowed aggregate written twice (as q5 does) is computed once; the same
/// query over other windows is not taken for it.
#[test]
fn identical_sub_plans_are_computed_once() {
    let count = |hop: &str| {
        format!(
            "SELECT auction, COUNT(*) AS num, window_start FROM TABLE(HOP(TABLE bid, DESCRIPTOR(date_time), {hop}, INTERVAL '10' SECOND)) GROUP BY auction, window_start, window_end"
        )
    };
    let script = |second_slide: &str| {
        format!(
            "{BID}
CREATE TABLE a (auction BIGINT, num BIGINT, s TIMESTAMP(3)) WITH ('connector' = 'blackhole');
CREATE TABLE b (auction BIGINT, num BIGINT, s TIMESTAMP(3)) WITH ('connector' = 'blackhole');
INSERT INTO a {};
INSERT INTO b {};",
            count("INTERVAL '2' SECOND"),
            count(second_slide)
        )
    };
    let windows = |job: &JobSpec| {
        job.operators
            .iter()
            .filter(|o| matches!(o.kind, OperatorKind::WindowAggregate(_)))
            .count()
    };
    let same = compile(&script("INTERVAL '2' SECOND"), "t").unwrap();
    assert_eq!(windows(&same), 1, "{:#?}", same.operators);
    assert_eq!(
        same.operators.iter().filter(|o| o.kind.is_sink()).count(),
        2
    );
    let other = compile(&script("INTERVAL '5' SECOND"), "t").unwrap();
    assert_eq!(windows(&other), 2, "{:#?}", other.operators);
}

#[test]
fn group_by_is_an_updating_result_for_upsert_sinks_only() {
    let base = format!(
        "{BID}
CREATE TABLE counts (auction BIGINT, n BIGINT, top BIGINT, PRIMARY KEY (auction) NOT ENFORCED)
  WITH ('connector' = 'jdbc', 'url' = 'postgresql://localhost/db');
CREATE TABLE files (auction BIGINT, n BIGINT, top BIGINT)
  WITH ('connector' = 'filesystem', 'path' = '/tmp/x', 'format' = 'csv');\n"
    );
    let q = "SELECT auction, COUNT(*) AS n, MAX(price) AS top FROM bid GROUP BY auction";
    let job = compile(&format!("{base}INSERT INTO counts {q};"), "t").unwrap();
    assert_eq!(
        kinds(&job),
        vec![
            "nexmark",
            "keyed_aggregate",
            "project",
            "project",
            "postgres_sink"
        ]
    );
    assert_eq!(
        job.operators[1].inputs[0].partition,
        Partitioning::Hash(vec!["auction".into()])
    );
    match &job.operators[4].kind {
        OperatorKind::PostgresSink(p) => {
            assert_eq!(p.key, vec!["auction".to_string()]);
            assert_eq!(p.mode, weir_types::PostgresSinkMode::Upsert);
        }
        other => panic!("{other:?}"),
    }
    let e = compile(&format!("{base}INSERT INTO files {q};"), "t").unwrap_err();
    assert!(e.to_string().contains("updating result"), "{e}");
    assert!(e.to_string().contains("only takes appends"), "{e}");
}

#[test]
fn avg_is_a_sum_and_a_count_and_their_quotient() {
    let sql = format!(
        "{BID}CREATE TABLE o (auction BIGINT, a DOUBLE) WITH ('connector' = 'print');
INSERT INTO o SELECT auction, AVG(price) AS a FROM bid GROUP BY auction;"
    );
    let job = compile(&sql, "t").unwrap();
    let OperatorKind::KeyedAggregate { aggregates, .. } = &job.operators[1].kind else {
        panic!("{:#?}", job.operators)
    };
    let fns: Vec<_> = aggregates
        .iter()
        .map(|a| (a.func, a.column.clone()))
        .collect();
    assert_eq!(
        fns,
        vec![
            (weir_types::AggFn::Sum, Some("price".to_string())),
            (weir_types::AggFn::Count, Some("price".to_string()))
        ]
    );
    let OperatorKind::Project { exprs } = &job.operators[2].kind else {
        panic!()
    };
    assert!(exprs[1].expr.contains("CASE WHEN"), "{}", exprs[1].expr);
}

#[test]
fn group_by_an_expression_computes_it_first() {
    let sql = format!(
        "{BID}CREATE TABLE o (bucket BIGINT, n BIGINT) WITH ('connector' = 'print');
INSERT INTO o SELECT auction % 10 AS bucket, COUNT(*) AS n FROM bid GROUP BY auction % 10;"
    );
    let job = compile(&sql, "t").unwrap();
    assert_eq!(
        kinds(&job),
        vec![
            "nexmark",
            "project",
            "keyed_aggregate",
            "project",
            "project",
            "stdout_sink"
        ],
        "{:#?}",
        job.operators
    );
}

/// COUNT(DISTINCT x) is a GROUP BY over x (no state: a repeated row is an upsert that
/// changes nothing) and a count over that updating result.
#[test]
fn count_distinct_counts_the_groups_of_a_group_by() {
    let sql = format!(
        "{BID}CREATE TABLE o (auction BIGINT, bidders BIGINT, PRIMARY KEY (auction) NOT ENFORCED) WITH ('connector' = 'print');
INSERT INTO o SELECT auction, COUNT(DISTINCT bidder) AS bidders FROM bid GROUP BY auction;"
    );
    let job = compile(&sql, "t").unwrap();
    let k = kinds(&job);
    assert!(k.contains(&"updating_aggregate"), "{k:?}");
    assert!(!k.contains(&"keyed_aggregate"), "{k:?}");
}

fn err(sql: &str) -> String {
    compile(sql, "t").unwrap_err().to_string()
}

#[test]
fn over_windows_outside_what_runs_are_refused_by_name() {
    let sink = "CREATE TABLE out (a BIGINT, b DOUBLE) WITH ('connector' = 'blackhole');\n";
    let over = |frame: &str, order: &str| {
        err(&format!(
            "{BID}{sink}INSERT INTO out SELECT auction, AVG(price) OVER (PARTITION BY auction ORDER BY {order} {frame}) FROM bid;"
        ))
    };
    let e = over(
        "RANGE BETWEEN INTERVAL '10' SECOND PRECEDING AND CURRENT ROW",
        "date_time",
    );
    assert!(
        e.contains("the frame") && e.contains("ROWS BETWEEN n PRECEDING"),
        "{e}"
    );
    let e = over("ROWS BETWEEN 3 PRECEDING AND CURRENT ROW", "price");
    assert!(e.contains("ORDER BY one event-time column"), "{e}");
    let e = err(&format!(
        "{BID}{sink}INSERT INTO out SELECT auction, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY date_time) FROM bid;"
    ));
    assert!(e.contains("the window function ROW_NUMBER()"), "{e}");
    let e = err(&format!(
        "{BID}{sink}CREATE VIEW m AS SELECT auction, MAX(price) AS top, MAX(date_time) AS t FROM bid GROUP BY auction;
INSERT INTO out SELECT auction, AVG(top) OVER (PARTITION BY auction ORDER BY t ROWS BETWEEN 3 PRECEDING AND CURRENT ROW) FROM m;"
    ));
    assert!(e.contains("an OVER window over an updating result"), "{e}");
    // What runs: ROWS frames over an event-time column.
    let job = compile(
        &format!("{BID}{sink}INSERT INTO out SELECT auction, AVG(price) OVER (PARTITION BY auction ORDER BY date_time ROWS BETWEEN 3 PRECEDING AND CURRENT ROW) FROM bid;"),
        "t",
    )
    .unwrap();
    assert!(kinds(&job).contains(&"over_aggregate"), "{:?}", kinds(&job));
}

#[test]
fn watermark_alignment_options_reach_the_source_or_say_what_is_wrong() {
    let table = |name: &str, options: &str, watermark: bool| {
        format!(
            "CREATE TABLE {name} (auction BIGINT, date_time TIMESTAMP(3){}) WITH ('connector' = 'nexmark', 'table' = 'bid'{options});\n",
            if watermark {
                ", WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND"
            } else {
                ""
            }
        )
    };
    let aligned =
        ", 'scan.watermark.alignment.group' = 'g1', 'scan.watermark.alignment.max-drift' = '5 s'";
    let sink = "CREATE TABLE out (a BIGINT, t TIMESTAMP(3)) WITH ('connector' = 'blackhole');\n";
    let job = compile(
        &format!(
            "{}{}{sink}INSERT INTO out SELECT auction, date_time FROM b1;\nINSERT INTO out SELECT auction, date_time FROM b2;",
            table("b1", aligned, true),
            table("b2", "", true)
        ),
        "t",
    )
    .unwrap();
    let alignments: Vec<Option<&weir_types::WatermarkAlignment>> = job
        .operators
        .iter()
        .filter_map(|o| o.watermark.as_ref())
        .map(|w| w.alignment.as_ref())
        .collect();
    assert_eq!(
        alignments,
        vec![
            Some(&weir_types::WatermarkAlignment {
                group: "g1".into(),
                max_drift_ms: 5000
            }),
            None
        ]
    );
    let e = err(&format!(
        "{}{sink}INSERT INTO out SELECT auction, date_time FROM b1;",
        table("b1", ", 'scan.watermark.alignment.group' = 'g1'", true)
    ));
    assert!(
        e.contains(
            "option 'scan.watermark.alignment.group' needs 'scan.watermark.alignment.max-drift'"
        ),
        "{e}"
    );
    let e = err(&format!(
        "{}{sink}INSERT INTO out SELECT auction, date_time FROM b1;",
        table("b1", ", 'scan.watermark.alignment.max-drift' = 'soon', 'scan.watermark.alignment.group' = 'g'", true)
    ));
    assert!(e.contains("'soon' is not a duration"), "{e}");
    let e = err(&format!(
        "{}{sink}INSERT INTO out SELECT auction, date_time FROM b1;",
        table("b1", aligned, false)
    ));
    assert!(
        e.contains("table b1: watermark alignment needs a WATERMARK FOR clause"),
        "{e}"
    );
}

#[test]
fn errors_name_the_place_and_the_problem() {
    let sink = "CREATE TABLE out (a BIGINT) WITH ('connector' = 'blackhole');\n";
    // Unknown column: DataFusion's span points at it.
    let e = err(&format!(
        "{BID}{sink}INSERT INTO out\nSELECT nope FROM bid;"
    ));
    assert!(e.starts_with("line 7, column 8: "), "{e}");
    assert!(e.contains("nope"), "{e}");
    // Unknown table.
    let e = err(&format!("{sink}INSERT INTO out SELECT a FROM missing;"));
    assert!(e.contains("missing"), "{e}");
    assert!(e.starts_with("line 2, "), "{e}");
    // Type error.
    let e = err(&format!(
        "{BID}{sink}INSERT INTO out SELECT auction FROM bid WHERE extra > 1 + 'x';"
    ));
    assert_eq!(
        e,
        "line 6, column 1: Cannot coerce arithmetic expression Int64 + Utf8 to valid types"
    );
    // Unsupported constructs say so.
    let e = err(&format!("{BID}{sink}INSERT INTO out SELECT b1.auction FROM bid b1 LEFT JOIN bid b2 ON b1.auction = b2.bidder;"));
    assert!(
        e.contains("a Left join (inner joins are) is not supported in streaming SQL yet"),
        "{e}"
    );
    let e = err(&format!(
        "{BID}{sink}INSERT INTO out SELECT b1.auction FROM bid b1, bid b2 WHERE b1.price < b2.price;"
    ));
    assert!(e.contains("(a cross join) is not supported"), "{e}");
    let e = err(&format!("{BID}{sink}INSERT INTO out SELECT b1.auction FROM bid b1 JOIN bid b2 ON b1.auction + 1 = b2.bidder;"));
    assert!(e.contains("join keys must be columns"), "{e}");
    let e = err(&format!(
        "{BID}{sink}INSERT INTO out SELECT COUNT(*) FROM TABLE(SESSION(TABLE bid, DESCRIPTOR(date_time), INTERVAL '1' SECOND)) GROUP BY auction, window_start, window_end;"
    ));
    assert!(e.contains("SESSION windows need PARTITION BY"), "{e}");
    let e = err(&format!(
        "{BID}{sink}INSERT INTO out SELECT COUNT(*) FROM TABLE(SESSION(TABLE bid PARTITION BY bidder, DESCRIPTOR(date_time), INTERVAL '1' SECOND)) GROUP BY auction, window_start, window_end;"
    ));
    assert!(
        e.contains("PARTITION BY (bidder) must be the GROUP BY's key columns (auction)"),
        "{e}"
    );
    let counts = "(SELECT auction, COUNT(*) AS c FROM bid GROUP BY auction) AS q";
    let e = err(&format!(
        "{BID}{sink}INSERT INTO out SELECT MAX(c) FROM {counts} GROUP BY auction;"
    ));
    assert!(e.contains("MAX over an updating result"), "{e}");
    let e = err(&format!(
        "{BID}{sink}INSERT INTO out SELECT COUNT(*) FROM {counts} GROUP BY c;"
    ));
    assert!(e.contains("grouping an updating result by c"), "{e}");
    let e = err(&format!(
        "{BID}{sink}INSERT INTO out SELECT auction FROM bid ORDER BY price;"
    ));
    assert!(e.contains("ORDER BY is not supported"), "{e}");
    let e = err(&format!("{BID}{sink}SELECT auction FROM bid;"));
    assert!(e.contains("bare SELECT"), "{e}");
    let e = err(&format!(
        "{BID}{sink}INSERT INTO out SELECT COUNT(DISTINCT bidder) + COUNT(DISTINCT price) FROM bid GROUP BY auction;"
    ));
    assert!(
        e.contains("COUNT(DISTINCT …) in this combination is not supported"),
        "{e}"
    );
    // Options and settings.
    let e =
        err("CREATE TABLE t (a BIGINT) WITH ('connector' = 'blackhole', 'colour' = 'red');\nCREATE TABLE s (auction BIGINT) WITH ('connector' = 'nexmark', 'table' = 'bid');\nINSERT INTO t SELECT auction FROM s;");
    assert!(
        e.contains("unknown option 'colour' for the blackhole connector"),
        "{e}"
    );
    let e = err(
        "CREATE TABLE t (a BIGINT) WITH ('connector' = 'nosuch');\nINSERT INTO t SELECT a FROM t;",
    );
    assert!(e.contains("unknown connector 'nosuch'"), "{e}");
    let e = err("SET 'parallelism.defualt' = '2';");
    assert!(
        e.starts_with("line 1, column 1: unknown setting 'parallelism.defualt'"),
        "{e}"
    );
    let e = err(sink);
    assert!(e.contains("no INSERT INTO"), "{e}");
    let e = err("CREATE TABLE bid (auction INT) WITH ('connector' = 'nexmark');\nCREATE TABLE out (a INT) WITH ('connector' = 'blackhole');\nINSERT INTO out SELECT auction FROM bid;");
    assert!(
        e.contains("column auction is declared Int32, the nexmark bid table has it as BIGINT"),
        "{e}"
    );
}
