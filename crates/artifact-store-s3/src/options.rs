//! Configuration and builder of the S3 backend: [`S3Options`].

use std::time::Duration;

use artifact_core::config::BlobsConfig;
use artifact_core::{Error, Result};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path;
use object_store::{ClientConfigKey, ClientOptions, RetryConfig};

use crate::S3BlobStore;

/// S3's smallest allowed part (every part but the last must be at least this big).
pub const MIN_PART_SIZE: usize = 5 << 20;
/// S3's largest allowed part.
pub const MAX_PART_SIZE: usize = 5 << 30;
/// The default multipart part size: 16 MiB (a 1 GiB blob is 64 parts; 10,000 parts allow
/// blobs up to 156 GiB).
pub const DEFAULT_PART_SIZE: usize = 16 << 20;
/// The default number of parts uploaded concurrently while the next one fills.
pub const DEFAULT_UPLOAD_CONCURRENCY: usize = 2;
/// The largest object a single server-side `CopyObject` may copy on AWS (5 GiB). Larger staged
/// blobs are published by streaming them into a multipart upload of the final key.
pub const DEFAULT_COPY_LIMIT: u64 = 5 << 30;
/// Environment variable that overrides the part size (in MiB) for [`S3Options::from_config`].
pub const PART_SIZE_ENV: &str = "ARTIFACTSTORE_S3_PART_SIZE_MIB";

/// How to open an [`S3BlobStore`]: bucket, key prefix, endpoint, credentials and upload
/// tuning. Built like object_store's `AmazonS3Builder` (`from_env`, `with_*`).
///
/// ```
/// use artifact_store_s3::S3Options;
///
/// let options = S3Options::new("artifacts")
///     .with_endpoint("http://127.0.0.1:8333")
///     .with_allow_http(true)
///     .with_region("us-east-1")
///     .with_credentials("AKIDEXAMPLE", "secret")
///     .with_prefix("team-a/")
///     .with_part_size(8 << 20);
/// assert_eq!(options.prefix(), "team-a");
/// ```
#[derive(Debug, Clone)]
pub struct S3Options {
    builder: AmazonS3Builder,
    bucket: String,
    /// Normalised: no leading or trailing `/`; empty for "no prefix".
    prefix: String,
    endpoint: Option<String>,
    allow_http: Option<bool>,
    part_size: usize,
    upload_concurrency: usize,
    copy_limit: u64,
    retry: RetryConfig,
    check_retry: RetryConfig,
    /// Object Lock mode and permanent horizon; `None` = off.
    object_lock: Option<(artifact_core::blob::LockMode, artifact_core::time::Period)>,
}

impl S3Options {
    /// Options for `bucket` with nothing taken from the environment: credentials, region and
    /// endpoint must be set with the `with_*` methods (region defaults to `us-east-1`).
    pub fn new(bucket: impl Into<String>) -> Self {
        Self::with_builder(AmazonS3Builder::new(), bucket.into())
    }

    /// Options for `bucket` that read the usual AWS environment: `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION` / `AWS_DEFAULT_REGION`,
    /// `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`, `AWS_VIRTUAL_HOSTED_STYLE_REQUEST`, web identity
    /// (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`), ECS container credentials; without
    /// explicit keys the EC2 instance metadata service is asked. `with_*` calls override it.
    pub fn from_env(bucket: impl Into<String>) -> Self {
        Self::with_builder(AmazonS3Builder::from_env(), bucket.into())
    }

    fn with_builder(builder: AmazonS3Builder, bucket: String) -> Self {
        let builder = builder.with_bucket_name(bucket.clone());
        Self {
            builder,
            bucket,
            prefix: String::new(),
            endpoint: None,
            allow_http: None,
            part_size: DEFAULT_PART_SIZE,
            upload_concurrency: DEFAULT_UPLOAD_CONCURRENCY,
            copy_limit: DEFAULT_COPY_LIMIT,
            retry: RetryConfig::default(),
            check_retry: RetryConfig {
                max_retries: 2,
                retry_timeout: Duration::from_secs(10),
                ..RetryConfig::default()
            },
            object_lock: None,
        }
    }

