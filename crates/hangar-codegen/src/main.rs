//! `hangar-codegen`: generates `crates/hangar-model/src/generated/` from the botocore
//! service models in `model/`.
//!
//! Usage (from anywhere inside the workspace):
//!
//! ```text
//! cargo run -p hangar-codegen            # (re)write the generated files
//! cargo run -p hangar-codegen -- --check # exit 1 if the committed files are stale
//! ```
//!
//! The output is deterministic: shapes are ordered by service (control, then data) and then
//! by name, operations follow `model/operations.txt`, and every file is piped through
//! `rustfmt --edition 2021`.

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const CONTROL_MODEL: &str = "model/bedrock-agentcore-control.json";
const DATA_MODEL: &str = "model/bedrock-agentcore.json";
const OPERATIONS: &str = "model/operations.txt";
const OUT_DIR: &str = "crates/hangar-model/src/generated";

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Svc {
    Control,
    Data,
}

impl Svc {
    fn module(self) -> &'static str {
        match self {
            Svc::Control => "control",
            Svc::Data => "data",
        }
    }
    fn variant(self) -> &'static str {
        match self {
            Svc::Control => "Control",
            Svc::Data => "Data",
        }
    }
    fn model_path(self) -> &'static str {
        match self {
            Svc::Control => CONTROL_MODEL,
            Svc::Data => DATA_MODEL,
        }
    }
}

struct ServiceModel {
    shapes: Map<String, Value>,
    operations: Map<String, Value>,
}

struct Gen {
    models: BTreeMap<Svc, ServiceModel>,
    /// Operations in `operations.txt` order.
    ops: Vec<(Svc, String)>,
    /// Table shapes (reachable from input/output/errors), in id order.
    table: Vec<(Svc, String)>,
    ids: BTreeMap<(Svc, String), usize>,
    /// Shapes that get a Rust type, per service (reachable from input/output only).
    typed: BTreeMap<Svc, BTreeSet<String>>,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("hangar-codegen: {e:#}");
        std::process::exit(2);
    }
}

fn run() -> Result<()> {
    let mut check = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--check" => check = true,
            "-h" | "--help" => {
                println!("usage: hangar-codegen [--check]");
                return Ok(());
            }
            other => bail!("unknown argument {other:?}"),
        }
    }
    let root = find_root()?;
    let gen = Gen::load(&root)?;
    let files = gen.render()?;
    let out_dir = root.join(OUT_DIR);

    if check {
        let mut stale = Vec::new();
        for (name, content) in &files {
            let path = out_dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(existing) if existing == *content => {}
                _ => stale.push(format!("{OUT_DIR}/{name}")),
            }
        }
        if let Ok(rd) = std::fs::read_dir(&out_dir) {
            for entry in rd.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !files.contains_key(&name) {
                    stale.push(format!("{OUT_DIR}/{name} (not generated)"));
                }
            }
        }
        if stale.is_empty() {
            println!("hangar-codegen: generated files are up to date");
            return Ok(());
        }
        eprintln!(
            "hangar-codegen: generated files are out of date; run `cargo run -p hangar-codegen`:"
        );
        for s in stale {
            eprintln!("  {s}");
        }
        std::process::exit(1);
    }

    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {OUT_DIR}"))?;
    for (name, content) in &files {
        let path = out_dir.join(name);
        let same = std::fs::read_to_string(&path)
            .map(|e| e == *content)
            .unwrap_or(false);
        if !same {
            std::fs::write(&path, content).with_context(|| format!("writing {OUT_DIR}/{name}"))?;
            println!("wrote {OUT_DIR}/{name}");
        }
    }
    if let Ok(rd) = std::fs::read_dir(&out_dir) {
        for entry in rd.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !files.contains_key(&name) {
                std::fs::remove_file(entry.path())?;
                println!("removed {OUT_DIR}/{name}");
            }
        }
    }
    Ok(())
}

fn find_root() -> Result<PathBuf> {
    let mut dir = std::env::current_dir()?;
    loop {
        if dir.join(OPERATIONS).is_file() && dir.join("Cargo.toml").is_file() {
            return Ok(dir);
        }
        if !dir.pop() {
            bail!("could not find the workspace root (a directory containing {OPERATIONS})");
        }
    }
}

fn obj<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| anyhow!("{what} is not an object"))
}

