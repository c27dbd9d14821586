//! Schemas and checks of a job, without the task loop: the Arrow schema each operator
//! produces ([`schemas`]), every column, type and expression checked against it
//! ([`validate`]), and SQL expressions compiled for Arrow batches ([`expr`]).
//!
//! The job manager validates a submitted job here; the task manager computes each
//! operator's input and output schemas here before it builds the operators
//! (`weir-operators`, `weir-connectors`), which compile their expressions and statements
//! with the same functions, so what was checked at submit time is what runs.
//!
//! * [`schema`]: the whole job: one match over the operator kinds, the one place a new kind's
//!   schema and checks go;
//! * [`window`], [`join`], [`nexmark`], [`kafka`], [`postgres`]: the schemas and checks of
//!   the operators and connectors whose rules are longer than a few lines;
//! * [`keys`]: which column types can be keys.
//!
//! Architecture invariant: no I/O, no async, no knowledge of tasks, channels or any
//! connector's client library: a crate the job manager and the client can use.

pub mod error;
pub mod expr;
pub mod join;
pub mod kafka;
pub mod keys;
pub mod nexmark;
pub mod postgres;
pub mod schema;
pub mod types;
pub mod window;

pub use error::{PlanError, Result};
pub use keys::is_key_type;
pub use schema::{generator_schema, not_built, schemas, validate};
pub use types::{agg_type, parse_type};
