//! Hand-built, SigV4-signed S3 requests for what object_store has no call for: conditional
//! creates with Object Lock headers, the bucket's Object Lock configuration, and per-version
//! retention and legal holds.
//!
//! The requests are signed by object_store's own [`AwsAuthorizer`] with the credentials of the
//! store's client, and sent with object_store's HTTP client, so the endpoint, credentials
//! (environment, web identity, instance metadata), TLS and `allow_http` settings are exactly
//! those of the blob backend.

use std::sync::Arc;
use std::time::Duration;

use artifact_core::time::Timestamp;
use artifact_core::{Error, Result};
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use object_store::ClientOptions;
use object_store::aws::{AmazonS3, AwsAuthorizer};
use object_store::client::{HttpClient, HttpConnector as _, HttpRequestBody, ReqwestConnector};

pub use artifact_core::blob::LockMode;

/// A bucket's Object Lock configuration (`GET /BUCKET?object-lock`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketLock {
    /// `ObjectLockEnabled` is `Enabled`.
    pub enabled: bool,
    /// The bucket applies a default retention to every new object version (its `Rule`).
    pub default_retention: bool,
}

/// What a conditional create found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Created {
    /// The object was written; its version id if the bucket is versioned.
    New {
        /// `x-amz-version-id`.
        version_id: Option<String>,
    },
    /// An object already existed under the key (nothing was written).
    Exists,
}

/// One entry of a version listing (`GET /BUCKET?versions`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionEntry {
    /// The object key.
    pub key: String,
    /// Its version id (`null` on a bucket that was never versioned).
    pub version_id: String,
    /// A delete marker rather than an object version.
    pub delete_marker: bool,
    /// The current version of its key.
    pub is_latest: bool,
}

/// Signed requests against one bucket.
#[derive(Clone, Debug)]
pub struct SignedClient {
    http: HttpClient,
    store: Arc<AmazonS3>,
    region: String,
    /// `scheme://host[:port]/bucket` (path style) or `scheme://bucket.host` (virtual hosted),
    /// without a trailing `/`.
    base: String,
    bucket: String,
}

/// Attempts for a request that failed to connect or got a 5xx/503 SlowDown answer.
const ATTEMPTS: u32 = 4;