impl Gen {
    fn load(root: &Path) -> Result<Gen> {
        let mut models = BTreeMap::new();
        for svc in [Svc::Control, Svc::Data] {
            let text = std::fs::read_to_string(root.join(svc.model_path()))
                .with_context(|| format!("reading {}", svc.model_path()))?;
            let v: Value = serde_json::from_str(&text)
                .with_context(|| format!("parsing {}", svc.model_path()))?;
            let shapes = obj(&v["shapes"], "shapes")?.clone();
            let operations = obj(&v["operations"], "operations")?.clone();
            models.insert(svc, ServiceModel { shapes, operations });
        }
        let mut ops = Vec::new();
        let text =
            std::fs::read_to_string(root.join(OPERATIONS)).context("reading operations.txt")?;
        let mut seen = HashSet::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.split_whitespace();
            let svc = match parts.next() {
                Some("control") => Svc::Control,
                Some("data") => Svc::Data,
                other => bail!("{OPERATIONS}:{}: unknown service {other:?}", i + 1),
            };
            let name = parts
                .next()
                .ok_or_else(|| anyhow!("{OPERATIONS}:{}: missing operation", i + 1))?;
            if parts.next().is_some() {
                bail!("{OPERATIONS}:{}: trailing text", i + 1);
            }
            if !models[&svc].operations.contains_key(name) {
                bail!(
                    "{OPERATIONS}:{}: {name} is not an operation of {}",
                    i + 1,
                    svc.module()
                );
            }
            if !seen.insert(name.to_string()) {
                bail!("{OPERATIONS}:{}: duplicate operation {name}", i + 1);
            }
            ops.push((svc, name.to_string()));
        }

        let mut gen = Gen {
            models,
            ops,
            table: Vec::new(),
            ids: BTreeMap::new(),
            typed: BTreeMap::new(),
        };

