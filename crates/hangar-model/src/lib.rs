//! The AgentCore wire model.
//!
//! Everything under [`generated`](crate::control) is produced by `hangar-codegen` from the
//! botocore service models in `model/` (run `cargo run -p hangar-codegen` after changing them;
//! CI runs `scripts/check-codegen`). This crate adds the hand-written pieces the generated code
//! relies on: [`Timestamp`], [`Blob`], the [`validate`] module and shape look-ups.

pub mod schema;
pub use schema::*;

mod blob;
pub(crate) mod de;
mod generated;
mod timestamp;
pub mod validate;

pub use blob::Blob;
pub use generated::{
    control, data, Input, Operation, Output, CONTROL_SHAPE_COUNT, OPERATIONS, SHAPES,
};
pub use timestamp::Timestamp;
pub use validate::{validate_input, validate_shape, FieldViolation, ValidationError};

/// The error of `FromStr` on a generated string-enum type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownEnumValue {
    /// The botocore shape name of the enum.
    pub shape: &'static str,
    /// The rejected value.
    pub value: String,
}

impl std::fmt::Display for UnknownEnumValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "'{}' is not a valid {} value", self.value, self.shape)
    }
}

impl std::error::Error for UnknownEnumValue {}

/// The table entry of a shape.
///
/// # Panics
/// If `id` is not a valid index into [`SHAPES`].
pub fn shape(id: ShapeId) -> &'static Shape {
    &SHAPES[id]
}

/// The id of the shape named `name` in `service`'s model, if it is in the table (the table holds
/// every shape reachable from the implemented operations' input, output and error shapes).
pub fn shape_by_name(service: Service, name: &str) -> Option<ShapeId> {
    let (start, slice) = match service {
        Service::Control => (0, &SHAPES[..CONTROL_SHAPE_COUNT]),
        Service::Data => (CONTROL_SHAPE_COUNT, &SHAPES[CONTROL_SHAPE_COUNT..]),
    };
    slice
        .binary_search_by(|s| s.name.cmp(name))
        .ok()
        .map(|i| start + i)
}

/// The service whose model a shape comes from.
pub fn shape_service(id: ShapeId) -> Service {
    if id < CONTROL_SHAPE_COUNT {
        Service::Control
    } else {
        Service::Data
    }
}

#[cfg(test)]
mod tests;
