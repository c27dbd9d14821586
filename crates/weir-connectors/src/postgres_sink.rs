//! The PostgreSQL sink: exactly-once through `PREPARE TRANSACTION` (two-phase commit), or
//! idempotent upserts with at-least-once delivery.
//!
//! Exactly-once, per subtask:
//! * rows go into one open transaction per checkpoint epoch (`BEGIN` at the first write);
//! * at barrier `n` the buffered rows are written and the transaction is prepared as
//!   `weir:<job>:<operator>:s<subtask>:a<attempt>:c<n>`; that id is recorded in the sink's
//!   snapshot for checkpoint `n` (nothing is prepared for an epoch without rows);
//! * when checkpoint `n` completes, `COMMIT PREPARED` every id recorded up to `n`;
//! * on restore, subtask 0 commits every id the restored checkpoint recorded (from all old
//!   subtasks) that is still prepared, and rolls back the prepared transactions of this
//!   operator that earlier attempts of this job (or the job whose savepoint it started from)
//!   left behind and no completed checkpoint recorded.
//!
//! A prepared transaction survives the crash of the process that prepared it and of the
//! server, so the commit window (checkpoint complete, commit not yet sent) loses nothing: the
//! restored checkpoint still names the transaction and recovery commits it. A recorded id that
//! is no longer prepared was committed before the failure (this sink never rolls back a
//! recorded id), so committing is idempotent. The attempt number in the id keeps a new attempt
//! from colliding with a transaction an old one prepared for the same checkpoint id.
//!
//! Upsert: every flush (batch full, barrier, end of input) is one autocommitted
//! `INSERT … ON CONFLICT (key) DO UPDATE | DO NOTHING`; replays after a failure collapse on
//! the key.
//!
//! Rows are written with one statement per flush: `INSERT INTO t (cols) SELECT * FROM
//! unnest($1::int8[], $2::text[], …)`, one array parameter per column.

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::{cast_with_options, CastOptions};
use arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, TimeUnit,
};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Statement};
use tracing::{debug, info, warn};
use weir_checkpoint::TxnLog;
use weir_planner::postgres::{build_sql, quote_literal, PgType};
use weir_runtime::error::{Result, RuntimeError};
use weir_runtime::message::Barrier;
use weir_runtime::operator::{Operator, OperatorContext, Restored};
use weir_types::failpoint;
use weir_types::{CheckpointId, PostgresSinkMode, PostgresSinkSpec};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SinkState {
    /// Prepared transaction ids awaiting their checkpoint's completion.
    pending: Vec<(CheckpointId, String)>,
}

/// A PostgreSQL error with the server's message, code and detail when there is one.
fn pg_err(what: &str, e: tokio_postgres::Error) -> RuntimeError {
    let msg = match e.as_db_error() {
        Some(db) => {
            let mut m = format!("{} (SQLSTATE {})", db.message(), db.code().code());
            if let Some(d) = db.detail() {
                m.push_str(&format!("; {d}"));
            }
            if let Some(h) = db.hint() {
                m.push_str(&format!("; hint: {h}"));
            }
            m
        }
        None => {
            let mut m = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                m.push_str(&format!(": {s}"));
                src = s.source();
            }
            m
        }
    };
    RuntimeError::Connector(format!("postgres: {what}: {msg}"))
}

/// Where a connection goes, without the password.
fn describe(config: &tokio_postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(s) => s.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{}@{host}:{port}/{}",
        config.get_user().unwrap_or(""),
        config.get_dbname().unwrap_or("")
    )
}

/// Connects, giving up after the spec's timeout with an error that says where it tried.
async fn connect(spec: &PostgresSinkSpec, op: &str) -> Result<Client> {
    let mut config: tokio_postgres::Config = spec
        .url
        .parse()
        .map_err(|e| RuntimeError::Plan(format!("postgres_sink {op:?}: bad url: {e}")))?;
    let timeout = Duration::from_millis(spec.connect_timeout_ms.max(1));
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(timeout);
    }
    let target = describe(&config);
    let connected = tokio::time::timeout(timeout + Duration::from_secs(1), config.connect(NoTls))
        .await
        .map_err(|_| {
            RuntimeError::Connector(format!(
                "postgres_sink {op:?}: cannot reach PostgreSQL at {target} within {} ms",
                timeout.as_millis()
            ))
        })?
        .map_err(|e| pg_err(&format!("sink {op:?} cannot connect to {target}"), e))?;
    let (client, connection) = connected;
    let op = op.to_string();
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            warn!(operator = %op, error = %e, "postgres connection closed");
        }
    });
    Ok(client)
}

