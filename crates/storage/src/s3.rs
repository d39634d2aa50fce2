//! An [`ObjectStore`] in an S3-compatible bucket (AWS S3, MinIO, Garage, Ceph RGW, R2, ...)
//! through `aws-sdk-s3`.
//!
//! The SDK retries 5xx answers, throttling and connection errors with exponential backoff
//! and jitter, bounded by [`S3Options::max_attempts`]; every attempt has a timeout. Objects
//! larger than [`S3Options::part_size`] are uploaded in parts, several at a time.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLocationConstraint, CompletedMultipartUpload, CompletedPart, CreateBucketConfiguration,
};
use aws_sdk_s3::Client;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
use bytes::{Bytes, BytesMut};

use crate::error::{Error, Result};
use crate::store::{check_range, validate_key, validate_prefix, ObjectMeta, ObjectStore};

/// The smallest part S3 accepts in a multipart upload (all parts but the last).
pub const MIN_PART_SIZE: usize = 5 << 20;
/// S3's limit on parts per upload.
const MAX_PARTS: usize = 10_000;
/// Never reserve more than this up front for a body, whatever its announced length.
const MAX_PREALLOCATION: usize = 64 << 20;
/// The region used when none is configured for a custom endpoint.
const FALLBACK_REGION: &str = "us-east-1";

/// How to reach the bucket. The defaults suit AWS; set [`endpoint`](Self::endpoint) and
/// [`force_path_style`](Self::force_path_style) for MinIO and most other S3-compatible
/// stores.
#[derive(Clone)]
pub struct S3Options {
    /// Bucket holding the objects.
    pub bucket: String,
    /// Endpoint, with or without scheme (`http://minio:9000`, `minio:9000`); empty means
    /// AWS for [`region`](Self::region).
    pub endpoint: String,
    /// Region; empty takes it from the AWS environment, else `us-east-1`.
    pub region: String,
    /// Access key; empty uses the standard AWS chain (`AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY`, profile files, web identity, container and instance roles).
    pub access_key_id: String,
    /// Secret key for [`access_key_id`](Self::access_key_id).
    pub secret_access_key: String,
    /// Session token of temporary credentials; may be empty.
    pub session_token: String,
    /// Address the bucket as `endpoint/bucket/key` instead of `bucket.endpoint/key`.
    pub force_path_style: bool,
    /// Plain HTTP when the endpoint has no scheme.
    pub insecure: bool,
    /// Extra CA certificates (PEM) to trust besides the system's.
    pub ca_pem: Option<Vec<u8>>,
    /// Objects larger than this are uploaded in parts of this size (at least
    /// [`MIN_PART_SIZE`]).
    pub part_size: usize,
    /// Parts uploaded at the same time.
    pub upload_concurrency: usize,
    /// Attempts per request, the first included (retries on 5xx, throttling, timeouts and
    /// connection errors).
    pub max_attempts: u32,
    /// Backoff before the first retry; doubles with jitter on each further one.
    pub initial_backoff: Duration,
    /// Longest backoff between two attempts.
    pub max_backoff: Duration,
    /// Time allowed to open a connection.
    pub connect_timeout: Duration,
    /// Time allowed for one attempt of one request, body included.
    pub attempt_timeout: Duration,
    /// Time allowed until the first byte of a response, if set.
    pub response_header_timeout: Option<Duration>,
    /// How long an idle pooled connection is kept.
    pub idle_connection_timeout: Duration,
}

impl Default for S3Options {
    fn default() -> Self {
        S3Options {
            bucket: String::new(),
            endpoint: String::new(),
            region: String::new(),
            access_key_id: String::new(),
            secret_access_key: String::new(),
            session_token: String::new(),
            force_path_style: false,
            insecure: false,
            ca_pem: None,
            part_size: 16 << 20,
            upload_concurrency: 4,
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(5),
            attempt_timeout: Duration::from_secs(120),
            response_header_timeout: None,
            idle_connection_timeout: Duration::from_secs(90),
        }
    }
}

