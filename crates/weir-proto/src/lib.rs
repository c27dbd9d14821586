//! Generated protobuf and gRPC code for Weir (`proto/weir.proto`). Nothing but generated code
//! lives here; conversions to Weir's own types happen at each service's edge.
#![allow(clippy::all, missing_docs)]

pub mod v1 {
    tonic::include_proto!("weir.v1");
}
pub use v1::*;