        // Table shapes: reachable from input, output and errors.
        let mut table: BTreeMap<Svc, BTreeSet<String>> = BTreeMap::new();
        let mut typed: BTreeMap<Svc, BTreeSet<String>> = BTreeMap::new();
        for svc in [Svc::Control, Svc::Data] {
            table.insert(svc, BTreeSet::new());
            typed.insert(svc, BTreeSet::new());
        }
        for (svc, name) in gen.ops.clone() {
            let op = &gen.models[&svc].operations[&name];
            for key in ["input", "output"] {
                if let Some(s) = op.get(key).and_then(|v| v["shape"].as_str()) {
                    gen.walk(svc, s, table.get_mut(&svc).unwrap())?;
                    gen.walk(svc, s, typed.get_mut(&svc).unwrap())?;
                }
            }
            if let Some(errs) = op.get("errors").and_then(Value::as_array) {
                for e in errs {
                    let s = e["shape"]
                        .as_str()
                        .ok_or_else(|| anyhow!("bad error ref in {name}"))?;
                    gen.walk(svc, s, table.get_mut(&svc).unwrap())?;
                }
            }
        }
        for (svc, names) in &table {
            for n in names {
                gen.ids.insert((*svc, n.clone()), gen.table.len());
                gen.table.push((*svc, n.clone()));
            }
        }
        gen.typed = typed;
        Ok(gen)
    }

    fn shape(&self, svc: Svc, name: &str) -> &Map<String, Value> {
        self.models[&svc].shapes[name]
            .as_object()
            .expect("shape is an object")
    }

    fn walk(&self, svc: Svc, name: &str, into: &mut BTreeSet<String>) -> Result<()> {
        if into.contains(name) {
            return Ok(());
        }
        let sh = self.models[&svc]
            .shapes
            .get(name)
            .and_then(Value::as_object)
            .ok_or_else(|| anyhow!("{}: unknown shape {name}", svc.module()))?;
        into.insert(name.to_string());
        for t in self.targets(sh) {
            self.walk(svc, &t, into)?;
        }
        Ok(())
    }

    fn targets(&self, sh: &Map<String, Value>) -> Vec<String> {
        let mut out = Vec::new();
        for k in ["member", "key", "value"] {
            if let Some(s) = sh.get(k).and_then(|v| v["shape"].as_str()) {
                out.push(s.to_string());
            }
        }
        if let Some(m) = sh.get("members").and_then(Value::as_object) {
            for v in m.values() {
                if let Some(s) = v["shape"].as_str() {
                    out.push(s.to_string());
                }
            }
        }
        out
    }

    fn id(&self, svc: Svc, name: &str) -> usize {
        self.ids[&(svc, name.to_string())]
    }

    fn render(&self) -> Result<BTreeMap<String, String>> {
        let mut files = BTreeMap::new();
        files.insert("mod.rs".to_string(), self.render_mod());
        files.insert("shapes.rs".to_string(), self.render_shapes()?);
        files.insert("operations.rs".to_string(), self.render_operations());
        files.insert("io.rs".to_string(), self.render_io());
        for svc in [Svc::Control, Svc::Data] {
            files.insert(format!("{}.rs", svc.module()), self.render_types(svc)?);
        }
        let mut out = BTreeMap::new();
        for (name, src) in files {
            out.insert(
                name.clone(),
                rustfmt(&src).with_context(|| format!("formatting {name}"))?,
            );
        }
        Ok(out)
    }

    fn header(&self, from: &str) -> String {
        format!("// @generated by hangar-codegen from {from} — do not edit\n\n")
    }

    fn all_sources(&self) -> String {
        format!("{CONTROL_MODEL}, {DATA_MODEL} and {OPERATIONS}")
    }

    fn render_mod(&self) -> String {
        let mut s = self.header(&self.all_sources());
        s.push_str("//! The wire model generated from the botocore service models.\n\n");
        s.push_str("pub mod control;\npub mod data;\nmod io;\nmod operations;\nmod shapes;\n\n");
        s.push_str("pub use io::{Input, Output};\n");
        s.push_str("pub use operations::{Operation, OPERATIONS};\n");
        s.push_str("pub use shapes::{CONTROL_SHAPE_COUNT, SHAPES};\n");
        s
    }

    // ----------------------------------------------------------------------------------------
    // shapes.rs

    fn render_shapes(&self) -> Result<String> {
        let mut s = self.header(&self.all_sources());
        s.push_str(
            "//! The shape table: every shape reachable from the implemented operations' input,\n",
        );
        s.push_str("//! output and error shapes. Ids `0..CONTROL_SHAPE_COUNT` are `bedrock-agentcore-control`\n");
        s.push_str(
            "//! shapes, the rest `bedrock-agentcore` shapes; each range is sorted by name.\n\n",
        );
        s.push_str("use crate::schema::{Location, Member, Shape, ShapeKind};\n\n");
        let nc = self
            .table
            .iter()
            .filter(|(svc, _)| *svc == Svc::Control)
            .count();
        let _ = writeln!(
            s,
            "/// Number of `bedrock-agentcore-control` shapes at the start of [`SHAPES`]."
        );
        let _ = writeln!(s, "pub const CONTROL_SHAPE_COUNT: usize = {nc};\n");
        // Patterns live in their own consts: a literal wider than the line limit inside the
        // table would make rustfmt leave the whole table unformatted.
        for (id, (svc, name)) in self.table.iter().enumerate() {
            if let Some(p) = self
                .shape(*svc, name)
                .get("pattern")
                .and_then(Value::as_str)
            {
                let _ = writeln!(s, "const PATTERN_{id}: &str = {};", lit(p));
            }
        }
        s.push('\n');
        s.push_str("pub static SHAPES: &[Shape] = &[\n");
        for (svc, name) in &self.table {
            let sh = self.shape(*svc, name);
            let sensitive = sh
                .get("sensitive")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let kind = self.shape_kind(*svc, name, sh)?;
            let _ = writeln!(
                s,
                "Shape {{ name: {}, kind: {kind}, sensitive: {sensitive} }},",
                lit(name)
            );
        }
        s.push_str("];\n");
        Ok(s)
    }

    fn shape_kind(&self, svc: Svc, name: &str, sh: &Map<String, Value>) -> Result<String> {
        let ty = sh["type"].as_str().unwrap_or("");
        let u = |k: &str| -> String {
            match sh.get(k).and_then(Value::as_u64) {
                Some(n) => format!("Some({n})"),
                None => "None".to_string(),
            }
        };
        let i = |k: &str| -> String {
            match sh.get(k) {
                Some(v) if v.is_i64() => format!("Some({})", v.as_i64().unwrap()),
                Some(v) if v.is_number() => format!("Some({})", v.as_f64().unwrap() as i64),
                _ => "None".to_string(),
            }
        };
        let f = |k: &str| -> String {
            match sh.get(k).and_then(Value::as_f64) {
                Some(n) => format!("Some({n:?})"),
                None => "None".to_string(),
            }
        };
        Ok(match ty {
            "structure" => {
                let required: HashSet<&str> = sh
                    .get("required")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let payload = sh.get("payload").and_then(Value::as_str);
                let union = sh.get("union").and_then(Value::as_bool).unwrap_or(false)
                    || sh
                        .get("eventstream")
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                let document = sh.get("document").and_then(Value::as_bool).unwrap_or(false);
                let mut members = String::new();
                if let Some(ms) = sh.get("members").and_then(Value::as_object) {
                    for (mname, m) in ms {
                        let target = m["shape"]
                            .as_str()
                            .ok_or_else(|| anyhow!("{name}.{mname}: no shape"))?;
                        let loc_name = m
                            .get("locationName")
                            .and_then(Value::as_str)
                            .unwrap_or(mname);
                        let location = match m.get("location").and_then(Value::as_str) {
                            Some("uri") => format!("Location::Uri({})", lit(loc_name)),
                            Some("querystring") => format!("Location::Query({})", lit(loc_name)),
                            Some("header") => format!("Location::Header({})", lit(loc_name)),
                            Some("statusCode") => "Location::StatusCode".to_string(),
                            Some(other) => bail!("{name}.{mname}: unsupported location {other}"),
                            None if payload == Some(mname.as_str()) => {
                                "Location::Payload".to_string()
                            }
                            None => "Location::Body".to_string(),
                        };
                        let idem = m
                            .get("idempotencyToken")
                            .and_then(Value::as_bool)
                            .unwrap_or(false);
                        let _ = write!(
                            members,
                            "Member {{ name: {}, shape: {}, required: {}, location: {location}, idempotency_token: {idem} }},",
                            lit(mname),
                            self.id(svc, target),
                            required.contains(mname.as_str()),
                        );
                    }
                }
                format!("ShapeKind::Structure {{ members: &[{members}], union: {union}, document: {document} }}")
            }
            "list" => {
                let member = sh["member"]["shape"]
                    .as_str()
                    .ok_or_else(|| anyhow!("{name}: list without member"))?;
                format!(
                    "ShapeKind::List {{ member: {}, min: {}, max: {} }}",
                    self.id(svc, member),
                    u("min"),
                    u("max")
                )
            }
            "map" => {
                let key = sh["key"]["shape"]
                    .as_str()
                    .ok_or_else(|| anyhow!("{name}: map without key"))?;
                let value = sh["value"]["shape"]
                    .as_str()
                    .ok_or_else(|| anyhow!("{name}: map without value"))?;
                format!(
                    "ShapeKind::Map {{ key: {}, value: {}, min: {}, max: {} }}",
                    self.id(svc, key),
                    self.id(svc, value),
                    u("min"),
                    u("max")
                )
            }
            "string" => {
                let pattern = match sh.get("pattern").and_then(Value::as_str) {
                    Some(_) => format!("Some(PATTERN_{})", self.id(svc, name)),
                    None => "None".to_string(),
                };
                let enums: Vec<String> = sh
                    .get("enum")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).map(lit).collect())
                    .unwrap_or_default();
                format!(
                    "ShapeKind::String {{ min: {}, max: {}, pattern: {pattern}, enum_values: &[{}] }}",
                    u("min"),
                    u("max"),
                    enums.join(", ")
                )
            }
            "integer" => format!(
                "ShapeKind::Integer {{ min: {}, max: {} }}",
                i("min"),
                i("max")
            ),
            "long" => format!("ShapeKind::Long {{ min: {}, max: {} }}", i("min"), i("max")),
            "double" | "float" => format!(
                "ShapeKind::Double {{ min: {}, max: {} }}",
                f("min"),
                f("max")
            ),
            "boolean" => "ShapeKind::Boolean".to_string(),
            "timestamp" => "ShapeKind::Timestamp".to_string(),
            "blob" => {
                let streaming = sh
                    .get("streaming")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                format!(
                    "ShapeKind::Blob {{ min: {}, max: {}, streaming: {streaming} }}",
                    u("min"),
                    u("max")
                )
            }
            other => bail!("{name}: unsupported shape type {other}"),
        })
    }

    // ----------------------------------------------------------------------------------------
    // operations.rs

    fn render_operations(&self) -> String {
        let mut s = self.header(&self.all_sources());
        s.push_str("//! The implemented operations, in `model/operations.txt` order.\n\n");
        s.push_str("use crate::schema::{OperationDef, Service};\n\n");
        s.push_str("/// One implemented AgentCore operation.\n");
        s.push_str("#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]\npub enum Operation {\n");
        for (_, name) in &self.ops {
            let _ = writeln!(s, "{name},");
        }
        s.push_str("}\n\n");
        s.push_str("impl Operation {\n");
        s.push_str("/// Every operation, in declaration order.\npub const ALL: &'static [Operation] = &[\n");
        for (_, name) in &self.ops {
            let _ = writeln!(s, "Operation::{name},");
        }
        s.push_str("];\n\n");
        s.push_str("/// The operation's table entry.\npub fn def(self) -> &'static OperationDef {\n&OPERATIONS[self as usize]\n}\n\n");
        s.push_str("/// The botocore operation name, e.g. `CreateAgentRuntime`.\npub fn name(self) -> &'static str {\nself.def().name\n}\n\n");
        s.push_str("/// The API the operation belongs to.\npub fn service(self) -> Service {\nself.def().service\n}\n\n");
        s.push_str("/// Looks an operation up by its botocore name.\npub fn from_name(name: &str) -> Option<Operation> {\nmatch name {\n");
        for (_, name) in &self.ops {
            let _ = writeln!(s, "{} => Some(Operation::{name}),", lit(name));
        }
        s.push_str("_ => None,\n}\n}\n}\n\n");
        s.push_str("impl std::fmt::Display for Operation {\nfn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {\nf.write_str(self.name())\n}\n}\n\n");

        s.push_str("/// Operation table, indexed by `Operation as usize`.\npub static OPERATIONS: &[OperationDef] = &[\n");
        for (svc, name) in &self.ops {
            let op = &self.models[svc].operations[name];
            let http = &op["http"];
            let method = http["method"].as_str().unwrap_or("POST");
            let uri = http["requestUri"].as_str().unwrap_or("/");
            let code = http
                .get("responseCode")
                .and_then(Value::as_u64)
                .unwrap_or(200);
            let shape_ref = |k: &str| match op.get(k).and_then(|v| v["shape"].as_str()) {
                Some(sh) => format!("Some({})", self.id(*svc, sh)),
                None => "None".to_string(),
            };
            let errors: Vec<String> = op
                .get("errors")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|e| e["shape"].as_str())
                        .map(lit)
                        .collect()
                })
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "OperationDef {{ op: Operation::{name}, name: {}, service: Service::{}, method: {}, uri: {}, success_code: {code}, input: {}, output: {}, errors: &[{}] }},",
                lit(name),
                svc.variant(),
                lit(method),
                lit(uri),
                shape_ref("input"),
                shape_ref("output"),
                errors.join(", ")
            );
        }
        s.push_str("];\n");
        s
    }

    // ----------------------------------------------------------------------------------------
    // io.rs

    fn render_io(&self) -> String {
        let mut s = self.header(&self.all_sources());
        s.push_str("//! Typed inputs and outputs of every implemented operation.\n\n");
        s.push_str("#![allow(clippy::large_enum_variant)]\n\n");
        s.push_str("use super::operations::Operation;\nuse super::{control, data};\n\n");
        for (enum_name, key, doc) in [
            (
                "Input",
                "input",
                "The typed input of an operation (its botocore input shape).",
            ),
            (
                "Output",
                "output",
                "The typed output of an operation (its botocore output shape).",
            ),
        ] {
            let variants: Vec<(String, String)> = self
                .ops
                .iter()
                .map(|(svc, name)| {
                    let op = &self.models[svc].operations[name];
                    let ty = match op.get(key).and_then(|v| v["shape"].as_str()) {
                        Some(sh) => format!("{}::{sh}", svc.module()),
                        None => "()".to_string(),
                    };
                    (name.clone(), ty)
                })
                .collect();
            let _ = writeln!(
                s,
                "/// {doc}\n#[derive(Debug, Clone, PartialEq)]\npub enum {enum_name} {{"
            );
            for (name, ty) in &variants {
                let _ = writeln!(s, "{name}({ty}),");
            }
            s.push_str("}\n\n");
            let _ = writeln!(s, "impl {enum_name} {{");
            s.push_str("/// The operation this value belongs to.\npub fn operation(&self) -> Operation {\nmatch self {\n");
            for (name, _) in &variants {
                let _ = writeln!(s, "{enum_name}::{name}(_) => Operation::{name},");
            }
            s.push_str("}\n}\n\n");
            let _ = writeln!(
                s,
                "/// Deserializes the JSON object of all members (keyed by member name) as `op`'s {key}.\n\
                 pub fn from_value(op: Operation, v: serde_json::Value) -> Result<{enum_name}, serde_json::Error> {{\n\
                 Ok(match op {{"
            );
            for (name, ty) in &variants {
                if ty == "()" {
                    let _ = writeln!(
                        s,
                        "Operation::{name} => {{ let _ = v; {enum_name}::{name}(()) }}"
                    );
                } else {
                    let _ = writeln!(
                        s,
                        "Operation::{name} => {enum_name}::{name}(serde_json::from_value(v)?),"
                    );
                }
            }
            s.push_str("})\n}\n\n");
            s.push_str(
                "/// The JSON object of all members, keyed by member name (including members the wire\n\
                 /// layer binds to the URI, query string, headers or status code).\n\
                 pub fn to_value(&self) -> serde_json::Value {\nlet v = match self {\n",
            );
            for (name, ty) in &variants {
                if ty == "()" {
                    let _ = writeln!(s, "{enum_name}::{name}(()) => Ok(serde_json::Value::Object(Default::default())),");
                } else {
                    let _ = writeln!(s, "{enum_name}::{name}(x) => serde_json::to_value(x),");
                }
            }
            s.push_str(
                "};\nv.expect(\"generated model types always serialize to JSON\")\n}\n}\n\n",
            );
        }
        s
    }

    // ----------------------------------------------------------------------------------------
    // control.rs / data.rs

    fn rust_type(&self, svc: Svc, name: &str) -> Result<String> {
        let sh = self.shape(svc, name);
        Ok(match sh["type"].as_str().unwrap_or("") {
            "string" => {
                if sh.contains_key("enum") {
                    name.to_string()
                } else {
                    "String".to_string()
                }
            }
            "integer" => "i32".to_string(),
            "long" => "i64".to_string(),
            "double" | "float" => "f64".to_string(),
            "boolean" => "bool".to_string(),
            "timestamp" => "Timestamp".to_string(),
            "blob" => "Blob".to_string(),
            "list" => format!(
                "Vec<{}>",
                self.rust_type(svc, sh["member"]["shape"].as_str().unwrap_or(""))?
            ),
            "map" => format!(
                "BTreeMap<{}, {}>",
                self.rust_type(svc, sh["key"]["shape"].as_str().unwrap_or(""))?,
                self.rust_type(svc, sh["value"]["shape"].as_str().unwrap_or(""))?
            ),
            "structure" => {
                if sh.get("document").and_then(Value::as_bool).unwrap_or(false) {
                    "serde_json::Value".to_string()
                } else {
                    name.to_string()
                }
            }
            other => bail!("{name}: unsupported type {other}"),
        })
    }

    /// Whether the Rust type of a shape implements `Default`.
    fn has_default(&self, svc: Svc, name: &str, visiting: &mut Vec<String>) -> bool {
        let sh = self.shape(svc, name);
        match sh["type"].as_str().unwrap_or("") {
            "string" => !sh.contains_key("enum"),
            "timestamp" => false,
            "structure" => {
                if sh.get("document").and_then(Value::as_bool).unwrap_or(false) {
                    return true;
                }
                if is_union(sh) {
                    return false;
                }
                if visiting.iter().any(|v| v == name) {
                    return false;
                }
                visiting.push(name.to_string());
                let required = required_set(sh);
                let ok = sh
                    .get("members")
                    .and_then(Value::as_object)
                    .map(|ms| {
                        ms.iter().all(|(mname, m)| {
                            !required.contains(mname.as_str())
                                || self.has_default(
                                    svc,
                                    m["shape"].as_str().unwrap_or(""),
                                    visiting,
                                )
                        })
                    })
                    .unwrap_or(true);
                visiting.pop();
                ok
            }
            _ => true,
        }
    }

    /// Whether `to` (transitively) contains `from` by value — needs a `Box`.
    fn reaches(&self, svc: Svc, from: &str, to: &str, seen: &mut HashSet<String>) -> bool {
        if from == to {
            return true;
        }
        if !seen.insert(from.to_string()) {
            return false;
        }
        let sh = self.shape(svc, from);
        self.targets(sh)
            .iter()
            .any(|t| self.reaches(svc, t, to, seen))
    }

    fn render_types(&self, svc: Svc) -> Result<String> {
        let mut body = String::new();
        let names = &self.typed[&svc];
        let reserved = [
            "String",
            "Vec",
            "Option",
            "Box",
            "Result",
            "BTreeMap",
            "Timestamp",
            "Blob",
            "Serialize",
            "Deserialize",
            "Value",
        ];
        let mut uses_ts = false;
        let mut uses_blob = false;
        let mut uses_map = false;
        for name in names {
            let sh = self.shape(svc, name);
            let ty = sh["type"].as_str().unwrap_or("");
            let generates = (ty == "string" && sh.contains_key("enum")) || ty == "structure";
            if !generates {
                continue;
            }
            if reserved.contains(&name.as_str()) {
                bail!(
                    "{}: shape name {name} collides with a name the generated code uses",
                    svc.module()
                );
            }
            if ty == "string" {
                self.render_enum(&mut body, name, sh)?;
                continue;
            }
            if sh.get("document").and_then(Value::as_bool).unwrap_or(false) {
                let _ = writeln!(body, "/// A `document` shape: any JSON value.\npub type {name} = serde_json::Value;\n");
                continue;
            }
            let members: Vec<(String, String)> = sh
                .get("members")
                .and_then(Value::as_object)
                .map(|ms| {
                    ms.iter()
                        .map(|(k, v)| (k.clone(), v["shape"].as_str().unwrap_or("").to_string()))
                        .collect()
                })
                .unwrap_or_default();
            let mut fields = Vec::new();
            for (mname, target) in &members {
                let mut t = self.rust_type(svc, target)?;
                if self.reaches(svc, target, name, &mut HashSet::new())
                    && !t.starts_with("Vec<")
                    && !t.starts_with("BTreeMap<")
                {
                    t = format!("Box<{t}>");
                }
                uses_ts |= t.contains("Timestamp");
                uses_blob |= t.contains("Blob");
                uses_map |= t.contains("BTreeMap");
                fields.push((mname.clone(), t));
            }
            if is_union(sh) {
                self.render_union(&mut body, name, &fields);
            } else {
                let default = if self.has_default(svc, name, &mut Vec::new()) {
                    ", Default"
                } else {
                    ""
                };
                let required = required_set(sh);
                let _ = writeln!(
                    body,
                    "#[derive(Debug, Clone, PartialEq, Serialize, Deserialize{default})]\npub struct {name} {{"
                );
                let mut used = HashSet::new();
                for (mname, t) in &fields {
                    let mut field = snake_case(mname);
                    while !used.insert(field.clone()) {
                        field.push('_');
                    }
                    let field = rust_ident(&field);
                    if required.contains(mname.as_str()) {
                        let _ =
                            writeln!(body, "#[serde(rename = {})]\npub {field}: {t},", lit(mname));
                    } else {
                        let _ = writeln!(
                            body,
                            "#[serde(rename = {})]\n#[serde(default, skip_serializing_if = \"Option::is_none\")]\npub {field}: Option<{t}>,",
                            lit(mname)
                        );
                    }
                }
                body.push_str("}\n\n");
            }
        }
        let mut s = self.header(svc.model_path());
        let _ = writeln!(
            s,
            "//! Serde types for the `{}` shapes reachable from the implemented operations.\n",
            match svc {
                Svc::Control => "bedrock-agentcore-control",
                Svc::Data => "bedrock-agentcore",
            }
        );
        s.push_str("#![allow(clippy::large_enum_variant, clippy::enum_variant_names)]\n\n");
        let mut crate_uses = Vec::new();
        if uses_blob {
            crate_uses.push("Blob");
        }
        if uses_ts {
            crate_uses.push("Timestamp");
        }
        if !crate_uses.is_empty() {
            let _ = writeln!(s, "use crate::{{{}}};", crate_uses.join(", "));
        }
        s.push_str("use serde::{Deserialize, Serialize};\n");
        if uses_map {
            s.push_str("use std::collections::BTreeMap;\n");
        }
        s.push('\n');
        s.push_str(&body);
        Ok(s)
    }

    fn render_enum(&self, body: &mut String, name: &str, sh: &Map<String, Value>) -> Result<()> {
        let values: Vec<&str> = sh["enum"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let mut used = HashSet::new();
        let mut variants = Vec::new();
        for v in &values {
            let mut id = camel_case(v);
            if id.is_empty() || id.starts_with(|c: char| c.is_ascii_digit()) {
                id = format!("V{id}");
            }
            let base = id.clone();
            let mut n = 2;
            while !used.insert(id.clone()) {
                id = format!("{base}{n}");
                n += 1;
            }
            variants.push((id, *v));
        }
        let _ = writeln!(
            body,
            "#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]\npub enum {name} {{"
        );
        for (id, v) in &variants {
            let _ = writeln!(body, "#[serde(rename = {})]\n{id},", lit(v));
        }
        body.push_str("}\n\n");
        let _ = writeln!(body, "impl {name} {{\n/// Every value, in model order.\npub const ALL: &'static [{name}] = &[");
        for (id, _) in &variants {
            let _ = writeln!(body, "{name}::{id},");
        }
        body.push_str(
            "];\n\n/// The wire value.\npub fn as_str(&self) -> &'static str {\nmatch self {\n",
        );
        for (id, v) in &variants {
            let _ = writeln!(body, "{name}::{id} => {},", lit(v));
        }
        body.push_str("}\n}\n}\n\n");
        let _ = writeln!(
            body,
            "impl std::fmt::Display for {name} {{\nfn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {{\nf.write_str(self.as_str())\n}}\n}}\n"
        );
        let _ = writeln!(
            body,
            "impl std::str::FromStr for {name} {{\ntype Err = crate::UnknownEnumValue;\nfn from_str(s: &str) -> Result<Self, Self::Err> {{\nmatch s {{"
        );
        for (id, v) in &variants {
            let _ = writeln!(body, "{} => Ok({name}::{id}),", lit(v));
        }
        let _ = writeln!(body, "_ => Err(crate::UnknownEnumValue {{ shape: {}, value: s.to_string() }}),\n}}\n}}\n}}\n", lit(name));
        Ok(())
    }

    fn render_union(&self, body: &mut String, name: &str, fields: &[(String, String)]) {
        let mut used = HashSet::new();
        let mut variants = Vec::new();
        for (mname, t) in fields {
            let mut id = upper_first(mname);
            let base = id.clone();
            let mut n = 2;
            while !used.insert(id.clone()) {
                id = format!("{base}{n}");
                n += 1;
            }
            variants.push((id, mname.as_str(), t.as_str()));
        }
        let _ = writeln!(
            body,
            "#[derive(Debug, Clone, PartialEq, Serialize)]\npub enum {name} {{"
        );
        for (id, mname, t) in &variants {
            let _ = writeln!(body, "#[serde(rename = {})]\n{id}({t}),", lit(mname));
        }
        body.push_str("}\n\n");
        let names: Vec<String> = variants.iter().map(|(_, m, _)| lit(m)).collect();
        let _ = writeln!(
            body,
            "impl<'de> Deserialize<'de> for {name} {{\n\
             fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {{\n\
             const MEMBERS: &[&str] = &[{}];\n\
             let (member, value) = crate::de::union_member::<D>(deserializer, {}, MEMBERS)?;\n\
             match member.as_str() {{",
            names.join(", "),
            lit(name)
        );
        for (id, mname, _) in &variants {
            let _ = writeln!(
                body,
                "{} => crate::de::member_value::<_, D>(value).map({name}::{id}),",
                lit(mname)
            );
        }
        body.push_str(
            "_ => Err(serde::de::Error::unknown_variant(&member, MEMBERS)),\n}\n}\n}\n\n",
        );
    }
}

