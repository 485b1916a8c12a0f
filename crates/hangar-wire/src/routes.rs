//! Matching `(method, path)` against the model's `requestUri` templates.
//!
//! The table is compiled once (see [`RouteTable::model`]); matching a request walks at most a
//! few dozen pre-split templates without allocating beyond the label list.
//!
//! Template rules (rest-json as botocore serializes it):
//! - `{label}` matches exactly one non-empty raw path segment. The segment is returned still
//!   percent-encoded; the binder decodes it, so `/` inside an ARN (`%2F`) never splits a label.
//! - `{label+}` (greedy) matches one or more segments, slashes included.
//! - A trailing slash is optional on both sides: `/runtimes/` and `/runtimes` are the same route,
//!   because botocore's templates are inconsistent about it (`/runtimes/{id}/` vs `/browsers/{id}`)
//!   and hand-written clients drop or add it.
//! - A query part in a template (`/x?versioning`, S3 style) is ignored; no AgentCore operation
//!   has one.
//! - When several templates match, the one with the most literal segments wins, then the one
//!   with fewer greedy labels, then table order, so the result never depends on luck.

use hangar_model::{Operation, OperationDef, Service, OPERATIONS};
use std::sync::LazyLock;

/// One segment of a compiled template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(&'static str),
    Label(&'static str),
    Greedy(&'static str),
}

/// A compiled route: the template split into segments plus whatever the caller attached.
#[derive(Debug)]
pub(crate) struct Route<T> {
    method: &'static str,
    segments: Vec<Segment>,
    literals: usize,
    greedy: usize,
    pub(crate) target: T,
}

/// The labels a match bound, as `(label name, raw percent-encoded value)`.
pub(crate) type Labels<'p> = Vec<(&'static str, &'p str)>;

/// A successful match.
#[derive(Debug)]
pub(crate) struct RouteMatch<'t, 'p, T> {
    pub(crate) target: &'t T,
    pub(crate) labels: Labels<'p>,
}

/// What a matched operation is handed to. Data-plane operations get their own (streaming)
/// handlers in later work; until then they are routed (so their paths are known) but answered
/// as not supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Handler {
    /// Buffered JSON request, `ControlPlane::execute`, JSON response.
    Control,
    /// Raw payload forwarded to an agent session, streamed answer.
    InvokeAgentRuntime,
    /// Ends an agent session.
    StopRuntimeSession,
    /// An A2A agent's card, fetched inside a session.
    GetAgentCard,
    /// A command run inside a session, its output as an event stream.
    InvokeAgentRuntimeCommand,
    /// The code-interpreter data plane (`tools.rs`).
    CodeInterpreter,
    /// The browser data plane (`browser.rs`).
    Browser,
    /// Modelled, routed, but not served yet.
    NotYetSupported,
}

/// The target of a model route.
#[derive(Debug)]
pub(crate) struct OpRoute {
    pub(crate) def: &'static OperationDef,
    pub(crate) handler: Handler,
}

/// Chooses the handler of an operation. Kept as one function so that giving a data-plane
/// operation its own handler is a one-line change.
fn handler_for(def: &OperationDef) -> Handler {
    match (def.service, def.op) {
        (Service::Control, _) => Handler::Control,
        (Service::Data, Operation::InvokeAgentRuntime) => Handler::InvokeAgentRuntime,
        (Service::Data, Operation::StopRuntimeSession) => Handler::StopRuntimeSession,
        (Service::Data, Operation::GetAgentCard) => Handler::GetAgentCard,
        (Service::Data, Operation::InvokeAgentRuntimeCommand) => Handler::InvokeAgentRuntimeCommand,
        (
            Service::Data,
            Operation::StartCodeInterpreterSession
            | Operation::GetCodeInterpreterSession
            | Operation::ListCodeInterpreterSessions
            | Operation::StopCodeInterpreterSession
            | Operation::InvokeCodeInterpreter,
        ) => Handler::CodeInterpreter,
        (
            Service::Data,
            Operation::StartBrowserSession
            | Operation::GetBrowserSession
            | Operation::ListBrowserSessions
            | Operation::StopBrowserSession
            | Operation::UpdateBrowserStream
            | Operation::InvokeBrowser
            | Operation::SaveBrowserSessionProfile,
        ) => Handler::Browser,
        (Service::Data, _) => Handler::NotYetSupported,
    }
}

#[derive(Debug)]
pub(crate) struct RouteTable<T> {
    routes: Vec<Route<T>>,
}

