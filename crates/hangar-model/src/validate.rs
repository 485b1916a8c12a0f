//! Input validation against the model's constraints, with AWS (Coral) error texts.
//!
//! The wire layer assembles an operation's input as one JSON object keyed by member name
//! (URI labels, query parameters, headers and body members alike, already converted to the
//! member's JSON type) and calls [`validate_input`]. Every member is checked recursively:
//! required members, lengths, ranges, patterns, enums, unions and JSON types. JSON `null`
//! counts as absent and unknown members are ignored.

use crate::schema::{ShapeId, ShapeKind};
use crate::{Operation, Timestamp, SHAPES};
use regex::Regex;
use serde::Serialize;
use serde_json::Value;
use std::sync::OnceLock;

/// One violated constraint.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldViolation {
    /// The member path, e.g. `protocolConfiguration.serverProtocol`, `entryPoint[0]`,
    /// `environmentVariables[KEY]`.
    pub name: String,
    /// The full Coral sentence, e.g. `Value 'a-b' at 'agentRuntimeName' failed to satisfy
    /// constraint: Member must satisfy regular expression pattern: [a-zA-Z][a-zA-Z0-9_]{0,47}`.
    pub message: String,
}

impl FieldViolation {
    /// Builds a violation in the Coral form. `value` is the already rendered value (`None` for
    /// sensitive members, which are reported as `Value at '…'`).
    pub fn new(name: &str, value: Option<&str>, constraint: &str) -> FieldViolation {
        let message = match value {
            Some(v) => format!("Value {v} at '{name}' failed to satisfy constraint: {constraint}"),
            None => format!("Value at '{name}' failed to satisfy constraint: {constraint}"),
        };
        FieldViolation {
            name: name.to_string(),
            message,
        }
    }

    /// `Value null at 'name' failed to satisfy constraint: Member must not be null`.
    pub fn missing(name: &str) -> FieldViolation {
        FieldViolation::new(name, Some("null"), "Member must not be null")
    }
}

/// The violations of one request; [`ValidationError::message`] is the `ValidationException`
/// message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ValidationError {
    pub fields: Vec<FieldViolation>,
}

impl ValidationError {
    /// `1 validation error detected: …` / `2 validation errors detected: …; …`.
    pub fn message(&self) -> String {
        let n = self.fields.len();
        let list: Vec<&str> = self.fields.iter().map(|f| f.message.as_str()).collect();
        format!(
            "{n} validation error{} detected: {}",
            if n == 1 { "" } else { "s" },
            list.join("; ")
        )
    }
}

impl std::fmt::Display for ValidationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for ValidationError {}

/// Validates an operation's input object (see the module docs). A JSON `null` input is
/// treated as `{}`.
pub fn validate_input(op: Operation, input: &Value) -> Result<(), ValidationError> {
    let Some(id) = op.def().input else {
        return Ok(());
    };
    let empty = Value::Object(Default::default());
    let input = if input.is_null() { &empty } else { input };
    let fields = validate_shape(id, input, "");
    if fields.is_empty() {
        Ok(())
    } else {
        Err(ValidationError { fields })
    }
}

/// Validates `v` against shape `id`, reporting paths below `path` (`""` = the top level, whose
/// members are reported by bare name). `null` is absent: it yields no violation here (whether
/// a member is required is checked by its enclosing structure).
pub fn validate_shape(id: ShapeId, v: &Value, path: &str) -> Vec<FieldViolation> {
    let mut out = Vec::new();
    if !v.is_null() {
        check(id, v, path, false, &mut out);
    }
    out
}

/// The longest value echoed in a message, in characters.
const ECHO_LIMIT: usize = 256;