impl SignedClient {
    /// `base` is `scheme://host[:port]/bucket` or `scheme://bucket.host`; `store` provides the
    /// credentials (its provider caches and refreshes them).
    pub(crate) fn new(
        store: Arc<AmazonS3>,
        region: String,
        base: String,
        bucket: String,
        allow_http: bool,
    ) -> Result<Self> {
        let options = ClientOptions::new()
            .with_allow_http(allow_http)
            .with_timeout(Duration::from_secs(60))
            .with_connect_timeout(Duration::from_secs(10));
        let http = ReqwestConnector::default()
            .connect(&options)
            .map_err(|e| Error::Config(format!("S3 client: {e}")))?;
        Ok(Self {
            http,
            store,
            region,
            base,
            bucket,
        })
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The bucket's Object Lock configuration; `enabled: false` when it has none.
    pub async fn bucket_lock(&self) -> Result<BucketLock> {
        let answer = self.bodiless(Method::GET, None, "object-lock").await?;
        let body = String::from_utf8_lossy(&answer.body);
        if answer.status == StatusCode::NOT_FOUND
            && (body.contains("ObjectLockConfigurationNotFound")
                || body.contains("NoSuchObjectLockConfiguration"))
        {
            return Ok(BucketLock {
                enabled: false,
                default_retention: false,
            });
        }
        answer.ok("read the Object Lock configuration of", &self.bucket)?;
        Ok(BucketLock {
            enabled: xml_text(&body, "ObjectLockEnabled") == Some("Enabled"),
            default_retention: xml_text(&body, "DefaultRetention")
                .is_some_and(|rule| !rule.trim().is_empty()),
        })
    }

    /// PUTs `body` under `key` only if no object is there (`If-None-Match: *`), with an Object
    /// Lock retention when `lock` is given (`Content-MD5` is sent, as S3 requires with lock
    /// headers). A server that ignores `If-None-Match` overwrites; callers that must not
    /// overwrite check with [`SignedClient::get`] first as well.
    pub async fn put_if_absent(
        &self,
        key: &str,
        body: Bytes,
        content_type: &str,
        lock: Option<(LockMode, Timestamp)>,
    ) -> Result<Created> {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        headers.insert(http::header::CONTENT_TYPE, header_value(content_type)?);
        let md5 = base64::engine::general_purpose::STANDARD
            .encode(<md5::Md5 as md5::Digest>::digest(&body));
        headers.insert(HeaderName::from_static("content-md5"), header_value(&md5)?);
        if let Some((mode, until)) = lock {
            headers.insert(
                HeaderName::from_static("x-amz-object-lock-mode"),
                HeaderValue::from_static(mode.as_str()),
            );
            headers.insert(
                HeaderName::from_static("x-amz-object-lock-retain-until-date"),
                header_value(&until.to_string())?,
            );
        }
        let answer = self.send(Method::PUT, Some(key), "", headers, body).await?;
        if answer.status == StatusCode::PRECONDITION_FAILED || answer.status == StatusCode::CONFLICT
        {
            return Ok(Created::Exists);
        }
        answer.ok("create", key)?;
        Ok(Created::New {
            version_id: answer.header("x-amz-version-id"),
        })
    }

    /// Creates the bucket (`PUT /BUCKET`), with Object Lock enabled (and so versioning) when
    /// `object_lock`. The store itself never creates buckets; this is for tests and set-up
    /// tools against a server in the default region (no `CreateBucketConfiguration` is sent).
    pub async fn create_bucket(&self, object_lock: bool) -> Result<()> {
        let mut headers = HeaderMap::new();
        if object_lock {
            headers.insert(
                HeaderName::from_static("x-amz-bucket-object-lock-enabled"),
                HeaderValue::from_static("true"),
            );
        }
        let answer = self
            .send(Method::PUT, None, "", headers, Bytes::new())
            .await?;
        answer.ok("create the bucket", &self.bucket)
    }

    /// The version id of the current version of `key` (`HEAD`); `Ok(None)` when there is no
    /// object, `Ok(Some(None))` when the bucket is not versioned.
    pub async fn version_id(&self, key: &str) -> Result<Option<Option<String>>> {
        let answer = self.bodiless(Method::HEAD, Some(key), "").await?;
        if answer.no_such_object() {
            return Ok(None);
        }
        answer.ok("stat", key)?;
        Ok(Some(answer.header("x-amz-version-id")))
    }

    /// GETs the object under `key`; `None` if there is none.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        let answer = self.bodiless(Method::GET, Some(key), "").await?;
        if answer.no_such_object() {
            return Ok(None);
        }
        answer.ok("read", key)?;
        Ok(Some(answer.body))
    }

    /// The retention of the current version of `key` (`GET ?retention`): mode and
    /// retain-until; `None` when it has none.
    pub async fn retention(&self, key: &str) -> Result<Option<(LockMode, String)>> {
        self.version_retention(key, None).await
    }

    /// The size of a version of `key` (`HEAD ?versionId=`); `None` when there is no such
    /// version.
    pub async fn version_size(&self, key: &str, version_id: &str) -> Result<Option<u64>> {
        let query = format!("versionId={}", encode_query(version_id)?);
        let answer = self.bodiless(Method::HEAD, Some(key), &query).await?;
        // A HEAD answer has no body: any 404 of a version means "no such version" (the bucket
        // is checked at start-up). A delete marker answers 405: not an object version.
        if answer.status == StatusCode::NOT_FOUND || answer.status == StatusCode::METHOD_NOT_ALLOWED
        {
            return Ok(None);
        }
        answer.ok("stat a version of", key)?;
        let length = answer.header("content-length").unwrap_or_default();
        length.parse().map(Some).map_err(|_| {
            backend(format!(
                "HEAD of `{key}` version {version_id} has no usable Content-Length (`{length}`)"
            ))
        })
    }