fn is_union(sh: &Map<String, Value>) -> bool {
    sh.get("union").and_then(Value::as_bool).unwrap_or(false)
        || sh
            .get("eventstream")
            .and_then(Value::as_bool)
            .unwrap_or(false)
}

fn required_set(sh: &Map<String, Value>) -> HashSet<&str> {
    sh.get("required")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// A Rust string literal.
fn lit(s: &str) -> String {
    if s.contains('\\') && !s.contains("\"#") && !s.chars().any(|c| c.is_control()) {
        format!("r#\"{s}\"#")
    } else {
        format!("{s:?}")
    }
}

/// `customJWTAuthorizer` → `custom_jwt_authorizer`, `s3FilesAccessPoint` → `s3_files_access_point`.
fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c == '-' || c == '.' || c == ' ' {
            if !out.ends_with('_') {
                out.push('_');
            }
            continue;
        }
        if c.is_ascii_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if (prev.is_ascii_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_ascii_uppercase() && next_lower))
                && !out.ends_with('_')
            {
                out.push('_');
            }
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// Enum value → variant: `PYTHON_3_14` → `Python314`, `HTTP` → `Http`, `executeCode` → `ExecuteCode`.
fn camel_case(value: &str) -> String {
    let mut out = String::new();
    for word in value
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let all_upper = !word.chars().any(|c| c.is_ascii_lowercase());
        let mut chars = word.chars();
        let first = chars.next().unwrap();
        out.push(first.to_ascii_uppercase());
        if all_upper {
            out.extend(chars.map(|c| c.to_ascii_lowercase()));
        } else {
            out.extend(chars);
        }
    }
    out
}

fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

fn rust_ident(name: &str) -> String {
    const KEYWORDS: &[&str] = &[
        "as", "break", "const", "continue", "else", "enum", "extern", "false", "fn", "for", "if",
        "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return",
        "static", "struct", "trait", "true", "type", "unsafe", "use", "where", "while", "async",
        "await", "dyn", "abstract", "become", "box", "do", "final", "macro", "override", "priv",
        "typeof", "unsized", "virtual", "yield", "try", "gen",
    ];
    if ["self", "Self", "super", "crate"].contains(&name) {
        format!("{name}_")
    } else if KEYWORDS.contains(&name) {
        format!("r#{name}")
    } else {
        name.to_string()
    }
}

fn rustfmt(src: &str) -> Result<String> {
    let mut child = Command::new("rustfmt")
        .args(["--edition", "2021", "--emit", "stdout"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running rustfmt (is it installed?)")?;
    let mut stdin = child.stdin.take().unwrap();
    let input = src.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output()?;
    writer
        .join()
        .map_err(|_| anyhow!("rustfmt writer panicked"))??;
    if !out.status.success() {
        bail!("rustfmt failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8(out.stdout)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(snake_case("customJWTAuthorizer"), "custom_jwt_authorizer");
        assert_eq!(snake_case("s3FilesAccessPoint"), "s3_files_access_point");
        assert_eq!(snake_case("agentRuntimeArn"), "agent_runtime_arn");
        assert_eq!(snake_case("requireMMDSV2"), "require_mmdsv2");
        assert_eq!(snake_case("minimumMemoryInMiB"), "minimum_memory_in_mi_b");
        assert_eq!(camel_case("PYTHON_3_14"), "Python314");
        assert_eq!(camel_case("HTTP"), "Http");
        assert_eq!(camel_case("AGUI"), "Agui");
        assert_eq!(camel_case("A2A"), "A2a");
        assert_eq!(camel_case("resource_link"), "ResourceLink");
        assert_eq!(camel_case("CannotParse"), "CannotParse");
        assert_eq!(rust_ident("type"), "r#type");
    }
}