    /// Storage-enforced retention (ADR 0015): every blob a live package references is
    /// retained in `mode` until at least its package's expiry, and held while the package is;
    /// a permanent package's blobs are retained `horizon` ahead. The bucket must have Object
    /// Lock enabled (checked at start-up). `None` turns it off (the default).
    pub fn with_object_lock(
        mut self,
        lock: Option<(artifact_core::blob::LockMode, artifact_core::time::Period)>,
    ) -> Self {
        self.object_lock = lock;
        self
    }

    /// Parses `[blobs] object_lock` and `object_lock_horizon`.
    pub fn parse_object_lock(
        mode: &str,
        horizon: &str,
    ) -> Result<Option<(artifact_core::blob::LockMode, artifact_core::time::Period)>> {
        use artifact_core::blob::LockMode;
        let mode = match mode {
            "off" => return Ok(None),
            "compliance" => LockMode::Compliance,
            "governance" => LockMode::Governance,
            other => {
                return Err(Error::Config(format!(
                    "[blobs] object_lock = `{other}`: use off, governance or compliance"
                )));
            }
        };
        let horizon: artifact_core::time::Period = horizon.parse().map_err(|e| {
            Error::Config(format!("[blobs] object_lock_horizon = `{horizon}`: {e}"))
        })?;
        if horizon == artifact_core::time::Period::Permanent {
            return Err(Error::Config(
                "[blobs] object_lock_horizon must be a finite period such as 100y (S3 needs a date)"
                    .to_owned(),
            ));
        }
        Ok(Some((mode, horizon)))
    }

    /// Options from the `[blobs]` section (`backend = "s3"`): `bucket` (required), `prefix`,
    /// `endpoint`, `region`, `allow_http`; credentials and everything else from the
    /// environment ([`S3Options::from_env`]). The part size may be overridden with
    /// `ARTIFACTSTORE_S3_PART_SIZE_MIB`.
    pub fn from_config(config: &BlobsConfig) -> Result<Self> {
        if config.backend != "s3" {
            return Err(Error::Config(format!(
                "[blobs] backend is `{}`, not `s3`",
                config.backend
            )));
        }
        let bucket = config
            .bucket
            .as_deref()
            .filter(|bucket| !bucket.is_empty())
            .ok_or_else(|| {
                Error::Config("[blobs] backend = \"s3\" needs `bucket = \"NAME\"`".to_owned())
            })?;
        let mut options = Self::from_env(bucket).with_location(
            config.prefix.as_deref(),
            config.endpoint.as_deref(),
            config.region.as_deref(),
            config.allow_http,
        );
        if let Ok(text) = std::env::var(PART_SIZE_ENV) {
            let mib: usize = text.trim().parse().map_err(|_| {
                Error::Config(format!(
                    "{PART_SIZE_ENV}=`{text}` is not a whole number of MiB"
                ))
            })?;
            options = options.with_part_size(mib.saturating_mul(1 << 20));
        }
        options = options.with_object_lock(Self::parse_object_lock(
            &config.object_lock,
            &config.object_lock_horizon,
        )?);
        options.validate()?;
        Ok(options)
    }

    /// Keys live under `<prefix>/blobs/blake3/…` and `<prefix>/staging/…`. Leading and
    /// trailing `/` are ignored; empty means the bucket root.
    pub fn with_prefix(mut self, prefix: impl AsRef<str>) -> Self {
        self.prefix = prefix.as_ref().trim_matches('/').to_owned();
        self
    }

