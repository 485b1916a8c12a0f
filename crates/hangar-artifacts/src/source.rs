//! Where code zips come from: one trait, [`ObjectSource`], implemented by
//! [`crate::S3Source`] (an S3-compatible endpoint) and [`DirSource`] (a local
//! directory standing in for buckets, so a laptop needs no S3).
//!
//! A source never hands back the bytes: it streams them into a [`Sink`], which
//! writes a temporary file, hashes on the way and enforces the size limit, so
//! a 250 MiB zip never sits in memory and an oversized one is cut off early.

use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};

use crate::config::object_url;
use crate::error::ArtifactError;

/// One object to fetch.
#[derive(Debug, Clone, Copy)]
pub struct ObjectRequest<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    /// A pinned version, or `None` for the latest one.
    pub version_id: Option<&'a str>,
    /// An ETag this caller already has: a source may answer
    /// [`FetchOutcome::NotModified`] instead of sending the body again.
    pub if_none_match: Option<&'a str>,
}

impl ObjectRequest<'_> {
    /// `s3://bucket/key[?versionId=…]`, for messages.
    pub fn url(&self) -> String {
        object_url(self.bucket, self.key, self.version_id)
    }
}

/// What a fetch produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchOutcome {
    /// The object still has the ETag given in [`ObjectRequest::if_none_match`];
    /// nothing was written to the sink.
    NotModified,
    /// The body was written to the sink.
    Fetched(ObjectMeta),
}

/// Identity of the fetched object, as the source reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectMeta {
    pub etag: Option<String>,
    pub version_id: Option<String>,
}

/// A place objects come from.
#[async_trait]
pub trait ObjectSource: Send + Sync + 'static {
    /// Where this source reads from, for messages and as part of the cache
    /// index key: `http://127.0.0.1:9000`, `directory /srv/buckets`.
    fn endpoint(&self) -> String;

    /// Stream the object into `sink` (or answer `NotModified`). Must call
    /// [`Sink::check_declared_len`] as soon as the size is known, so an
    /// oversized object is refused before its body is read.
    async fn fetch(
        &self,
        request: &ObjectRequest<'_>,
        sink: &mut Sink,
    ) -> Result<FetchOutcome, ArtifactError>;
}

/// Receives an object's body: a temporary file, a running SHA-256 and a byte
/// limit. Sources call [`Sink::check_declared_len`] and [`Sink::write`].
pub struct Sink {
    file: BufWriter<tokio::fs::File>,
    path: PathBuf,
    hasher: Sha256,
    written: u64,
    limit: u64,
    url: String,
}

impl Sink {
    pub(crate) async fn create(
        path: PathBuf,
        limit: u64,
        url: String,
    ) -> Result<Self, ArtifactError> {
        let file = tokio::fs::File::create(&path).await.map_err(|e| {
            ArtifactError::io(
                format!("cannot create the download file {}", path.display()),
                e,
            )
        })?;
        Ok(Sink {
            file: BufWriter::with_capacity(256 * 1024, file),
            path,
            hasher: Sha256::new(),
            written: 0,
            limit,
            url,
        })
    }

    /// The compressed-size limit in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Refuse an object whose announced size (Content-Length, file size) is
    /// over the limit, before reading any of it.
    pub fn check_declared_len(&self, len: u64) -> Result<(), ArtifactError> {
        if len > self.limit {
            return Err(ArtifactError::TooLarge {
                url: self.url.clone(),
                size: len,
                limit: self.limit,
            });
        }
        Ok(())
    }

    /// Append a chunk of the body. Fails as soon as the total passes the limit
    /// (a server may send more than it announced, or announce nothing).
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), ArtifactError> {
        let total = self.written + chunk.len() as u64;
        if total > self.limit {
            return Err(ArtifactError::TooLarge {
                url: self.url.clone(),
                size: total,
                limit: self.limit,
            });
        }
        self.hasher.update(chunk);
        self.file.write_all(chunk).await.map_err(|e| {
            ArtifactError::io(
                format!("cannot write the download file {}", self.path.display()),
                e,
            )
        })?;
        self.written = total;
        Ok(())
    }

    /// Flush and return (size, lowercase hex sha256).
    pub(crate) async fn finish(mut self) -> Result<(u64, String), ArtifactError> {
        self.file.flush().await.map_err(|e| {
            ArtifactError::io(
                format!("cannot write the download file {}", self.path.display()),
                e,
            )
        })?;
        Ok((self.written, hex::encode(self.hasher.finalize())))
    }
}

/// A local directory that stands in for S3: object `bucket/key` is the file
/// `DIR/bucket/key`.
///
/// `versionId` is refused with [`ArtifactError::VersionIdUnsupported`] rather
/// than ignored: silently serving whatever file is there now under a pinned
/// version would run code the caller did not ask for.
///
/// The ETag is synthetic (size, mtime, inode), so an unchanged file is not
/// copied and hashed again.
#[derive(Debug, Clone)]
pub struct DirSource {
    root: PathBuf,
}

impl DirSource {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirSource { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

#[async_trait]
impl ObjectSource for DirSource {
    fn endpoint(&self) -> String {
        format!("directory {}", self.root.display())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(url = %request.url()))]
    async fn fetch(
        &self,
        request: &ObjectRequest<'_>,
        sink: &mut Sink,
    ) -> Result<FetchOutcome, ArtifactError> {
        let url = request.url();
        if let Some(v) = request.version_id {
            return Err(ArtifactError::VersionIdUnsupported {
                url,
                version_id: v.to_string(),
                endpoint: self.endpoint(),
            });
        }
        // S3 keys may contain "..", but here they are paths: refuse anything
        // that is not a plain relative path below the bucket directory.
        let rel = Path::new(request.key);
        if request.key.contains('\0')
            || !rel.components().all(|c| matches!(c, Component::Normal(_)))
        {
            return Err(ArtifactError::InvalidConfig(format!(
                "code.s3.prefix '{}' cannot be used with a local directory source: \
                 it must be a relative path without '.' or '..' components",
                request.key
            )));
        }
        let bucket_dir = self.root.join(request.bucket);
        if !tokio::fs::metadata(&bucket_dir)
            .await
            .map(|m| m.is_dir())
            .unwrap_or(false)
        {
            return Err(ArtifactError::BucketNotFound {
                bucket: request.bucket.to_string(),
                url,
                endpoint: self.endpoint(),
            });
        }
        let path = bucket_dir.join(rel);
        let meta = match tokio::fs::metadata(&path).await {
            Ok(m) if m.is_file() => m,
            _ => {
                return Err(ArtifactError::ObjectNotFound {
                    url,
                    endpoint: self.endpoint(),
                })
            }
        };
        let etag = format!(
            "\"{}-{}.{}-{}\"",
            meta.len(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ino()
        );
        if request.if_none_match == Some(etag.as_str()) {
            return Ok(FetchOutcome::NotModified);
        }
        sink.check_declared_len(meta.len())?;
        let mut file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| ArtifactError::io(format!("cannot open {}", path.display()), e))?;
        let mut buf = vec![0u8; 1024 * 1024];
        loop {
            let n = file
                .read(&mut buf)
                .await
                .map_err(|e| ArtifactError::io(format!("cannot read {}", path.display()), e))?;
            if n == 0 {
                break;
            }
            sink.write(&buf[..n]).await?;
        }
        Ok(FetchOutcome::Fetched(ObjectMeta {
            etag: Some(etag),
            version_id: None,
        }))
    }
}