impl fmt::Debug for S3Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let masked = |s: &str| if s.is_empty() { "" } else { "********" };
        f.debug_struct("S3Options")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &masked(&self.secret_access_key))
            .field("session_token", &masked(&self.session_token))
            .field("force_path_style", &self.force_path_style)
            .field("insecure", &self.insecure)
            .field("part_size", &self.part_size)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

/// Objects in one S3 bucket, keys used as they are.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    bucket: Arc<str>,
    region: Arc<str>,
    part_size: usize,
    upload_concurrency: usize,
}

impl S3Store {
    /// A client for `options.bucket`. Nothing is sent until the first call, so a bucket
    /// that is down does not stop this from succeeding.
    pub async fn new(options: S3Options) -> Result<S3Store> {
        let invalid = |message: String| Err(Error::InvalidConfig { message });
        if options.bucket.trim().is_empty() {
            return invalid("the s3 bucket name is empty".into());
        }
        if options.part_size < MIN_PART_SIZE {
            return invalid(format!(
                "the s3 part size {} is below the minimum of {MIN_PART_SIZE} bytes",
                options.part_size
            ));
        }
        if options.max_attempts == 0 {
            return invalid("s3 max_attempts must be at least 1".into());
        }
        let mut trust = TrustStore::default();
        if let Some(pem) = &options.ca_pem {
            trust = trust.with_pem_certificate(pem.clone());
        }
        let tls_context = TlsContext::builder()
            .with_trust_store(trust)
            .build()
            .map_err(|e| Error::InvalidConfig {
                message: format!("s3 tls settings: {e}"),
            })?;
        let http = aws_smithy_http_client::Builder::new()
            .pool_idle_timeout(options.idle_connection_timeout)
            .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
            .tls_context(tls_context)
            .build_https();

        let endpoint = endpoint_url(&options.endpoint, options.insecure);
        let mut region = options.region.trim().to_owned();
        if region.is_empty() && endpoint.is_some() {
            // S3-compatible stores ignore the region but the signature needs one; an
            // explicit one also spares looking it up from instance metadata.
            region = FALLBACK_REGION.to_owned();
        }
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http);
        if !region.is_empty() {
            loader = loader.region(Region::new(region));
        }
        if !options.access_key_id.is_empty() {
            let token = (!options.session_token.is_empty()).then(|| options.session_token.clone());
            loader = loader.credentials_provider(Credentials::new(
                options.access_key_id.clone(),
                options.secret_access_key.clone(),
                token,
                None,
                "fenrir-config",
            ));
        }
        let sdk_config = loader.load().await;