    /// The retention of a version of `key` (`GET ?retention[&versionId=]`); `None` when it
    /// has none.
    pub async fn version_retention(
        &self,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<Option<(LockMode, String)>> {
        let query = with_version("retention", version_id)?;
        let answer = self.bodiless(Method::GET, Some(key), &query).await?;
        let body = String::from_utf8_lossy(&answer.body);
        // AWS says NoSuchObjectLockConfiguration; SeaweedFS ObjectLockConfigurationNotFoundError.
        if answer.status == StatusCode::NOT_FOUND
            && (body.contains("NoSuchObjectLockConfiguration")
                || body.contains("ObjectLockConfigurationNotFound"))
        {
            return Ok(None);
        }
        answer.ok("read the retention of", key)?;
        match (xml_text(&body, "Mode"), xml_text(&body, "RetainUntilDate")) {
            (None, None) => Ok(None),
            (Some(mode), Some(date)) => {
                let mode = LockMode::parse(mode).ok_or_else(|| {
                    backend(format!(
                        "the retention of `{key}` has the unknown mode `{mode}`"
                    ))
                })?;
                Ok(Some((mode, date.to_owned())))
            }
            _ => Err(backend(format!(
                "the retention of `{key}` names a mode or a date without the other: {body}"
            ))),
        }
    }

    /// Every version and delete marker under `prefix` (`GET ?versions&prefix=`, all pages).
    pub async fn list_versions(&self, prefix: &str) -> Result<Vec<VersionEntry>> {
        let mut entries = Vec::new();
        let mut markers: Option<(String, String)> = None;
        loop {
            let mut query = format!("versions&prefix={}", encode_query(prefix)?);
            if let Some((key, version)) = &markers {
                query.push_str(&format!(
                    "&key-marker={}&version-id-marker={}",
                    encode_query(key)?,
                    encode_query(version)?
                ));
            }
            let answer = self.bodiless(Method::GET, None, &query).await?;
            answer.ok("list the versions under", prefix)?;
            let body = String::from_utf8_lossy(&answer.body).into_owned();
            for (tag, delete_marker) in [("Version", false), ("DeleteMarker", true)] {
                for block in xml_blocks(&body, tag) {
                    let field = |name: &str| {
                        xml_text(block, name)
                            .map(xml_unescape)
                            .ok_or_else(|| Error::Backend {
                                store: "s3",
                                source: format!(
                                    "a version listing of `{prefix}` has a <{tag}> without <{name}>"
                                )
                                .into(),
                            })
                    };
                    entries.push(VersionEntry {
                        key: field("Key")?,
                        version_id: field("VersionId")?,
                        delete_marker,
                        is_latest: xml_text(block, "IsLatest") == Some("true"),
                    });
                }
            }
            if xml_text(&body, "IsTruncated") != Some("true") {
                return Ok(entries);
            }
            let next = (
                xml_text(&body, "NextKeyMarker").map(xml_unescape),
                xml_text(&body, "NextVersionIdMarker").map(xml_unescape),
            );
            match next {
                (Some(key), Some(version))
                    if markers.as_ref() != Some(&(key.clone(), version.clone())) =>
                {
                    markers = Some((key, version));
                }
                _ => {
                    return Err(Error::Backend {
                        store: "s3",
                        source: format!(
                            "the version listing of `{prefix}` is truncated without a usable next marker"
                        )
                        .into(),
                    });
                }
            }
        }
    }

    /// GETs one version of `key`; `None` if there is no such version.
    pub async fn get_version(&self, key: &str, version_id: &str) -> Result<Option<Bytes>> {
        let query = format!("versionId={}", encode_query(version_id)?);
        let answer = self.bodiless(Method::GET, Some(key), &query).await?;
        if answer.no_such_object() {
            return Ok(None);
        }
        answer.ok("read a version of", key)?;
        Ok(Some(answer.body))
    }

    /// Sets the retention of a version of `key` (`PUT ?retention[&versionId=]`). S3 refuses to
    /// shorten a COMPLIANCE retention (or a GOVERNANCE one without bypass): that answer is an
    /// error naming the key; callers only ever extend.
    pub async fn put_retention(
        &self,
        key: &str,
        version_id: Option<&str>,
        mode: LockMode,
        until: Timestamp,
    ) -> Result<()> {
        self.put_retention_with(key, version_id, mode, until, false)
            .await
    }

    /// [`SignedClient::put_retention`] with `x-amz-bypass-governance-retention: true`: what an
    /// operator holding `s3:BypassGovernanceRetention` can do to a GOVERNANCE retention
    /// (shorten or remove it). The store never sends it; for tools and tests that show what
    /// drift detection finds.
    pub async fn put_retention_bypassing_governance(
        &self,
        key: &str,
        version_id: Option<&str>,
        mode: LockMode,
        until: Timestamp,
    ) -> Result<()> {
        self.put_retention_with(key, version_id, mode, until, true)
            .await
    }

    async fn put_retention_with(
        &self,
        key: &str,
        version_id: Option<&str>,
        mode: LockMode,
        until: Timestamp,
        bypass: bool,
    ) -> Result<()> {
        let body = format!(
            "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>{}</Mode><RetainUntilDate>{until}</RetainUntilDate></Retention>",
            mode.as_str()
        );
        let mut headers = HeaderMap::new();
        if bypass {
            headers.insert(
                HeaderName::from_static("x-amz-bypass-governance-retention"),
                HeaderValue::from_static("true"),
            );
        }
        self.put_subresource_with(key, version_id, "retention", body, headers)
            .await
    }

    /// Sets or clears the legal hold of a version of `key` (`PUT ?legal-hold[&versionId=]`).
    pub async fn put_legal_hold(
        &self,
        key: &str,
        version_id: Option<&str>,
        on: bool,
    ) -> Result<()> {
        let body = format!(
            "<LegalHold xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Status>{}</Status></LegalHold>",
            if on { "ON" } else { "OFF" }
        );
        self.put_subresource(key, version_id, "legal-hold", body)
            .await
    }

    /// Whether a version of `key` has its legal hold on (`GET ?legal-hold`); `false` when it
    /// has none.
    pub async fn legal_hold(&self, key: &str, version_id: Option<&str>) -> Result<bool> {
        let query = with_version("legal-hold", version_id)?;
        let answer = self.bodiless(Method::GET, Some(key), &query).await?;
        let body = String::from_utf8_lossy(&answer.body);
        if answer.status == StatusCode::NOT_FOUND
            && (body.contains("NoSuchObjectLegalHold")
                || body.contains("NoSuchObjectLockConfiguration")
                || body.contains("ObjectLockConfigurationNotFound"))
        {
            return Ok(false);
        }
        answer.ok("read the legal hold of", key)?;
        Ok(xml_text(&body, "Status") == Some("ON"))
    }

    async fn put_subresource(
        &self,
        key: &str,
        version_id: Option<&str>,
        subresource: &str,
        body: String,
    ) -> Result<()> {
        self.put_subresource_with(key, version_id, subresource, body, HeaderMap::new())
            .await
    }

    async fn put_subresource_with(
        &self,
        key: &str,
        version_id: Option<&str>,
        subresource: &str,
        body: String,
        mut headers: HeaderMap,
    ) -> Result<()> {
        let md5 = base64::engine::general_purpose::STANDARD
            .encode(<md5::Md5 as md5::Digest>::digest(body.as_bytes()));
        headers.insert(HeaderName::from_static("content-md5"), header_value(&md5)?);
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/xml"),
        );
        let query = with_version(subresource, version_id)?;
        let answer = self
            .send(Method::PUT, Some(key), &query, headers, Bytes::from(body))
            .await?;
        answer.ok(&format!("set the {subresource} of"), key)
    }