pub struct PostgresSink {
    client: Client,
    insert: Statement,
    types: Vec<PgType>,
    transactional: bool,
    in_txn: bool,
    /// `weir:<job>:<op>:s<subtask>:a<attempt>:`; the checkpoint id completes it.
    gid_prefix: String,
    batch_rows: usize,
    buffer: Vec<RecordBatch>,
    buffered_rows: usize,
    log: TxnLog<String>,
    /// Upsert mode: the key columns, and whether the last row of a key in one flush wins
    /// (`DO UPDATE`) or the first (`DO NOTHING`). PostgreSQL refuses an `ON CONFLICT` insert
    /// that touches a row twice, which an updating stream (several updates of one key in a
    /// batch) would otherwise do.
    dedupe: Option<(Vec<usize>, bool)>,
}

/// Keeps one row per key of `batch`: the last one if `last`, else the first.
fn one_row_per_key(batch: &RecordBatch, keys: &[usize], last: bool) -> Result<RecordBatch> {
    let fields = keys
        .iter()
        .map(|i| arrow::row::SortField::new(batch.schema().field(*i).data_type().clone()))
        .collect();
    let converter = arrow::row::RowConverter::new(fields)?;
    let cols: Vec<ArrayRef> = keys.iter().map(|i| batch.column(*i).clone()).collect();
    let rows = converter.convert_columns(&cols)?;
    let n = batch.num_rows();
    let mut seen = std::collections::HashSet::with_capacity(n);
    let mut keep: Vec<u32> = Vec::with_capacity(n);
    let order: Box<dyn Iterator<Item = usize>> = if last {
        Box::new((0..n).rev())
    } else {
        Box::new(0..n)
    };
    for i in order {
        if seen.insert(rows.row(i)) {
            keep.push(i as u32);
        }
    }
    if keep.len() == n {
        return Ok(batch.clone());
    }
    keep.sort_unstable();
    Ok(arrow::compute::take_record_batch(
        batch,
        &arrow::array::UInt32Array::from(keep),
    )?)
}

/// Prefix of every transaction id one operator of one job prepares.
fn gid_operator_prefix(job: &str, op: &str) -> String {
    format!("weir:{job}:{op}:")
}

/// The attempt number in a transaction id, given its operator prefix.
fn gid_attempt(gid: &str, prefix: &str) -> Option<u64> {
    let rest = gid.strip_prefix(prefix)?;
    let mut parts = rest.split(':');
    parts.next()?.strip_prefix('s')?;
    parts.next()?.strip_prefix('a')?.parse().ok()
}