static MODEL_ROUTES: LazyLock<RouteTable<OpRoute>> = LazyLock::new(|| {
    RouteTable::new(OPERATIONS.iter().map(|def| {
        (
            def.method,
            def.uri,
            OpRoute {
                def,
                handler: handler_for(def),
            },
        )
    }))
});

impl RouteTable<OpRoute> {
    /// The table of every modelled operation, built on first use.
    pub(crate) fn model() -> &'static RouteTable<OpRoute> {
        &MODEL_ROUTES
    }
}

impl<T> RouteTable<T> {
    pub(crate) fn new(entries: impl IntoIterator<Item = (&'static str, &'static str, T)>) -> Self {
        let routes = entries
            .into_iter()
            .map(|(method, template, target)| {
                let segments = compile(template);
                let literals = segments
                    .iter()
                    .filter(|s| matches!(s, Segment::Literal(_)))
                    .count();
                let greedy = segments
                    .iter()
                    .filter(|s| matches!(s, Segment::Greedy(_)))
                    .count();
                Route {
                    method,
                    segments,
                    literals,
                    greedy,
                    target,
                }
            })
            .collect();
        RouteTable { routes }
    }

    /// Finds the route for `method` and the raw (still percent-encoded) `path`. A known path
    /// with another method does not match: the caller answers both cases alike.
    pub(crate) fn find<'t, 'p>(
        &'t self,
        method: &str,
        path: &'p str,
    ) -> Option<RouteMatch<'t, 'p, T>> {
        let segments = split_path(path);
        let mut best: Option<(&Route<T>, Labels<'p>)> = None;
        for route in &self.routes {
            if route.method != method {
                continue;
            }
            let mut labels = Vec::new();
            if !match_segments(&route.segments, &segments, &mut labels, path) {
                continue;
            }
            let better = match &best {
                None => true,
                Some((b, _)) => {
                    (route.literals, std::cmp::Reverse(route.greedy))
                        > (b.literals, std::cmp::Reverse(b.greedy))
                }
            };
            if better {
                best = Some((route, labels));
            }
        }
        best.map(|(route, labels)| RouteMatch {
            target: &route.target,
            labels,
        })
    }
}

fn compile(template: &'static str) -> Vec<Segment> {
    let template = template.split_once('?').map_or(template, |(p, _)| p);
    split_path(template)
        .into_iter()
        .map(
            |seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(label) => match label.strip_suffix('+') {
                    Some(greedy) => Segment::Greedy(greedy),
                    None => Segment::Label(label),
                },
                None => Segment::Literal(seg),
            },
        )
        .collect()
}

/// Splits a path into segments, ignoring the leading slash and one trailing slash, so that
/// `/a/b/`, `/a/b` and `a/b` all give `["a", "b"]` and `/` gives `[]`. Empty inner segments
/// (`/a//b`) are kept: an empty segment never matches a label.
fn split_path(path: &str) -> Vec<&str> {
    let path = path.strip_prefix('/').unwrap_or(path);
    let path = path.strip_suffix('/').unwrap_or(path);
    if path.is_empty() {
        Vec::new()
    } else {
        path.split('/').collect()
    }
}

fn match_segments<'p>(
    template: &[Segment],
    segments: &[&'p str],
    labels: &mut Labels<'p>,
    path: &'p str,
) -> bool {
    let Some((first, rest)) = template.split_first() else {
        return segments.is_empty();
    };
    match first {
        Segment::Literal(lit) => {
            segments.first() == Some(lit) && match_segments(rest, &segments[1..], labels, path)
        }
        Segment::Label(name) => match segments.first() {
            Some(seg) if !seg.is_empty() => {
                labels.push((name, seg));
                if match_segments(rest, &segments[1..], labels, path) {
                    true
                } else {
                    labels.pop();
                    false
                }
            }
            _ => false,
        },
        Segment::Greedy(name) => {
            // Take as many segments as possible while the rest still matches, so a greedy
            // label followed by literals (`/{key+}/tail`) still binds correctly.
            for take in (1..=segments.len()).rev() {
                let mark = labels.len();
                if match_segments(rest, &segments[take..], labels, path) {
                    let joined = join_span(path, segments[0], segments[take - 1]);
                    if joined.is_empty() {
                        labels.truncate(mark);
                        continue;
                    }
                    labels.insert(mark, (name, joined));
                    return true;
                }
                labels.truncate(mark);
            }
            false
        }
    }
}