    /// A signed DELETE of `key` (the current version, or `version_id`); returns the status.
    /// For tests and tools that check what the bucket refuses.
    pub async fn delete(&self, key: &str, version_id: Option<&str>) -> Result<StatusCode> {
        let query = version_id
            .map(|v| encode_query(v).map(|v| format!("versionId={v}")))
            .transpose()?
            .unwrap_or_default();
        let answer = self.bodiless(Method::DELETE, Some(key), &query).await?;
        Ok(answer.status)
    }

    /// A request without headers or body of its own.
    async fn bodiless(&self, method: Method, key: Option<&str>, query: &str) -> Result<Answer> {
        self.send(method, key, query, HeaderMap::new(), Bytes::new())
            .await
    }

    async fn send(
        &self,
        method: Method,
        key: Option<&str>,
        query: &str,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<Answer> {
        let mut url = self.base.clone();
        if let Some(key) = key {
            url.push('/');
            url.push_str(&encode_key(key)?);
        } else {
            url.push('/');
        }
        if !query.is_empty() {
            url.push('?');
            url.push_str(query);
        }
        let what = || format!("{method} {url}");
        let mut attempt = 0;
        loop {
            attempt += 1;
            let credential = self
                .store
                .credentials()
                .get_credential()
                .await
                .map_err(|e| Error::Config(format!("S3 credentials: {e}")))?;
            let mut request = http::Request::builder()
                .method(method.clone())
                .uri(&url)
                .body(HttpRequestBody::from(body.clone()))
                .map_err(|e| Error::InvalidInput(format!("S3 request {}: {e}", what())))?;
            *request.headers_mut() = headers.clone();
            AwsAuthorizer::new(&credential, "s3", &self.region)
                .try_authorize(&mut request, None)
                .map_err(|e| Error::Config(format!("signing {}: {e}", what())))?;
            let retry = |attempt: u32| attempt < ATTEMPTS;
            match self.http.execute(request).await {
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    let body = match response.into_body().bytes().await {
                        Ok(body) => body,
                        Err(_) if retry(attempt) => {
                            backoff(attempt).await;
                            continue;
                        }
                        Err(e) => {
                            return Err(backend(format!("reading the answer to {}: {e}", what())));
                        }
                    };
                    if (status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS)
                        && retry(attempt)
                    {
                        backoff(attempt).await;
                        continue;
                    }
                    return Ok(Answer {
                        status,
                        headers,
                        body,
                    });
                }
                Err(_) if retry(attempt) => backoff(attempt).await,
                Err(e) => return Err(backend(format!("{}: {e}", what()))),
            }
        }
    }
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    /// A 404 for the object (or version), not for the bucket: a wrong bucket name is an
    /// error, never "nothing published".
    fn no_such_object(&self) -> bool {
        self.status == StatusCode::NOT_FOUND
            && !String::from_utf8_lossy(&self.body).contains("NoSuchBucket")
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    /// `Ok` for a 2xx answer, else an error naming what was done and S3's `Code`/`Message`.
    fn ok(&self, what: &str, subject: &str) -> Result<()> {
        if self.status.is_success() {
            return Ok(());
        }
        let body = String::from_utf8_lossy(&self.body);
        let code = xml_text(&body, "Code").unwrap_or("");
        let message = xml_text(&body, "Message").unwrap_or("");
        let reason = match (code, message) {
            ("", "") => String::new(),
            (code, "") => format!(": {code}"),
            (code, message) => format!(": {code}: {message}"),
        };
        let detail = format!(
            "cannot {what} `{subject}`: S3 answered {}{reason}",
            self.status
        );
        Err(match self.status {
            StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => Error::Config(detail),
            _ => backend(detail),
        })
    }
}

fn backend(detail: String) -> Error {
    Error::Backend {
        store: "s3",
        source: detail.into(),
    }
}

/// Waits before the next attempt (100 ms, 200 ms, 400 ms). Retries are silent, like
/// object_store's; the final failure carries its cause.
async fn backoff(attempt: u32) {
    tokio::time::sleep(Duration::from_millis(100u64 << attempt.min(6))).await;
}

/// `subresource` alone, or `subresource&versionId=…` (the query canonicalisation sorts them).
fn with_version(subresource: &str, version_id: Option<&str>) -> Result<String> {
    Ok(match version_id {
        Some(version) => format!("{subresource}&versionId={}", encode_query(version)?),
        None => subresource.to_owned(),
    })
}

fn header_value(text: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(text)
        .map_err(|_| Error::InvalidInput(format!("`{text}` is not a valid HTTP header value")))
}

/// Object keys are built by the store from fixed parts and numbers; anything outside the
/// unreserved set is percent-encoded (the same bytes SigV4 canonicalises).
fn encode_key(key: &str) -> Result<String> {
    if key.is_empty()
        || key
            .split('/')
            .any(|segment| matches!(segment, "" | "." | ".."))
    {
        return Err(Error::InvalidInput(format!(
            "`{key}` is not an S3 object key this store writes (empty, `.` or `..` segments)"
        )));
    }
    let mut out = String::with_capacity(key.len());
    for byte in key.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    Ok(out)
}

/// Percent-encodes a query value (everything outside the unreserved set, `/` included).
fn encode_query(value: &str) -> Result<String> {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    Ok(out)
}

/// Every `<tag>…</tag>` block's inner text, in order.
fn xml_blocks<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut blocks = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else { break };
        blocks.push(&after[..end]);
        rest = &after[end + close.len()..];
    }
    blocks
}

