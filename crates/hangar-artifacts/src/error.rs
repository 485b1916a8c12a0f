//! The one error type of this crate.
//!
//! Every message is meant to be shown as-is to the person who created the
//! AgentRuntime (it ends up as the runtime's `failureReason`), so each variant
//! says what is wrong *and* how to fix it, in one or two sentences, with the
//! real numbers (sizes, limits, paths) rather than a code.

use std::path::PathBuf;

/// What went wrong while turning a `codeConfiguration` into something that runs.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// The `codeConfiguration` itself is malformed (missing member, bad enum value…).
    #[error("invalid codeConfiguration: {0}")]
    InvalidConfig(String),

    /// No binary for the runtime was found on the host.
    #[error(
        "runtime {runtime} needs {binary}, which is not on this host's PATH{searched}; \
         install it or pass --interpreter {runtime}=/path/to/{binary}"
    )]
    InterpreterNotFound {
        runtime: String,
        binary: String,
        /// Already formatted, e.g. " (searched /usr/bin, /usr/local/bin)"; may be empty.
        searched: String,
    },

    /// A binary was found but it is not the version the runtime promises.
    #[error(
        "runtime {runtime} needs {wanted}, but the {binary} found at {path} is {found}; \
         install {wanted} or pass --interpreter {runtime}=/path/to/{binary}",
        path = .path.display()
    )]
    InterpreterVersionMismatch {
        runtime: String,
        binary: String,
        path: PathBuf,
        wanted: String,
        found: String,
    },

    /// An explicit `--interpreter RUNTIME=PATH` override is unusable.
    #[error("the interpreter configured for {runtime} ({path}) {problem}; fix --interpreter {runtime}=…",
        path = .path.display())]
    InterpreterOverride {
        runtime: String,
        path: PathBuf,
        problem: String,
    },

    /// No AWS credentials could be found for signing S3 requests.
    #[error(
        "cannot fetch {url}: no AWS credentials found (looked at AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY \
         and the shared credentials file {file}, profile '{profile}'); set them the way the AWS CLI expects"
    )]
    NoCredentials {
        url: String,
        file: String,
        profile: String,
    },

    /// The credentials file exists but is unreadable or incomplete.
    #[error("cannot use the AWS shared credentials file {file}: {problem}")]
    BadCredentialsFile { file: String, problem: String },

    /// Nothing answered at the S3 endpoint (connection refused, DNS, timeout).
    #[error("cannot reach the S3 endpoint {endpoint} to fetch {url} ({detail}); is the S3 server running and is the endpoint right?")]
    EndpointUnreachable {
        endpoint: String,
        url: String,
        detail: String,
    },

    /// The bucket does not exist (S3 `NoSuchBucket`, or the directory is missing for [`crate::DirSource`]).
    #[error("bucket '{bucket}' does not exist at {endpoint} (while fetching {url}); create it and upload the zip, or fix code.s3.bucket")]
    BucketNotFound {
        bucket: String,
        url: String,
        endpoint: String,
    },

    /// The object does not exist (S3 `NoSuchKey`, or a missing file for [`crate::DirSource`]).
    #[error("{url} not found at {endpoint}; upload the zip there or fix code.s3.prefix (it must be the full key of the .zip)")]
    ObjectNotFound { url: String, endpoint: String },

    /// The requested `versionId` does not exist.
    #[error("version '{version_id}' of {url} not found at {endpoint}; fix code.s3.versionId or omit it to use the latest version")]
    VersionNotFound {
        url: String,
        version_id: String,
        endpoint: String,
    },

    /// S3 refused the credentials or the request (403).
    #[error("access denied to {url} at {endpoint} ({code}: {message}); check the AWS credentials Hangar uses and the bucket's policy")]
    AccessDenied {
        url: String,
        endpoint: String,
        code: String,
        message: String,
    },

    /// Any other S3 error response.
    #[error("S3 at {endpoint} answered HTTP {status} {code} for {url}: {message}")]
    S3 {
        url: String,
        endpoint: String,
        status: u16,
        code: String,
        message: String,
    },

    /// The transfer broke off or timed out after it started.
    #[error("downloading {url} from {endpoint} failed: {detail}")]
    Transfer {
        url: String,
        endpoint: String,
        detail: String,
    },

    /// `versionId` was given but the object source has no versions.
    #[error("{url} has code.s3.versionId '{version_id}', but {endpoint} has no object versions; omit versionId or use an S3 endpoint")]
    VersionIdUnsupported {
        url: String,
        version_id: String,
        endpoint: String,
    },

    /// The zip itself is over the compressed-size limit.
    #[error("{url} is {} ({size} bytes), over the {} ({limit} bytes) limit for a code zip; \
             trim the vendored dependencies or use a container image",
        human(*.size), human(*.limit))]
    TooLarge { url: String, size: u64, limit: u64 },

    /// The zip unpacks to more than the uncompressed limit.
    #[error("{url} unpacks to {}{} ({size} bytes), over the {} ({limit} bytes) limit for unpacked code; \
             trim the vendored dependencies or use a container image",
        if *.at_least { "at least " } else { "" }, human(*.size), human(*.limit))]
    UncompressedTooLarge {
        url: String,
        size: u64,
        limit: u64,
        /// True when found while extracting (we stopped there), false when the
        /// declared sizes already add up to more than the limit.
        at_least: bool,
    },

    /// The zip has more entries than allowed.
    #[error(
        "{url} has {count} entries, over the limit of {limit}; trim the vendored dependencies"
    )]
    TooManyEntries { url: String, count: u64, limit: u64 },

    /// The object is not a zip archive.
    #[error("{url} is not a zip archive ({detail}); code.s3.prefix must name a .zip with the code at its root")]
    NotAZip { url: String, detail: String },

    /// The zip is damaged, encrypted or uses an unsupported compression method.
    #[error("{url} could not be unpacked: entry '{entry}': {detail}; rebuild the zip (plain deflate or stored, no encryption)")]
    BadZip {
        url: String,
        entry: String,
        detail: String,
    },

    /// An entry would land outside the code directory (zip-slip) or is otherwise unsafe.
    #[error("{url} has an unsafe entry '{entry}': {reason}; rebuild the zip with relative paths inside the archive")]
    UnsafeEntry {
        url: String,
        entry: String,
        reason: String,
    },

    /// An entry inflated to more bytes than its header declares (zip bomb or corrupt zip).
    #[error("{url} has an entry '{entry}' that inflates to more than the {declared} bytes its header declares; the zip is corrupt or malicious, rebuild it")]
    SizeMismatch {
        url: String,
        entry: String,
        declared: u64,
    },

    /// The script named by `entryPoint` is not in the artifact.
    #[error("entryPoint '{entry}' not found in the artifact; the zip contains: {listing}{hint}")]
    EntryPointNotFound {
        entry: String,
        listing: String,
        /// Already formatted (starts with "; "), may be empty.
        hint: String,
    },

    /// `entryPoint` has a launcher the artifact does not provide.
    #[error("entryPoint launcher '{launcher}' is not in the artifact: {expected}; vendor it into the zip or use entryPoint [\"{script}\"]")]
    LauncherNotFound {
        launcher: String,
        script: String,
        expected: String,
    },

    /// `entryPoint` is syntactically unusable (absolute path, `..`, …).
    #[error("invalid entryPoint {entry_point:?}: {reason}")]
    InvalidEntryPoint {
        entry_point: Vec<String>,
        reason: String,
    },

    /// Local disk trouble in the cache (permissions, full disk…).
    #[error("{context}: {source}; check that the artifact cache directory is writable and has free space")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// The name the provisioner uses for the error it turns into a `failureReason`.
pub type FailureReason = ArtifactError;

impl ArtifactError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ArtifactError::Io {
            context: context.into(),
            source,
        }
    }
}

/// "250 MiB" style sizes for people. Binary units: AWS's "250 MB" code-zip
/// quota is the Lambda one, 262,144,000 bytes = 250 MiB.
pub(crate) fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64;
    let mut unit = "B";
    for u in UNITS {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    if (v - v.round()).abs() < 0.05 {
        format!("{v:.0} {unit}")
    } else {
        format!("{v:.1} {unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::human;

    #[test]
    fn human_sizes() {
        assert_eq!(human(12), "12 B");
        assert_eq!(human(262_144_000), "250 MiB");
        assert_eq!(human(786_432_000), "750 MiB");
        assert_eq!(human(300_000_000), "286.1 MiB");
        assert_eq!(human(1_536), "1.5 KiB");
    }
}