fn check(id: ShapeId, v: &Value, path: &str, sensitive: bool, out: &mut Vec<FieldViolation>) {
    let shape = &SHAPES[id];
    let sensitive = sensitive || shape.sensitive;
    let violation = |out: &mut Vec<FieldViolation>, constraint: &str| {
        let echoed = if sensitive { None } else { Some(echo(v)) };
        out.push(FieldViolation::new(path, echoed.as_deref(), constraint));
    };
    match &shape.kind {
        ShapeKind::Structure { document: true, .. } => {}
        ShapeKind::Structure { members, union, .. } => {
            let Some(obj) = v.as_object() else {
                return violation(out, "Member must be of type structure");
            };
            if *union {
                let set = members
                    .iter()
                    .filter(|m| obj.get(m.name).is_some_and(|x| !x.is_null()))
                    .count();
                if set != 1 {
                    let names: Vec<&str> = members.iter().map(|m| m.name).collect();
                    violation(
                        out,
                        &format!(
                            "Member must have exactly one of its members set: [{}]",
                            names.join(", ")
                        ),
                    );
                }
            }
            for m in members.iter() {
                let mpath = if path.is_empty() {
                    m.name.to_string()
                } else {
                    format!("{path}.{}", m.name)
                };
                match obj.get(m.name) {
                    Some(x) if !x.is_null() => check(m.shape, x, &mpath, sensitive, out),
                    _ if m.required && !*union => out.push(FieldViolation::missing(&mpath)),
                    _ => {}
                }
            }
        }
        ShapeKind::List { member, min, max } => {
            let Some(items) = v.as_array() else {
                return violation(out, "Member must be of type list");
            };
            for c in length_constraints(items.len() as u64, *min, *max) {
                violation(out, &c);
            }
            for (i, item) in items.iter().enumerate() {
                let ipath = format!("{path}[{i}]");
                if item.is_null() {
                    out.push(FieldViolation::missing(&ipath));
                } else {
                    check(*member, item, &ipath, sensitive, out);
                }
            }
        }
        ShapeKind::Map {
            key,
            value,
            min,
            max,
        } => {
            let Some(obj) = v.as_object() else {
                return violation(out, "Member must be of type map");
            };
            for c in length_constraints(obj.len() as u64, *min, *max) {
                violation(out, &c);
            }
            let key_sensitive = sensitive || SHAPES[*key].sensitive;
            for (k, x) in obj {
                let key_failures = string_constraints(*key, k);
                if !key_failures.is_empty() {
                    let echoed = if key_sensitive {
                        None
                    } else {
                        Some(echo_str(k))
                    };
                    out.push(FieldViolation::new(
                        path,
                        echoed.as_deref(),
                        &format!(
                            "Map keys must satisfy constraint: [{}]",
                            key_failures.join(", ")
                        ),
                    ));
                }
                let vpath = format!("{path}[{k}]");
                if x.is_null() {
                    out.push(FieldViolation::missing(&vpath));
                } else {
                    check(*value, x, &vpath, sensitive, out);
                }
            }
        }
        ShapeKind::String { .. } => {
            let Some(s) = v.as_str() else {
                return violation(out, "Member must be of type string");
            };
            for c in string_constraints(id, s) {
                violation(out, &c);
            }
        }
        ShapeKind::Integer { min, max } => match v.as_i64().filter(|n| i32::try_from(*n).is_ok()) {
            Some(n) => {
                for c in range_constraints(n, *min, *max) {
                    violation(out, &c);
                }
            }
            None => violation(out, "Member must be of type integer"),
        },
        ShapeKind::Long { min, max } => match v.as_i64() {
            Some(n) => {
                for c in range_constraints(n, *min, *max) {
                    violation(out, &c);
                }
            }
            None => violation(out, "Member must be of type long"),
        },
        ShapeKind::Double { min, max } => match v.as_f64() {
            Some(n) => {
                if let Some(m) = max.filter(|m| n > *m) {
                    violation(
                        out,
                        &format!("Member must have value less than or equal to {m}"),
                    );
                }
                if let Some(m) = min.filter(|m| n < *m) {
                    violation(
                        out,
                        &format!("Member must have value greater than or equal to {m}"),
                    );
                }
            }
            None => violation(out, "Member must be of type double"),
        },
        ShapeKind::Boolean => {
            if !v.is_boolean() {
                violation(out, "Member must be of type boolean");
            }
        }
        ShapeKind::Timestamp => {
            let ok = match v {
                Value::String(s) => Timestamp::parse(s).is_some(),
                Value::Number(n) => n
                    .as_f64()
                    .and_then(Timestamp::from_unix_seconds_f64)
                    .is_some(),
                _ => false,
            };
            if !ok {
                violation(out, "Member must be of type timestamp");
            }
        }
        ShapeKind::Blob {
            min,
            max,
            streaming,
        } => {
            let len = match v {
                Value::String(s) => crate::blob::decode_base64(s).map(|b| b.len()),
                Value::Array(a) => a
                    .iter()
                    .all(|x| x.as_u64().is_some_and(|b| b <= 255))
                    .then_some(a.len()),
                _ => None,
            };
            match len {
                Some(len) if !*streaming => {
                    for c in length_constraints(len as u64, *min, *max) {
                        violation(out, &c);
                    }
                }
                Some(_) => {}
                None => violation(out, "Member must be of type blob"),
            }
        }
    }
}

fn length_constraints(len: u64, min: Option<u64>, max: Option<u64>) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(m) = max.filter(|m| len > *m) {
        out.push(format!("Member must have length less than or equal to {m}"));
    }
    if let Some(m) = min.filter(|m| len < *m) {
        out.push(format!(
            "Member must have length greater than or equal to {m}"
        ));
    }
    out
}

fn range_constraints(n: i64, min: Option<i64>, max: Option<i64>) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(m) = max.filter(|m| n > *m) {
        out.push(format!("Member must have value less than or equal to {m}"));
    }
    if let Some(m) = min.filter(|m| n < *m) {
        out.push(format!(
            "Member must have value greater than or equal to {m}"
        ));
    }
    out
}