        let mut timeouts = TimeoutConfig::builder()
            .connect_timeout(options.connect_timeout)
            .operation_attempt_timeout(options.attempt_timeout);
        if let Some(header_timeout) = options.response_header_timeout {
            timeouts = timeouts.read_timeout(header_timeout);
        }
        let mut builder = aws_sdk_s3::config::Builder::from(&sdk_config)
            .force_path_style(options.force_path_style)
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(options.max_attempts)
                    .with_initial_backoff(options.initial_backoff)
                    .with_max_backoff(options.max_backoff),
            )
            .timeout_config(timeouts.build())
            // Optional checksums use aws-chunked uploads that several S3-compatible stores
            // reject; segments carry their own CRCs.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if sdk_config.region().is_none() {
            builder = builder.region(Region::new(FALLBACK_REGION));
        }
        if let Some(url) = endpoint {
            builder = builder.endpoint_url(url);
        }
        let config = builder.build();
        let region = config
            .region()
            .map_or(FALLBACK_REGION.to_owned(), |r| r.to_string());
        Ok(S3Store {
            client: Client::from_conf(config),
            bucket: options.bucket.trim().into(),
            region: region.into(),
            part_size: options.part_size,
            upload_concurrency: options.upload_concurrency.max(1),
        })
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Creates the bucket; a bucket that already exists and is ours is fine. For tests
    /// and first setups: Fenrir itself never creates buckets.
    pub async fn create_bucket(&self) -> Result<()> {
        let mut request = self.client.create_bucket().bucket(&*self.bucket);
        if &*self.region != FALLBACK_REGION {
            request = request.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(&*self.region))
                    .build(),
            );
        }
        match request.send().await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("BucketAlreadyOwnedByYou") => Ok(()),
            Err(e) => Err(classify(&self.bucket, e)),
        }
    }

    /// Whether the bucket answers and is reachable with these credentials.
    pub async fn check_bucket(&self) -> Result<()> {
        match self.client.head_bucket().bucket(&*self.bucket).send().await {
            Ok(_) => Ok(()),
            Err(e) => match classify(&self.bucket, e) {
                Error::NotFound { key } => Err(Error::Refused {
                    key,
                    message: "no such bucket".into(),
                }),
                other => Err(other),
            },
        }
    }

    async fn put_single(&self, key: &str, data: Bytes) -> Result<()> {
        self.client
            .put_object()
            .bucket(&*self.bucket)
            .key(key)
            .body(ByteStream::from(data))
            .send()
            .await
            .map_err(|e| classify(key, e))?;
        Ok(())
    }

    async fn put_multipart(&self, key: &str, data: Bytes) -> Result<()> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&*self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| classify(key, e))?;
        let Some(upload_id) = created.upload_id() else {
            return Err(Error::Refused {
                key: key.to_owned(),
                message: "create multipart upload answered without an upload id".into(),
            });
        };
        let outcome = match self.upload_parts(key, upload_id, &data).await {
            Ok(parts) => self
                .client
                .complete_multipart_upload()
                .bucket(&*self.bucket)
                .key(key)
                .upload_id(upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map(drop)
                .map_err(|e| classify(key, e)),
            Err(e) => Err(e),
        };
        if let Err(error) = &outcome {
            // Parts of an abandoned upload are billed until aborted; a bucket lifecycle
            // rule for incomplete uploads catches what this misses.
            if let Err(abort) = self
                .client
                .abort_multipart_upload()
                .bucket(&*self.bucket)
                .key(key)
                .upload_id(upload_id)
                .send()
                .await
            {
                tracing::warn!(key, %error, abort = %DisplayErrorContext(&abort), "could not abort a failed multipart upload");
            }
        }
        outcome
    }

    /// Uploads `data` in parts, at most `upload_concurrency` at a time; returns the parts
    /// in order.
    async fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        data: &Bytes,
    ) -> Result<Vec<CompletedPart>> {
        let part_size = self.part_size.max(data.len().div_ceil(MAX_PARTS));
        let mut tasks = tokio::task::JoinSet::new();
        let mut parts = Vec::with_capacity(data.len().div_ceil(part_size));
        for (index, start) in (0..data.len()).step_by(part_size).enumerate() {
            if tasks.len() >= self.upload_concurrency {
                parts.push(next_part(key, &mut tasks).await?);
            }
            let body = data.slice(start..(start + part_size).min(data.len()));
            // At most MAX_PARTS parts by the choice of part_size.
            let number = index as i32 + 1;
            let request = self
                .client
                .upload_part()
                .bucket(&*self.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .body(ByteStream::from(body));
            let key = key.to_owned();
            tasks.spawn(async move {
                let out = request.send().await.map_err(|e| classify(&key, e))?;
                Ok(CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(out.e_tag().map(str::to_owned))
                    .build())
            });
        }
        while !tasks.is_empty() {
            parts.push(next_part(key, &mut tasks).await?);
        }
        parts.sort_by_key(|p| p.part_number());
        Ok(parts)
    }

    /// One GET; the outer error is the request's, the inner one the body's (which the
    /// SDK does not retry).
    async fn get_once(&self, key: &str, range: Option<&Range<u64>>) -> Result<Result<Bytes>> {
        let mut request = self.client.get_object().bucket(&*self.bucket).key(key);
        if let Some(r) = range {
            request = request.range(format!("bytes={}-{}", r.start, r.end - 1));
        }
        let out = match request.send().await {
            Ok(out) => out,
            Err(e) if status_of(&e) == Some(416) => {
                let Some(r) = range else {
                    return Err(classify(key, e));
                };
                // The range starts past the end: report it with the object's real size.
                let size = self.head(key).await?.size;
                return Err(check_range(key, r, size)
                    .err()
                    .unwrap_or(Error::InvalidRange {
                        key: key.to_owned(),
                        start: r.start,
                        end: r.end,
                        size,
                    }));
            }
            Err(e) => return Err(classify(key, e)),
        };
        let announced = out.content_length().and_then(|n| usize::try_from(n).ok());
        match (
            range,
            out.content_range().and_then(total_from_content_range),
        ) {
            (Some(r), Some(total)) if total < r.end => Err(Error::InvalidRange {
                key: key.to_owned(),
                start: r.start,
                end: r.end,
                size: total,
            }),
            (Some(r), None) if out.content_range().is_none() => {
                // A store that ignores Range sends the whole object.
                let whole = read_body(key, out.body, announced).await;
                Ok(whole.and_then(|whole| {
                    let slice = check_range(key, r, whole.len() as u64)?;
                    Ok(whole.slice(slice))
                }))
            }
            (Some(r), _) => {
                let expected =
                    usize::try_from(r.end - r.start).map_err(|_| Error::InvalidRange {
                        key: key.to_owned(),
                        start: r.start,
                        end: r.end,
                        size: u64::MAX,
                    })?;
                Ok(read_body(key, out.body, Some(expected)).await)
            }
            (None, _) => Ok(read_body(key, out.body, announced).await),
        }
    }

    /// A GET whose body is read again (up to the attempt limit) when it breaks off.
    async fn get_retrying_body(&self, key: &str, range: Option<&Range<u64>>) -> Result<Bytes> {
        let mut attempt = 1;
        loop {
            match self.get_once(key, range).await? {
                Err(e) if e.is_retryable() && attempt < 3 => {
                    tracing::debug!(key, error = %e, attempt, "s3 body read failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                    attempt += 1;
                }
                body => return body,
            }
        }
    }
}

async fn next_part(
    key: &str,
    tasks: &mut tokio::task::JoinSet<Result<CompletedPart>>,
) -> Result<CompletedPart> {
    match tasks.join_next().await {
        Some(Ok(part)) => part,
        Some(Err(join)) => Err(Error::Unavailable {
            message: format!("upload task for {key} failed: {join}"),
        }),
        None => Err(Error::Unavailable {
            message: format!("upload of {key} lost a part"),
        }),
    }
}

/// Reads a response body, refusing more than `expected` bytes and reporting a short one.
async fn read_body(key: &str, mut body: ByteStream, expected: Option<usize>) -> Result<Bytes> {
    let limit = expected.unwrap_or(usize::MAX);
    let mut buf = BytesMut::with_capacity(limit.min(MAX_PREALLOCATION));
    loop {
        let chunk = body.try_next().await.map_err(|e| Error::Unavailable {
            message: format!("reading {key}: {}", DisplayErrorContext(&e)),
        })?;
        let Some(chunk) = chunk else { break };
        if chunk.len() > limit - buf.len() {
            return Err(Error::Unavailable {
                message: format!(
                    "reading {key}: the body is longer than the {limit} bytes announced"
                ),
            });
        }
        buf.extend_from_slice(&chunk);
    }
    if expected.is_some_and(|n| n != buf.len()) {
        return Err(Error::Unavailable {
            message: format!(
                "reading {key}: the body ended after {} of {limit} bytes",
                buf.len()
            ),
        });
    }
    Ok(buf.freeze())
}

/// `http://host:port` from Loki's `endpoint` and `insecure`; `None` for AWS itself.
fn endpoint_url(endpoint: &str, insecure: bool) -> Option<String> {
    let endpoint = endpoint.trim().trim_end_matches('/');
    if endpoint.is_empty() {
        return None;
    }
    if endpoint.contains("://") {
        return Some(endpoint.to_owned());
    }
    let scheme = if insecure { "http" } else { "https" };
    Some(format!("{scheme}://{endpoint}"))
}

/// The object size from `bytes 0-99/4096`; `None` when unknown (`*`) or malformed.
fn total_from_content_range(content_range: &str) -> Option<u64> {
    content_range.rsplit_once('/')?.1.trim().parse().ok()
}

fn status_of<E>(err: &SdkError<E>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

/// Sorts an SDK error into "not there", "try again later" and "will not work".
fn classify<E>(key: &str, err: SdkError<E>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let message = DisplayErrorContext(&err).to_string();
    let unavailable = || Error::Unavailable {
        message: format!("{key}: {message}"),
    };
    let refused = || Error::Refused {
        key: key.to_owned(),
        message: message.clone(),
    };
    match &err {
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => return unavailable(),
        SdkError::DispatchFailure(failure) => {
            return if failure.is_user() {
                refused()
            } else {
                unavailable()
            };
        }
        SdkError::ConstructionFailure(_) => return refused(),
        _ => {}
    }
    match (err.code(), status_of(&err)) {
        (Some("NoSuchBucket"), _) => refused(),
        (Some("NoSuchKey" | "NotFound"), _) | (_, Some(404)) => Error::NotFound {
            key: key.to_owned(),
        },
        (
            Some(
                "SlowDown"
                | "Throttling"
                | "ThrottlingException"
                | "RequestTimeout"
                | "InternalError"
                | "ServiceUnavailable",
            ),
            _,
        ) => unavailable(),
        (_, Some(status)) if status >= 500 || status == 429 || status == 408 => unavailable(),
        _ => refused(),
    }
}

#[async_trait::async_trait]
impl ObjectStore for S3Store {
    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        validate_key(key)?;
        if data.len() > self.part_size {
            self.put_multipart(key, data).await
        } else {
            self.put_single(key, data).await
        }
    }

    async fn get(&self, key: &str) -> Result<Bytes> {
        validate_key(key)?;
        self.get_retrying_body(key, None).await
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        validate_key(key)?;
        if range.start >= range.end {
            // HTTP cannot ask for zero bytes; the size decides whether the range is valid.
            let size = self.head(key).await?.size;
            check_range(key, &range, size)?;
            return Ok(Bytes::new());
        }
        self.get_retrying_body(key, Some(&range)).await
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        validate_key(key)?;
        let out = self
            .client
            .head_object()
            .bucket(&*self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| classify(key, e))?;
        Ok(ObjectMeta {
            key: key.to_owned(),
            size: out
                .content_length()
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or(0),
        })
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        validate_prefix(prefix)?;
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&*self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        let mut found = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(prefix, e))?;
            for object in page.contents() {
                let Some(key) = object.key() else { continue };
                found.push(ObjectMeta {
                    key: key.to_owned(),
                    size: object
                        .size()
                        .and_then(|n| u64::try_from(n).ok())
                        .unwrap_or(0),
                });
            }
        }
        // S3 lists in UTF-8 byte order already; some compatible stores may not.
        if !found.is_sorted() {
            found.sort_unstable();
        }
        Ok(found)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        match self
            .client
            .delete_object()
            .bucket(&*self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match classify(key, e) {
                Error::NotFound { .. } => Ok(()),
                other => Err(other),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_follow_lokis_insecure_flag() {
        assert_eq!(endpoint_url("", true), None);
        assert_eq!(
            endpoint_url("minio:9000", true).as_deref(),
            Some("http://minio:9000")
        );
        assert_eq!(
            endpoint_url("minio:9000", false).as_deref(),
            Some("https://minio:9000")
        );
        assert_eq!(
            endpoint_url("http://127.0.0.1:9000/", false).as_deref(),
            Some("http://127.0.0.1:9000")
        );
    }

    #[test]
    fn content_range_totals() {
        assert_eq!(total_from_content_range("bytes 0-99/4096"), Some(4096));
        assert_eq!(total_from_content_range("bytes */4096"), Some(4096));
        assert_eq!(total_from_content_range("bytes 0-99/*"), None);
        assert_eq!(total_from_content_range("garbage"), None);
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let options = S3Options {
            bucket: "b".into(),
            access_key_id: "AKIA".into(),
            secret_access_key: "hunter2".into(),
            ..S3Options::default()
        };
        let shown = format!("{options:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("AKIA"), "{shown}");
    }

    #[tokio::test]
    async fn bad_options_are_refused_before_any_request() {
        let small = S3Options {
            bucket: "b".into(),
            part_size: 1 << 20,
            ..S3Options::default()
        };
        assert!(matches!(
            S3Store::new(small).await,
            Err(Error::InvalidConfig { .. })
        ));
        assert!(matches!(
            S3Store::new(S3Options::default()).await,
            Err(Error::InvalidConfig { .. })
        ));
    }
}
