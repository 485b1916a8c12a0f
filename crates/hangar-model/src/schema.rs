//! The shape of the generated model tables.
//!
//! `hangar-codegen` turns botocore's `service-2.json` files into static tables of these
//! types (see `generated/`). The wire layer walks them to bind HTTP requests to operation
//! inputs, and [`crate::validate`] walks them to enforce every constraint the model states.

/// Index into [`crate::generated::SHAPES`].
pub type ShapeId = usize;

/// Which AgentCore API an operation belongs to. Both are served on one port: their URI sets do
/// not collide and both sign with `bedrock-agentcore`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// `bedrock-agentcore-control`, API version 2023-06-05.
    Control,
    /// `bedrock-agentcore`, API version 2024-02-28.
    Data,
}

#[derive(Debug)]
pub struct Shape {
    /// The botocore shape name, e.g. `AgentRuntimeName`.
    pub name: &'static str,
    pub kind: ShapeKind,
    /// `sensitive` trait: the value must never be echoed in error messages or logs.
    pub sensitive: bool,
}

#[derive(Debug)]
pub enum ShapeKind {
    Structure {
        members: &'static [Member],
        /// A tagged union: exactly one member must be set.
        union: bool,
        /// `document: true` structures accept any JSON value.
        document: bool,
    },
    List {
        member: ShapeId,
        min: Option<u64>,
        max: Option<u64>,
    },
    Map {
        key: ShapeId,
        value: ShapeId,
        min: Option<u64>,
        max: Option<u64>,
    },
    String {
        min: Option<u64>,
        max: Option<u64>,
        /// Unanchored, as botocore writes it; AWS matches it against the whole value.
        pattern: Option<&'static str>,
        enum_values: &'static [&'static str],
    },
    Integer {
        min: Option<i64>,
        max: Option<i64>,
    },
    Long {
        min: Option<i64>,
        max: Option<i64>,
    },
    Double {
        min: Option<f64>,
        max: Option<f64>,
    },
    Boolean,
    Timestamp,
    Blob {
        min: Option<u64>,
        max: Option<u64>,
        streaming: bool,
    },
}

#[derive(Debug)]
pub struct Member {
    /// The member name as it appears in JSON bodies, e.g. `agentRuntimeName`.
    pub name: &'static str,
    pub shape: ShapeId,
    pub required: bool,
    pub location: Location,
    /// botocore fills these with a uuid4 when the caller omits them.
    pub idempotency_token: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// A member of the JSON body object.
    Body,
    /// A `{label}` (or greedy `{label+}`) segment of the request URI.
    Uri(&'static str),
    /// A query-string parameter (repeated for list shapes).
    Query(&'static str),
    /// An HTTP header.
    Header(&'static str),
    /// The whole HTTP body is this member (raw blob, document or event stream).
    Payload,
    /// The HTTP status code (responses only).
    StatusCode,
}

#[derive(Debug)]
pub struct OperationDef {
    pub op: crate::Operation,
    /// The botocore operation name, e.g. `CreateAgentRuntime`.
    pub name: &'static str,
    pub service: Service,
    pub method: &'static str,
    /// The path template from `requestUri`, e.g. `/runtimes/{agentRuntimeId}/`.
    pub uri: &'static str,
    pub success_code: u16,
    pub input: Option<ShapeId>,
    pub output: Option<ShapeId>,
    /// The error shape names the model declares for the operation.
    pub errors: &'static [&'static str],
}
