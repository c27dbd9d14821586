//! `UNION ALL`: one `union` operator over every input.

use super::{field_names, unsupported, Stream, TimeCol, Translator};
use crate::error::{Result, SqlError};
use weir_types::{InputSpec, OperatorKind, OperatorSpec};

impl Translator<'_> {
    /// UNION ALL: every input's rows, in the union's column names, through one `union`
    /// operator. A time column stays one if it is one in every input (with the largest
    /// slack of them).
    pub(super) fn union(&mut self, u: &datafusion::logical_expr::Union) -> Result<Stream> {
        let at = self.at;
        let names = field_names(u.schema.fields());
        let mut streams: Vec<Stream> = Vec::new();
        for input in &u.inputs {
            let s = self.plan(input)?;
            if s.keys.is_some() {
                return Err(unsupported(
                    at,
                    "UNION over an updating result (a GROUP BY without a window)",
                ));
            }
            if s.columns.len() != names.len() {
                return Err(SqlError::at(
                    at,
                    format!(
                        "UNION: an input has {} columns, the union {}",
                        s.columns.len(),
                        names.len()
                    ),
                ));
            }
            // Each input gets its own edge: an input that is another's stream (the same
            // sub-plan twice) or named otherwise goes through a projection of its own.
            let s = if s.columns != names || streams.iter().any(|o| o.op == s.op) {
                let from = s.columns.clone();
                self.project_columns(&s, &from, &names)?
            } else {
                s
            };
            streams.push(s);
        }
        let times: Vec<TimeCol> = streams
            .first()
            .map(|first| {
                first
                    .times
                    .iter()
                    .filter_map(|t| {
                        let all: Vec<&TimeCol> =
                            streams.iter().filter_map(|s| s.time(&t.name)).collect();
                        (all.len() == streams.len()).then(|| TimeCol {
                            name: t.name.clone(),
                            slack_ms: all.iter().map(|x| x.slack_ms).max().unwrap_or(0),
                            window: if all.iter().all(|x| x.window == t.window) {
                                t.window
                            } else {
                                None
                            },
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let id = self.fresh("union");
        let inputs = streams
            .iter()
            .map(|s| InputSpec {
                from: s.op.clone(),
                partition: self.forward_or_rebalance(s),
            })
            .collect();
        self.ops.push(OperatorSpec {
            id: id.clone(),
            parallelism: self.parallelism,
            inputs,
            kind: OperatorKind::Union,
            watermark: None,
        });
        Ok(Stream {
            op: id,
            parallelism: self.parallelism,
            columns: names,
            keys: None,
            times,
        })
    }
}
