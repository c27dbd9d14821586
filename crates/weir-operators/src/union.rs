//! The union: its inputs' batches, merged in arrival order (their schemas are checked equal
//! by the planner).

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use weir_runtime::error::Result;
use weir_runtime::operator::Operator;

pub struct PassThrough;

#[async_trait]
impl Operator for PassThrough {
    async fn process(&mut self, batch: RecordBatch) -> Result<Option<RecordBatch>> {
        Ok(Some(batch))
    }
}