impl PostgresSink {
    pub async fn open(
        ctx: &OperatorContext,
        spec: &PostgresSinkSpec,
        restored: Option<Restored>,
    ) -> Result<Self> {
        let schema = ctx.input_schema.clone().ok_or_else(|| {
            RuntimeError::Internal(format!("operator {} has no input schema", ctx.op_id))
        })?;
        let sql = build_sql(spec, &schema, &ctx.op_id)?;
        let client = connect(spec, &ctx.op_id).await?;
        let transactional = spec.mode == PostgresSinkMode::ExactlyOnce;
        if transactional {
            let row = client
                .query_one("SHOW max_prepared_transactions", &[])
                .await
                .map_err(|e| pg_err("reading max_prepared_transactions", e))?;
            let max: String = row.get(0);
            if max.trim() == "0" {
                return Err(RuntimeError::Connector(format!(
                    "postgres_sink {:?}: mode exactly_once needs prepared transactions, and this server has max_prepared_transactions = 0; set it above 0 (server restart) or use mode \"upsert\"",
                    ctx.op_id
                )));
            }
        }
        if spec.create_table {
            // Every subtask runs this; concurrent `CREATE TABLE IF NOT EXISTS` can fail on the
            // catalog's unique index, so they take turns under an advisory lock.
            client
                .batch_execute(&format!(
                    "BEGIN; SELECT pg_advisory_xact_lock(hashtext({})); {}; COMMIT",
                    quote_literal(&spec.table),
                    sql.create
                ))
                .await
                .map_err(|e| pg_err(&format!("creating table {}", spec.table), e))?;
        }
        let insert = client
            .prepare(&sql.insert)
            .await
            .map_err(|e| pg_err(&format!("preparing the insert into {}", spec.table), e))?;
        let mut sink = Self {
            client,
            insert,
            types: sql.types,
            transactional,
            in_txn: false,
            gid_prefix: format!(
                "{}s{}:a{}:",
                gid_operator_prefix(&ctx.job_id.0, &ctx.op_id),
                ctx.subtask,
                ctx.attempt
            ),
            batch_rows: spec.batch_rows as usize,
            buffer: Vec::new(),
            buffered_rows: 0,
            log: TxnLog::default(),
            dedupe: if transactional {
                None
            } else {
                let keys = spec
                    .key
                    .iter()
                    .map(|k| {
                        schema.index_of(k).map_err(|_| {
                            RuntimeError::Plan(format!("postgres_sink: no key column {k:?}"))
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Some((keys, spec.on_conflict == weir_types::OnConflict::Update))
            },
        };
        if ctx.subtask == 0 {
            sink.recover(ctx, restored).await?;
        }
        Ok(sink)
    }

    /// Commits what the restored checkpoint recorded and rolls back earlier attempts' strays.
    async fn recover(&mut self, ctx: &OperatorContext, restored: Option<Restored>) -> Result<()> {
        let mut logs = Vec::new();
        let restored_job = restored.as_ref().map(|r| r.job_id.clone());
        if let Some(r) = restored {
            for (_, bytes) in &r.snapshots {
                let s: SinkState = weir_state::decode(bytes)?;
                logs.push(s.pending);
            }
        }
        let (_, to_commit) = TxnLog::restore(logs);
        let recorded: BTreeSet<String> = to_commit.iter().cloned().collect();
        let mut committed = 0;
        for gid in &to_commit {
            if self.commit_prepared(gid).await? {
                committed += 1;
            }
        }
        let mut prefixes = vec![(gid_operator_prefix(&ctx.job_id.0, &ctx.op_id), true)];
        if let Some(job) = restored_job.filter(|j| *j != ctx.job_id.0) {
            prefixes.push((gid_operator_prefix(&job, &ctx.op_id), false));
        }
        let rows = self
            .client
            .query(
                "SELECT gid FROM pg_prepared_xacts WHERE database = current_database()",
                &[],
            )
            .await
            .map_err(|e| pg_err("listing prepared transactions", e))?;
        let mut aborted = 0;
        for row in rows {
            let gid: String = row.get(0);
            if recorded.contains(&gid) {
                continue;
            }
            let stray = prefixes.iter().any(|(p, ours)| match gid_attempt(&gid, p) {
                Some(a) if *ours => a < ctx.attempt,
                Some(_) => true,
                None => false,
            });
            if stray {
                self.client
                    .batch_execute(&format!("ROLLBACK PREPARED {}", quote_literal(&gid)))
                    .await
                    .or_else(|e| {
                        if e.code() == Some(&SqlState::UNDEFINED_OBJECT) {
                            Ok(())
                        } else {
                            Err(pg_err(&format!("rolling back {gid}"), e))
                        }
                    })?;
                aborted += 1;
            }
        }
        if !to_commit.is_empty() || aborted > 0 {
            info!(
                recorded = to_commit.len(),
                committed, aborted, "postgres sink recovered"
            );
        }
        Ok(())
    }

    /// `COMMIT PREPARED`; false if it was no longer prepared (committed before).
    async fn commit_prepared(&self, gid: &str) -> Result<bool> {
        match self
            .client
            .batch_execute(&format!("COMMIT PREPARED {}", quote_literal(gid)))
            .await
        {
            Ok(()) => Ok(true),
            Err(e) if e.code() == Some(&SqlState::UNDEFINED_OBJECT) => {
                debug!(gid, "already committed");
                Ok(false)
            }
            Err(e) => Err(pg_err(&format!("committing {gid}"), e)),
        }
    }

    /// Writes the buffered rows: inside the epoch's transaction (exactly-once) or as one
    /// autocommitted statement (upsert).
    async fn flush(&mut self) -> Result<()> {
        if self.buffered_rows == 0 {
            return Ok(());
        }
        let mut batches = std::mem::take(&mut self.buffer);
        self.buffered_rows = 0;
        let mut batch = if batches.len() == 1 {
            batches.remove(0)
        } else {
            arrow::compute::concat_batches(&batches[0].schema(), &batches)?
        };
        if let Some((keys, last)) = &self.dedupe {
            if !keys.is_empty() {
                batch = one_row_per_key(&batch, keys, *last)?;
            }
        }
        if self.transactional && !self.in_txn {
            self.client
                .batch_execute("BEGIN")
                .await
                .map_err(|e| pg_err("BEGIN", e))?;
            self.in_txn = true;
        }
        let columns = (0..batch.num_columns())
            .map(|i| to_param(batch.column(i), self.types[i]))
            .collect::<Result<Vec<_>>>()?;
        let params: Vec<&(dyn ToSql + Sync)> = columns.iter().map(|c| c.as_sql()).collect();
        self.client
            .execute(&self.insert, &params)
            .await
            .map_err(|e| pg_err("inserting rows", e))?;
        Ok(())
    }
}

/// One column as an array parameter.
enum Param<'a> {
    I16(Vec<Option<i16>>),
    I32(Vec<Option<i32>>),
    I64(Vec<Option<i64>>),
    F32(Vec<Option<f32>>),
    F64(Vec<Option<f64>>),
    Text(Vec<Option<&'a str>>),
    Bool(Vec<Option<bool>>),
    Bytes(Vec<Option<&'a [u8]>>),
    Time(Vec<Option<SystemTime>>),
}

impl Param<'_> {
    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Param::I16(v) => v,
            Param::I32(v) => v,
            Param::I64(v) => v,
            Param::F32(v) => v,
            Param::F64(v) => v,
            Param::Text(v) => v,
            Param::Bool(v) => v,
            Param::Bytes(v) => v,
            Param::Time(v) => v,
        }
    }
}

fn to_param(col: &ArrayRef, t: PgType) -> Result<Param<'_>> {
    let strict = CastOptions {
        safe: false,
        ..Default::default()
    };
    let cast = |to: DataType| cast_with_options(col, &to, &strict);
    Ok(match t {
        PgType::Int2 => Param::I16(
            cast(DataType::Int16)?
                .as_primitive::<Int16Type>()
                .iter()
                .collect(),
        ),
        PgType::Int4 => Param::I32(
            cast(DataType::Int32)?
                .as_primitive::<Int32Type>()
                .iter()
                .collect(),
        ),
        PgType::Int8 => Param::I64(
            cast(DataType::Int64)?
                .as_primitive::<Int64Type>()
                .iter()
                .collect(),
        ),
        PgType::Float4 => Param::F32(col.as_primitive::<Float32Type>().iter().collect()),
        PgType::Float8 => Param::F64(col.as_primitive::<Float64Type>().iter().collect()),
        PgType::Text => match col.data_type() {
            DataType::LargeUtf8 => Param::Text(col.as_string::<i64>().iter().collect()),
            DataType::Utf8View => Param::Text(col.as_string_view().iter().collect()),
            _ => Param::Text(col.as_string::<i32>().iter().collect()),
        },
        PgType::Bool => Param::Bool(col.as_boolean().iter().collect()),
        PgType::Bytea => match col.data_type() {
            DataType::LargeBinary => Param::Bytes(col.as_binary::<i64>().iter().collect()),
            _ => Param::Bytes(col.as_binary::<i32>().iter().collect()),
        },
        PgType::Timestamp(..) => {
            let micros = cast(DataType::Timestamp(TimeUnit::Microsecond, None))?;
            let arr = micros.as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
            Param::Time(
                arr.iter()
                    .map(|v| {
                        v.map(|us| {
                            if us >= 0 {
                                UNIX_EPOCH + Duration::from_micros(us as u64)
                            } else {
                                UNIX_EPOCH - Duration::from_micros(us.unsigned_abs())
                            }
                        })
                    })
                    .collect(),
            )
        }
    })
}

#[async_trait]
impl Operator for PostgresSink {
    async fn process(&mut self, batch: RecordBatch) -> Result<Option<RecordBatch>> {
        if batch.num_rows() == 0 {
            return Ok(None);
        }
        self.buffered_rows += batch.num_rows();
        self.buffer.push(batch);
        if self.buffered_rows >= self.batch_rows {
            self.flush().await?;
        }
        Ok(None)
    }

