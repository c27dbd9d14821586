//! Simple sinks: blackhole (counts and drops) and stdout (prints JSON lines).

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use std::io::Write;
use weir_runtime::error::Result;
use weir_runtime::operator::{Operator, OperatorContext};

#[derive(Default)]
pub struct Blackhole {
    rows: u64,
}

#[async_trait]
impl Operator for Blackhole {
    async fn process(&mut self, batch: RecordBatch) -> Result<Option<RecordBatch>> {
        self.rows += batch.num_rows() as u64;
        Ok(None)
    }
}

pub struct Stdout {
    prefix: String,
    summary_only: bool,
}

impl Stdout {
    pub fn new(ctx: &OperatorContext, spec: &weir_types::StdoutSinkSpec) -> Self {
        if !spec.upsert_keys.is_empty() && ctx.subtask == 0 {
            tracing::info!(
                keys = %spec.upsert_keys.join(", "),
                "print sink: an updating result; each row replaces the previous row of its key"
            );
        }
        let summary_only = spec.summary_only;
        let prefix = if ctx.parallelism > 1 {
            format!("{}> ", ctx.subtask)
        } else {
            String::new()
        };
        Self {
            prefix,
            summary_only,
        }
    }
}

#[async_trait]
impl Operator for Stdout {
    async fn process(&mut self, batch: RecordBatch) -> Result<Option<RecordBatch>> {
        let mut buf = Vec::new();
        if self.summary_only {
            writeln!(buf, "{}{} rows", self.prefix, batch.num_rows()).ok();
        } else {
            let mut json = Vec::new();
            crate::json_lines::write(&batch, &mut json)?;
            for line in json.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                buf.extend_from_slice(self.prefix.as_bytes());
                buf.extend_from_slice(line);
                buf.push(b'\n');
            }
        }
        // A closed stdout (e.g. `| head`) is not a job failure.
        let _ = std::io::stdout().lock().write_all(&buf);
        Ok(None)
    }
}