/// Decodes the five predefined XML entities.
fn xml_unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// The text of the first `<tag>…</tag>` in an S3 XML answer (S3's answers used here are flat
/// enough that this is exact: no tag is nested in one of the same name).
fn xml_text<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_text_reads_flat_answers() {
        let xml = "<?xml version=\"1.0\"?><ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>COMPLIANCE</Mode><Days>3</Days></DefaultRetention></Rule></ObjectLockConfiguration>";
        assert_eq!(xml_text(xml, "ObjectLockEnabled"), Some("Enabled"));
        assert_eq!(xml_text(xml, "Mode"), Some("COMPLIANCE"));
        assert_eq!(xml_text(xml, "Days"), Some("3"));
        assert_eq!(xml_text(xml, "Years"), None);
    }

    #[test]
    fn keys_are_encoded_and_checked() {
        assert_eq!(encode_key("a/b-1.checkpoint").unwrap(), "a/b-1.checkpoint");
        assert_eq!(encode_key("a b+c").unwrap(), "a%20b%2Bc");
        assert!(encode_key("").is_err());
        assert!(encode_key("/abs").is_err());
        assert!(encode_key("../x/key").is_err());
        assert!(encode_key("a//b").is_err());
        assert!(encode_key("a/./b").is_err());
        assert_eq!(encode_query("a/b c").unwrap(), "a%2Fb%20c");
    }

    #[test]
    fn version_listings_are_read_block_by_block() {
        let xml = "<ListVersionsResult><IsTruncated>false</IsTruncated><Version><Key>c/1.checkpoint</Key><VersionId>v1</VersionId><IsLatest>false</IsLatest></Version><DeleteMarker><Key>c/1.checkpoint</Key><VersionId>m&amp;1</VersionId><IsLatest>true</IsLatest></DeleteMarker></ListVersionsResult>";
        assert_eq!(xml_blocks(xml, "Version").len(), 1);
        let marker = xml_blocks(xml, "DeleteMarker")[0];
        assert_eq!(
            xml_text(marker, "VersionId").map(xml_unescape).as_deref(),
            Some("m&1")
        );
    }
}