    async fn snapshot(&mut self, barrier: &Barrier) -> Result<Option<Vec<u8>>> {
        self.flush().await?;
        if !self.transactional {
            return Ok(None);
        }
        if self.in_txn {
            let gid = format!("{}c{}", self.gid_prefix, barrier.id);
            self.client
                .batch_execute(&format!("PREPARE TRANSACTION {}", quote_literal(&gid)))
                .await
                .map_err(|e| pg_err(&format!("preparing {gid}"), e))?;
            self.in_txn = false;
            failpoint::hit(failpoint::POSTGRES_SINK_PREPARED);
            debug!(gid, checkpoint = barrier.id, "pre-committed");
            self.log.pre_commit(barrier.id, vec![gid]);
        }
        Ok(Some(weir_state::encode(&SinkState {
            pending: self.log.pending(),
        })?))
    }

    async fn checkpoint_complete(&mut self, id: CheckpointId) -> Result<()> {
        for gid in self.log.complete(id) {
            failpoint::hit(failpoint::POSTGRES_SINK_COMMIT);
            self.commit_prepared(&gid).await?;
        }
        Ok(())
    }

    async fn end_of_input(&mut self) -> Result<Option<RecordBatch>> {
        if !self.transactional {
            self.flush().await?;
        }
        Ok(None)
    }

