//! The data plane's core: what an operator is, the channels between subtasks, and the subtask
//! loop that handles barriers, snapshots and two-phase commits. The operators themselves are
//! in `weir-operators` (relational) and `weir-connectors` (sources and sinks); schemas and
//! expressions in `weir-planner`.
//!
//! * [`operator`] defines the [`operator::Operator`] and [`operator::Source`] traits and what
//!   an operator knows of where it runs;
//! * [`registry`] maps an operator type to the code that builds it; the binary fills it;
//! * [`task`] runs one subtask: it reads its input channels, aligns barriers (per the job's
//!   guarantee, using `weir_checkpoint::BarrierAligner`), runs its operator chain, writes its
//!   outputs through [`output`] partitioners, and uploads snapshots asynchronously;
//! * [`watermark`] generates event-time watermarks per source partition and combines them;
//! * [`alignment`] pauses a source that runs too far ahead of its alignment group in event
//!   time (watermark alignment);
//! * [`exchange`] encodes channel messages for the network (Arrow IPC).
//!
//! Architecture invariant: no gRPC and no knowledge of job or task managers here. A task
//! reports through a [`task::TaskEvent`] channel and is driven through a [`task::TaskControl`]
//! channel; whoever runs it (the task manager) wires channels and does the networking.

pub mod alignment;
pub mod error;
pub mod exchange;
pub mod hashing;
pub mod inflight;
pub mod message;
pub mod operator;
pub mod output;
pub mod registry;
pub mod task;
pub mod watermark;

pub use error::{Result, RuntimeError};
pub use message::{Barrier, Message};