    /// The endpoint URL of an S3-compatible server (`http://127.0.0.1:8333`); AWS when unset.
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        let endpoint = endpoint.into();
        self.builder = self.builder.with_endpoint(endpoint.clone());
        self.endpoint = Some(endpoint);
        self
    }

    /// The region (`us-east-1` when unset and not in the environment). Servers such as Garage
    /// check it against their own.
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.builder = self.builder.with_region(region);
        self
    }

    /// Allows `http://` endpoints (off by default: credentials would travel in clear).
    pub fn with_allow_http(mut self, allow_http: bool) -> Self {
        self.builder = self.builder.with_allow_http(allow_http);
        self.allow_http = Some(allow_http);
        self
    }

    /// Static credentials (instead of the environment / instance role).
    pub fn with_credentials(
        mut self,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
    ) -> Self {
        self.builder = self
            .builder
            .with_access_key_id(access_key_id)
            .with_secret_access_key(secret_access_key);
        self
    }

    /// A session token to go with temporary credentials.
    pub fn with_session_token(mut self, token: impl Into<String>) -> Self {
        self.builder = self.builder.with_token(token);
        self
    }

    /// `true`: `https://BUCKET.endpoint/key` (virtual-hosted style, what AWS prefers);
    /// `false` (default): `https://endpoint/BUCKET/key` (path style, what most self-hosted
    /// servers — SeaweedFS, MinIO, Garage — expect).
    pub fn with_virtual_hosted_style(mut self, virtual_hosted: bool) -> Self {
        self.builder = self
            .builder
            .with_virtual_hosted_style_request(virtual_hosted);
        self
    }

    /// Multipart part size in bytes (default 16 MiB; S3 allows 5 MiB to 5 GiB). Blobs up to one
    /// part are uploaded with a single PUT; a staged write buffers at most one part plus the
    /// parts in flight. All parts but the last have exactly this size (R2 requires it).
    pub fn with_part_size(mut self, bytes: usize) -> Self {
        self.part_size = bytes;
        self
    }

    /// How many parts of one blob upload concurrently (default 2). Memory per staged write is
    /// about `(concurrency + 1) × part size`.
    pub fn with_upload_concurrency(mut self, parts: usize) -> Self {
        self.upload_concurrency = parts.max(1);
        self
    }

    /// Staged blobs up to this size are published with one server-side copy; larger ones are
    /// streamed from the staging key into a multipart upload of the final key (AWS's
    /// `CopyObject` stops at 5 GiB, the default).
    pub fn with_copy_limit(mut self, bytes: u64) -> Self {
        self.copy_limit = bytes;
        self
    }

    /// Retries with exponential backoff for transient failures (connection errors, 5xx,
    /// throttling) of every request. object_store's default: 10 retries within 3 minutes.
    pub fn with_retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// The retry policy of [`BlobStore::check`](artifact_core::blob::BlobStore::check) (short, so
    /// that start-up and `readyz` fail quickly on a dead endpoint): 2 retries within 10 s.
    pub fn with_check_retry(mut self, retry: RetryConfig) -> Self {
        self.check_retry = retry;
        self
    }

    /// HTTP client settings (timeouts, proxies, certificates). Replaces the client options
    /// wholesale, so call it before [`S3Options::with_allow_http`].
    pub fn with_client_options(mut self, options: ClientOptions) -> Self {
        self.builder = self.builder.with_client_options(options);
        if let Some(allow_http) = self.allow_http {
            self.builder = self.builder.with_allow_http(allow_http);
        }
        self
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The normalised key prefix (empty for none).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The multipart part size in bytes.
    pub fn part_size(&self) -> usize {
        self.part_size
    }

    /// The endpoint as shown in messages (`AWS (region)` when none is set).
    pub fn endpoint_display(&self) -> String {
        match &self.endpoint {
            Some(endpoint) => endpoint.clone(),
            None => match self.builder.get_config_value(&AmazonS3ConfigKey::Endpoint) {
                Some(endpoint) => endpoint,
                None => format!(
                    "AWS S3 ({})",
                    self.builder
                        .get_config_value(&AmazonS3ConfigKey::Region)
                        .unwrap_or_else(|| "us-east-1".to_owned())
                ),
            },
        }
    }

    fn validate(&self) -> Result<()> {
        if self.bucket.is_empty() {
            return Err(Error::Config("the S3 bucket name is empty".to_owned()));
        }
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&self.part_size) {
            return Err(Error::Config(format!(
                "S3 part size {} bytes is outside what S3 allows (5 MiB to 5 GiB)",
                self.part_size
            )));
        }
        if !self.prefix.is_empty() {
            Path::parse(&self.prefix).map_err(|e| {
                Error::Config(format!(
                    "[blobs] prefix `{}` is not valid: {e}",
                    self.prefix
                ))
            })?;
        }
        let endpoint = self.endpoint_display();
        let allow_http = self.allow_http.unwrap_or_else(|| {
            self.builder
                .get_config_value(&AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp))
                .is_some_and(|value| value.eq_ignore_ascii_case("true"))
        });
        if endpoint.starts_with("http://") && !allow_http {
            return Err(Error::Config(format!(
                "the S3 endpoint {endpoint} is plain http: set `allow_http = true` under [blobs] \
                 (or use https)"
            )));
        }
        Ok(())
    }

    /// Applies the optional location settings of a config section (`prefix`, `endpoint`,
    /// `region`, `allow_http`); `None` keeps what the environment gave.
    pub(crate) fn with_location(
        mut self,
        prefix: Option<&str>,
        endpoint: Option<&str>,
        region: Option<&str>,
        allow_http: Option<bool>,
    ) -> Self {
        if let Some(prefix) = prefix {
            self = self.with_prefix(prefix);
        }
        if let Some(endpoint) = endpoint {
            self = self.with_endpoint(endpoint);
        }
        if let Some(region) = region {
            self = self.with_region(region);
        }
        if let Some(allow_http) = allow_http {
            self = self.with_allow_http(allow_http);
        }
        self
    }

    /// A client for signed requests object_store has no call for (Object Lock, conditional
    /// creates with lock headers) against this bucket, with the same endpoint, credentials
    /// and `allow_http`. No request is made.
    pub fn signed_client(&self) -> Result<crate::signed::SignedClient> {
        self.validate()?;
        let store = self
            .builder
            .clone()
            .with_retry(self.check_retry.clone())
            .build()
            .map_err(|e| Error::Config(format!("S3 client: {e}")))?;
        let config = |key| self.builder.get_config_value(&key);
        let region = config(AmazonS3ConfigKey::Region).unwrap_or_else(|| "us-east-1".to_owned());
        let virtual_hosted = config(AmazonS3ConfigKey::VirtualHostedStyleRequest)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let endpoint = self
            .endpoint
            .clone()
            .or_else(|| config(AmazonS3ConfigKey::Endpoint));
        let bucket = &self.bucket;
        // The bucket URL object_store builds (0.14 `AmazonS3Builder::build`): with
        // virtual-hosted requests the endpoint, when given, already names the bucket.
        let base = match (
            endpoint.as_deref().map(|e| e.trim_end_matches('/')),
            virtual_hosted,
        ) {
            (Some(endpoint), true) => endpoint.to_owned(),
            (Some(endpoint), false) => format!("{endpoint}/{bucket}"),
            (None, true) => format!("https://{bucket}.s3.{region}.amazonaws.com"),
            (None, false) => format!("https://s3.{region}.amazonaws.com/{bucket}"),
        };
        let allow_http = self.allow_http.unwrap_or_else(|| {
            config(AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp))
                .is_some_and(|value| value.eq_ignore_ascii_case("true"))
        });
        crate::signed::SignedClient::new(
            std::sync::Arc::new(store),
            region,
            base,
            bucket.clone(),
            allow_http,
        )
    }

    /// Builds the store (no request is made; call
    /// [`BlobStore::check`](artifact_core::blob::BlobStore::check) to test the connection).
    pub fn build(self) -> Result<S3BlobStore> {
        self.validate()?;
        let client = self
            .builder
            .clone()
            .with_retry(self.retry.clone())
            .build()
            .map_err(|e| Error::Config(format!("S3 client: {e}")))?;
        let probe = self
            .builder
            .clone()
            .with_retry(self.check_retry.clone())
            .build()
            .map_err(|e| Error::Config(format!("S3 client: {e}")))?;
        let endpoint = self.endpoint_display();
        let signed = match self.object_lock {
            Some(_) => Some(self.signed_client()?),
            None => None,
        };
        Ok(S3BlobStore::from_parts(crate::Parts {
            object_lock: self.object_lock,
            signed,
            client,
            probe,
            bucket: self.bucket,
            endpoint,
            prefix: self.prefix,
            part_size: self.part_size,
            upload_concurrency: self.upload_concurrency,
            copy_limit: self.copy_limit,
        }))
    }
}