    fn awaiting_commit(&self) -> bool {
        self.transactional && (!self.log.is_empty() || self.in_txn || self.buffered_rows > 0)
    }

    async fn finish(&mut self) -> Result<()> {
        self.flush().await?;
        if self.in_txn {
            warn!("exactly-once postgres sink finishing without a final checkpoint; committing directly");
            self.client
                .batch_execute("COMMIT")
                .await
                .map_err(|e| pg_err("COMMIT", e))?;
            self.in_txn = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{Field, Schema, SchemaRef};
    use std::sync::Arc;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    #[test]
    fn one_row_per_key_keeps_the_last_update_or_the_first_insert() {
        let b = RecordBatch::try_new(
            schema(),
            vec![
                std::sync::Arc::new(arrow::array::Int64Array::from(vec![1, 2, 1, 3, 1])),
                std::sync::Arc::new(arrow::array::StringArray::from(vec![
                    "a", "b", "c", "d", "e",
                ])),
            ],
        )
        .unwrap();
        let names = |b: &RecordBatch| -> Vec<String> {
            b.column(1)
                .as_string::<i32>()
                .iter()
                .map(|s| s.unwrap().to_string())
                .collect()
        };
        assert_eq!(
            names(&one_row_per_key(&b, &[0], true).unwrap()),
            vec!["b", "d", "e"]
        );
        assert_eq!(
            names(&one_row_per_key(&b, &[0], false).unwrap()),
            vec!["a", "b", "d"]
        );
    }

    #[test]
    fn transaction_ids_name_their_attempt() {
        let p = gid_operator_prefix("j-1", "out");
        assert_eq!(gid_attempt("weir:j-1:out:s3:a7:c12", &p), Some(7));
        assert_eq!(gid_attempt("weir:j-1:outer:s3:a7:c12", &p), None);
        assert_eq!(gid_attempt("weir:j-2:out:s3:a7:c12", &p), None);
    }

    #[test]
    fn identifiers_and_literals_are_quoted() {
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