/// The slice of `path` from the start of segment `first` to the end of segment `last`; both
/// are sub-slices of `path`, so this is pointer arithmetic, not a copy.
fn join_span<'p>(path: &'p str, first: &'p str, last: &'p str) -> &'p str {
    let base = path.as_ptr() as usize;
    let start = first.as_ptr() as usize - base;
    let end = last.as_ptr() as usize - base + last.len();
    &path[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable<&'static str> {
        RouteTable::new([
            ("PUT", "/runtimes/", "CreateAgentRuntime"),
            ("POST", "/runtimes/", "ListAgentRuntimes"),
            ("GET", "/runtimes/{agentRuntimeId}/", "GetAgentRuntime"),
            (
                "POST",
                "/runtimes/{agentRuntimeArn}/invocations",
                "InvokeAgentRuntime",
            ),
            (
                "GET",
                "/runtimes/{agentRuntimeArn}/invocations/.well-known/agent-card.json",
                "GetAgentCard",
            ),
            ("PUT", "/browsers", "CreateBrowser"),
            (
                "PUT",
                "/browsers/{browserIdentifier}/sessions/start",
                "StartBrowserSession",
            ),
            ("GET", "/browsers/{browserId}", "GetBrowser"),
            ("GET", "/tags/{resourceArn}", "ListTagsForResource"),
            ("GET", "/files/{key+}", "GetFile"),
            ("GET", "/files/{key+}/meta", "GetFileMeta"),
            ("GET", "/things/{id}", "GetThing"),
            ("GET", "/things/special", "GetSpecialThing"),
        ])
    }

    fn find(method: &str, path: &str) -> Option<(&'static str, Vec<(&'static str, String)>)> {
        let t = table();
        t.find(method, path).map(|m| {
            (
                *m.target,
                m.labels.iter().map(|(k, v)| (*k, v.to_string())).collect(),
            )
        })
    }

    #[test]
    fn trailing_slash_is_optional_both_ways() {
        assert_eq!(find("PUT", "/runtimes/").unwrap().0, "CreateAgentRuntime");
        assert_eq!(find("PUT", "/runtimes").unwrap().0, "CreateAgentRuntime");
        assert_eq!(
            find("GET", "/runtimes/abc-1234567890").unwrap().0,
            "GetAgentRuntime"
        );
        assert_eq!(
            find("GET", "/runtimes/abc-1234567890/").unwrap().0,
            "GetAgentRuntime"
        );
        assert_eq!(find("GET", "/browsers/b-1/").unwrap().0, "GetBrowser");
    }

    #[test]
    fn method_selects_the_operation() {
        assert_eq!(find("POST", "/runtimes/").unwrap().0, "ListAgentRuntimes");
        assert!(find("DELETE", "/runtimes/").is_none());
        assert!(find("PATCH", "/browsers/x").is_none());
    }

    #[test]
    fn labels_stay_raw_and_never_span_encoded_slashes() {
        let arn =
            "arn%3Aaws%3Abedrock-agentcore%3Aus-west-2%3A123456789012%3Aruntime%2Fa-1234567890";
        let (op, labels) = find("GET", &format!("/tags/{arn}")).unwrap();
        assert_eq!(op, "ListTagsForResource");
        assert_eq!(labels, vec![("resourceArn", arn.to_string())]);
        let (op, labels) = find("POST", &format!("/runtimes/{arn}/invocations")).unwrap();
        assert_eq!(op, "InvokeAgentRuntime");
        assert_eq!(labels, vec![("agentRuntimeArn", arn.to_string())]);
        // An unencoded ARN splits into segments and therefore matches nothing.
        assert!(find("GET", "/tags/arn:aws:x:runtime/a").is_none());
    }

    #[test]
    fn empty_labels_do_not_match() {
        assert!(find("GET", "/runtimes//").is_none());
        assert!(find("GET", "/tags/").is_none());
        assert!(find("GET", "/tags//").is_none());
    }

    #[test]
    fn unknown_paths_do_not_match() {
        assert!(find("GET", "/").is_none());
        assert!(find("GET", "/nope").is_none());
        assert!(find("GET", "/runtimes/a/b/c/d/e/f").is_none());
        assert!(find("PUT", "/browsers/b/sessions/start/extra").is_none());
    }

    #[test]
    fn deeper_literal_templates_are_distinct() {
        assert_eq!(
            find("PUT", "/browsers/aws.browser.v1/sessions/start")
                .unwrap()
                .0,
            "StartBrowserSession"
        );
        assert_eq!(find("PUT", "/browsers").unwrap().0, "CreateBrowser");
        assert_eq!(
            find("GET", "/runtimes/x/invocations/.well-known/agent-card.json")
                .unwrap()
                .0,
            "GetAgentCard"
        );
    }

    #[test]
    fn more_literal_segments_win() {
        assert_eq!(find("GET", "/things/special").unwrap().0, "GetSpecialThing");
        assert_eq!(find("GET", "/things/other").unwrap().0, "GetThing");
        // Same answer whatever the table order.
        let reversed = RouteTable::new([
            ("GET", "/things/special", "S"),
            ("GET", "/things/{id}", "L"),
        ]);
        assert_eq!(
            *reversed.find("GET", "/things/special").unwrap().target,
            "S"
        );
        let forward = RouteTable::new([
            ("GET", "/things/{id}", "L"),
            ("GET", "/things/special", "S"),
        ]);
        assert_eq!(*forward.find("GET", "/things/special").unwrap().target, "S");
    }

    #[test]
    fn greedy_labels_take_the_rest() {
        let (op, labels) = find("GET", "/files/a/b%20c/d").unwrap();
        assert_eq!(op, "GetFile");
        assert_eq!(labels, vec![("key", "a/b%20c/d".to_string())]);
        let (op, labels) = find("GET", "/files/a/b/meta").unwrap();
        assert_eq!(op, "GetFileMeta");
        assert_eq!(labels, vec![("key", "a/b".to_string())]);
        assert!(find("GET", "/files/").is_none());
    }

    #[test]
    fn template_query_parts_are_ignored() {
        let t = RouteTable::new([("POST", "/objects/{id}?restore", "Restore")]);
        assert_eq!(*t.find("POST", "/objects/x").unwrap().target, "Restore");
    }

    #[test]
    fn the_runtime_data_plane_operations_have_their_handlers() {
        let table = RouteTable::model();
        let arn =
            "arn%3Aaws%3Abedrock-agentcore%3Aus-east-1%3A123456789012%3Aruntime%2Fa-1234567890";
        for (method, path, handler) in [
            (
                "POST",
                format!("/runtimes/{arn}/invocations"),
                Handler::InvokeAgentRuntime,
            ),
            // The URL the A2A helper advertises (AGENTCORE_RUNTIME_URL) ends in a slash.
            (
                "POST",
                format!("/runtimes/{arn}/invocations/"),
                Handler::InvokeAgentRuntime,
            ),
            (
                "GET",
                format!("/runtimes/{arn}/invocations/.well-known/agent-card.json"),
                Handler::GetAgentCard,
            ),
            (
                "POST",
                format!("/runtimes/{arn}/commands"),
                Handler::InvokeAgentRuntimeCommand,
            ),
            (
                "POST",
                format!("/runtimes/{arn}/stopruntimesession"),
                Handler::StopRuntimeSession,
            ),
        ] {
            let m = table
                .find(method, &path)
                .unwrap_or_else(|| panic!("{method} {path}"));
            assert_eq!(m.target.handler, handler, "{method} {path}");
        }
    }

    #[test]
    fn the_model_table_has_no_ambiguous_routes() {
        // Two operations with the same method and the same literal/label shape would make
        // matching depend on table order; the model must not contain any.
        let table = RouteTable::model();
        for (i, a) in table.routes.iter().enumerate() {
            for b in &table.routes[i + 1..] {
                let same_shape = a.method == b.method
                    && a.segments.len() == b.segments.len()
                    && a.segments
                        .iter()
                        .zip(&b.segments)
                        .all(|(x, y)| match (x, y) {
                            (Segment::Literal(x), Segment::Literal(y)) => x == y,
                            (Segment::Label(_), Segment::Label(_)) => true,
                            _ => false,
                        });
                assert!(
                    !same_shape,
                    "{} and {} have the same route",
                    a.target.def.name, b.target.def.name
                );
            }
        }
    }

    #[test]
    fn every_model_operation_routes_to_itself() {
        let table = RouteTable::model();
        for def in OPERATIONS {
            // Instantiate the template with a label value that needs percent-encoding.
            let path: String = compile(def.uri)
                .iter()
                .map(|s| match s {
                    Segment::Literal(l) => format!("/{l}"),
                    Segment::Label(_) | Segment::Greedy(_) => "/arn%3Aaws%3Ax%2Fy".to_string(),
                })
                .collect();
            let m = table
                .find(def.method, &path)
                .unwrap_or_else(|| panic!("{} {path} did not match", def.name));
            assert_eq!(m.target.def.name, def.name, "{} {path}", def.method);
        }
    }
}
