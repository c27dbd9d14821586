//! The relational operators, one file each: filter, project, keyed and updating aggregates,
//! event-time windows (tumbling, hopping, session), over aggregates, joins and the union.
//! Each implements `weir_runtime::operator::Operator`; [`register`] enters them in a task
//! manager's registry. Their output schemas and checks are the planner's
//! (`weir_planner::schema`), so the job manager checks a job without this crate.
//!
//! Architecture invariant: no connector (no external system, no storage but the state
//! snapshots the task uploads) and no knowledge of task or job managers.

mod aggregate;
mod filter;
mod join;
mod over;
mod project;
mod session;
mod union;
mod updating;
mod window;

use arrow::datatypes::SchemaRef;
use weir_runtime::error::{Result, RuntimeError};
use weir_runtime::operator::{Operator, OperatorContext};
use weir_runtime::registry::Registry;
use weir_types::{OperatorKind, OperatorSpec};

/// The one input schema of an operator that has one.
fn input(ctx: &OperatorContext) -> Result<SchemaRef> {
    ctx.input_schema.clone().ok_or_else(|| {
        RuntimeError::Internal(format!("operator {} has no input schema", ctx.op_id))
    })
}

/// A builder was handed a spec of another kind (a registration mistake).
fn wrong_kind(spec: &OperatorSpec) -> RuntimeError {
    RuntimeError::Internal(format!(
        "operator {:?}: registered builder does not build {}",
        spec.id,
        spec.kind.type_name()
    ))
}

/// Enters every relational operator in `registry`.
pub fn register(registry: &mut Registry) {
    registry
        .operator("filter", |ctx, spec, _| {
            Box::pin(async move {
                let OperatorKind::Filter { predicate } = &spec.kind else {
                    return Err(wrong_kind(spec));
                };
                Ok(Box::new(filter::Filter::new(predicate, &input(ctx)?)?) as Box<dyn Operator>)
            })
        })
        .operator("project", |ctx, spec, _| {
            Box::pin(async move {
                let OperatorKind::Project { exprs } = &spec.kind else {
                    return Err(wrong_kind(spec));
                };
                let p = project::Project::new(exprs, &input(ctx)?, ctx.output_schema.clone())?;
                Ok(Box::new(p) as Box<dyn Operator>)
            })
        })
        .operator("window_aggregate", |ctx, spec, restored| {
            Box::pin(async move {
                let OperatorKind::WindowAggregate(w) = &spec.kind else {
                    return Err(wrong_kind(spec));
                };
                if w.gap_ms > 0 {
                    let s = session::SessionWindows::new(ctx, w, &input(ctx)?, restored)?;
                    Ok(Box::new(s) as Box<dyn Operator>)
                } else {
                    window::build(ctx, w, &input(ctx)?, restored)
                }
            })
        })
        .operator("over_aggregate", |ctx, spec, restored| {
            Box::pin(async move {
                let OperatorKind::OverAggregate(o) = &spec.kind else {
                    return Err(wrong_kind(spec));
                };
                let o = over::OverAggregate::new(ctx, o, &input(ctx)?, restored)?;
                Ok(Box::new(o) as Box<dyn Operator>)
            })
        })
        .operator("keyed_aggregate", |ctx, spec, restored| {
            Box::pin(async move {
                let OperatorKind::KeyedAggregate {
                    keys,
                    aggregates,
                    skip_unchanged,
                } = &spec.kind
                else {
                    return Err(wrong_kind(spec));
                };
                aggregate::build(
                    ctx,
                    keys,
                    aggregates,
                    *skip_unchanged,
                    &input(ctx)?,
                    restored,
                )
            })
        })
        .operator("updating_aggregate", |ctx, spec, restored| {
            Box::pin(async move {
                let OperatorKind::UpdatingAggregate {
                    keys,
                    upsert_keys,
                    aggregates,
                    skip_unchanged,
                } = &spec.kind
                else {
                    return Err(wrong_kind(spec));
                };
                let u = updating::UpdatingAggregate::new(
                    ctx,
                    keys,
                    upsert_keys,
                    aggregates,
                    *skip_unchanged,
                    &input(ctx)?,
                    restored,
                )?;
                Ok(Box::new(u) as Box<dyn Operator>)
            })
        })
        .operator("join", |ctx, spec, restored| {
            Box::pin(async move {
                let OperatorKind::Join(j) = &spec.kind else {
                    return Err(wrong_kind(spec));
                };
                Ok(Box::new(join::Join::new(ctx, j, restored)?) as Box<dyn Operator>)
            })
        })
        .operator("union", |_, _, _| {
            Box::pin(async { Ok(Box::new(union::PassThrough) as Box<dyn Operator>) })
        });
}

/// The input of the event-time operators' tests: `k` and `v` (Int64, `v` nullable if asked)
/// and `ts` (millisecond timestamps).
#[cfg(test)]
pub(crate) fn key_value_time_schema(nullable_value: bool) -> SchemaRef {
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    std::sync::Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("v", DataType::Int64, nullable_value),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            false,
        ),
    ]))
}