/// The failed constraints of a string value against string shape `id`.
fn string_constraints(id: ShapeId, s: &str) -> Vec<String> {
    let ShapeKind::String {
        min,
        max,
        pattern,
        enum_values,
    } = &SHAPES[id].kind
    else {
        return Vec::new();
    };
    let mut out = length_constraints(s.chars().count() as u64, *min, *max);
    if let Some(p) = pattern {
        if let Some(re) = pattern_regex(id) {
            if !re.is_match(s) {
                out.push(format!(
                    "Member must satisfy regular expression pattern: {p}"
                ));
            }
        }
    }
    if !enum_values.is_empty() && !enum_values.contains(&s) {
        out.push(format!(
            "Member must satisfy enum value set: [{}]",
            enum_values.join(", ")
        ));
    }
    out
}

/// The compiled, anchored pattern of string shape `id` (cached).
pub fn pattern_regex(id: ShapeId) -> Option<&'static Regex> {
    static CACHE: OnceLock<Vec<OnceLock<Option<Regex>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| (0..SHAPES.len()).map(|_| OnceLock::new()).collect());
    let ShapeKind::String {
        pattern: Some(p), ..
    } = SHAPES.get(id)?.kind
    else {
        return None;
    };
    cache[id].get_or_init(|| compile_pattern(p).ok()).as_ref()
}

/// Compiles a botocore (Java-flavoured) pattern for whole-value matching: `^(?:P)$`.
pub fn compile_pattern(pattern: &str) -> Result<Regex, regex::Error> {
    Regex::new(&format!("^(?:{})$", translate_pattern(pattern)))
}

/// Rewrites the Java regex constructs whose meaning differs in the `regex` crate: `\d`, `\s`
/// and `\w` are ASCII-only in Java, and Java's `.` also excludes `\r` and Unicode line
/// separators.
pub fn translate_pattern(p: &str) -> String {
    const SPACE: &str = r"\t\n\x0B\x0C\r ";
    let mut out = String::with_capacity(p.len() + 16);
    let mut in_class = 0usize;
    let mut chars = p.chars().peekable();
    // Whether the previous char opened a class (so `]` or `^]` right after is literal).
    let mut class_start = false;
    while let Some(c) = chars.next() {
        let was_class_start = class_start;
        class_start = false;
        match c {
            '\\' => {
                let Some(n) = chars.next() else {
                    out.push('\\');
                    break;
                };
                let (outside, inside): (String, String) = match n {
                    'd' => ("[0-9]".into(), "0-9".into()),
                    'D' => ("[^0-9]".into(), "[^0-9]".into()),
                    's' => (format!("[{SPACE}]"), SPACE.into()),
                    'S' => (format!("[^{SPACE}]"), format!("[^{SPACE}]")),
                    'w' => ("[a-zA-Z0-9_]".into(), "a-zA-Z0-9_".into()),
                    'W' => ("[^a-zA-Z0-9_]".into(), "[^a-zA-Z0-9_]".into()),
                    _ => {
                        let e = format!("\\{n}");
                        (e.clone(), e)
                    }
                };
                out.push_str(if in_class > 0 { &inside } else { &outside });
            }
            '[' => {
                in_class += 1;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    out.push(chars.next().unwrap());
                }
                class_start = true;
            }
            ']' if in_class > 0 && !was_class_start => {
                in_class -= 1;
                out.push(']');
            }
            ']' if in_class > 0 => out.push_str(r"\]"),
            '.' if in_class == 0 => out.push_str(r"[^\n\r\u{85}\u{2028}\u{2029}]"),
            '&' | '~' | '-' if in_class > 0 && chars.peek() == Some(&c) => {
                // `&&`, `~~` and `--` are class set operators in the regex crate; in botocore
                // patterns they only ever mean literals.
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

fn echo_str(s: &str) -> String {
    let mut e: String = s.chars().take(ECHO_LIMIT).collect();
    if s.chars().nth(ECHO_LIMIT).is_some() {
        e.push_str("...");
    }
    format!("'{e}'")
}

/// Renders a value the way Coral echoes it (Java `toString` style), quoted and truncated.
fn echo(v: &Value) -> String {
    fn render(v: &Value, out: &mut String) {
        if out.len() > ECHO_LIMIT * 4 {
            return;
        }
        match v {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Number(n) => out.push_str(&n.to_string()),
            Value::String(s) => out.push_str(s),
            Value::Array(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    render(x, out);
                }
                out.push(']');
            }
            Value::Object(o) => {
                out.push('{');
                for (i, (k, x)) in o.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(k);
                    out.push('=');
                    render(x, out);
                }
                out.push('}');
            }
        }
    }
    let mut s = String::new();
    render(v, &mut s);
    echo_str(&s)
}
