//! Object stores (S3 and S3-compatible servers, Google Cloud Storage, read-only HTTP): a URL
//! (`s3://bucket/key`, `gs://bucket/key`, `https://host/path`) opened as a zarrs store, so every
//! source, listing and output goes through the same [`Node`](crate::node::Node) and
//! [`AtomicStore`](crate::store::AtomicStore) as a local path does.
//!
//! The stores are `object_store`'s, through zarrs' own adapter crate `zarrs_object_store`
//! (`AsyncObjectStore`), made blocking by zarrs' `AsyncToSyncStorageAdapter` over one small
//! tokio runtime per process (made again in a forked child). Credentials and endpoints are read
//! the way the cloud tools read them (docs/remote.md): the `AWS_*` environment (keys, session
//! token, region, `AWS_ENDPOINT_URL`), the shared credentials and config files of `AWS_PROFILE`
//! (or `default`), web identity and instance metadata; `GOOGLE_APPLICATION_CREDENTIALS` for GCS;
//! [`StoreOptions::anonymous`] for public buckets. Every error of a remote store is one line
//! that says what failed (no such bucket, access denied, cannot connect, ...).
//!
//! ```
//! use annomask::remote::{StoreUrl, Scheme};
//! let url = StoreUrl::parse("s3://janelia-cosem-datasets/jrc_hela-2/jrc_hela-2.zarr/")?.unwrap();
//! assert_eq!(url.scheme(), Scheme::S3);
//! assert_eq!(url.bucket(), "janelia-cosem-datasets");
//! assert_eq!(url.key(), "jrc_hela-2/jrc_hela-2.zarr");
//! assert_eq!(url.join("recon-1").as_str(), "s3://janelia-cosem-datasets/jrc_hela-2/jrc_hela-2.zarr/recon-1");
//! assert!(StoreUrl::parse("crop.zarr")?.is_none());
//! assert!(StoreUrl::parse("ftp://host/x").is_err());
//! # Ok::<(), annomask::error::StorageError>(())
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use zarrs::storage::byte_range::ByteRangeIterator;
use zarrs::storage::storage_adapter::async_to_sync::{
    AsyncToSyncBlockOn, AsyncToSyncStorageAdapter,
};
use zarrs::storage::{
    Bytes, ListableStorageTraits, MaybeBytesIterator, OffsetBytesIterator, ReadableStorageTraits,
    StorageError as ZarrsStorageError, StoreKey, StoreKeys, StoreKeysPrefixes, StorePrefix,
    WritableStorageTraits,
};
use zarrs_object_store::AsyncObjectStore;
use zarrs_object_store::object_store::{self, ClientOptions, ObjectStore, RetryConfig};

use crate::error::StorageError;

/// How remote stores are opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct StoreOptions {
    /// Send unsigned requests (public buckets; no credentials looked up). `--anonymous` on the
    /// command line, `anonymous=True` in Python.
    pub anonymous: bool,
}

impl StoreOptions {
    /// Options with anonymous access on or off.
    pub fn anonymous(anonymous: bool) -> Self {
        Self { anonymous }
    }
}

/// The kind of object store a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `s3://bucket/key` (AWS S3, or an S3-compatible server at `AWS_ENDPOINT_URL`).
    S3,
    /// `gs://bucket/key` (Google Cloud Storage).
    Gcs,
    /// `https://host/path` or `http://host/path`: read-only, no listing.
    Http,
}

/// An object-store URL split into its store (scheme and bucket, or for HTTP the origin) and the
/// key of the node in it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StoreUrl {
    scheme: Scheme,
    /// The bucket, or for HTTP the origin (`https://host:port`).
    bucket: String,
    /// The key, without leading or trailing `/`.
    key: String,
}

impl StoreUrl {
    /// The URL in `text`; `Ok(None)` if `text` is a local path or a `file://` URL; an error
    /// naming the scheme for a URL of another kind, or one without a bucket.
    pub fn parse(text: &str) -> Result<Option<StoreUrl>, StorageError> {
        let Some((scheme, rest)) = text.split_once("://") else {
            return Ok(None);
        };
        let valid = scheme
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c));
        if !valid {
            return Ok(None);
        }
        let unsupported = || StorageError::UnsupportedUrl {
            path: text.to_string(),
            scheme: scheme.to_string(),
        };
        let kind = match scheme.to_ascii_lowercase().as_str() {
            "file" => return Ok(None),
            "s3" | "s3a" => Scheme::S3,
            "gs" | "gcs" => Scheme::Gcs,
            "http" | "https" => Scheme::Http,
            _ => return Err(unsupported()),
        };
        let (host, key) = rest.split_once('/').unwrap_or((rest, ""));
        if host.is_empty() {
            return Err(StorageError::BadUrl {
                url: text.to_string(),
                problem: match kind {
                    Scheme::Http => "it names no host".into(),
                    _ => "it names no bucket".into(),
                },
            });
        }
        let bucket = match kind {
            Scheme::Http => format!("{}://{host}", scheme.to_ascii_lowercase()),
            _ => host.to_string(),
        };
        Ok(Some(StoreUrl {
            scheme: kind,
            bucket,
            key: key.trim_matches('/').to_string(),
        }))
    }

    /// The kind of store.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The bucket (for HTTP: the origin).
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key of the node in the bucket (no leading or trailing `/`).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The URL of the child `name`.
    pub fn join(&self, name: &str) -> StoreUrl {
        let name = name.trim_matches('/');
        let key = match (self.key.is_empty(), name.is_empty()) {
            (_, true) => self.key.clone(),
            (true, false) => name.to_string(),
            (false, false) => format!("{}/{name}", self.key),
        };
        StoreUrl {
            key,
            ..self.clone()
        }
    }

    /// The URL of the store's root (the bucket, or the HTTP origin).
    pub fn root(&self) -> StoreUrl {
        StoreUrl {
            key: String::new(),
            ..self.clone()
        }
    }

    /// The URL as text (`s3://bucket/key`).
    pub fn as_str(&self) -> String {
        let root = match self.scheme {
            Scheme::S3 => format!("s3://{}", self.bucket),
            Scheme::Gcs => format!("gs://{}", self.bucket),
            Scheme::Http => self.bucket.clone(),
        };
        match self.key.is_empty() {
            true => root,
            false => format!("{root}/{}", self.key),
        }
    }
}

/// Whether `text` is an object-store URL of a supported kind (what [`StoreUrl::parse`] reads
/// as one).
pub fn is_url(text: &str) -> bool {
    matches!(StoreUrl::parse(text), Ok(Some(_)))
}

impl std::fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.as_str())
    }
}

/// The nodes a URL with glob patterns in its key names (`s3://b/data/*.zarr/labels`): each
/// component with `*`, `?` or `[...]` is matched against the sub-prefixes that one listing of
/// the store finds there (no `**`), so no more keys are listed than the pattern reaches. Sorted.
///
/// Errors: [`StorageError::BadUrl`] for an invalid pattern or a store that cannot list (HTTP),
/// [`StorageError::Remote`] for a failed listing, [`StorageError::NotFound`] if nothing matches.
pub fn expand(pattern: &StoreUrl, options: StoreOptions) -> Result<Vec<StoreUrl>, StorageError> {
    let root = pattern.root();
    let store = open(&root, options)?;
    if !store.can_list() {
        return Err(StorageError::BadUrl {
            url: pattern.as_str(),
            problem: "an HTTP server cannot list keys: give each URL, not a pattern".into(),
        });
    }
    let mut current = vec![String::new()];
    for part in pattern.key.split('/').filter(|p| !p.is_empty()) {
        let join = |prefix: &str, name: &str| match prefix.is_empty() {
            true => name.to_string(),
            false => format!("{prefix}/{name}"),
        };
        if !part.contains(['*', '?', '[']) {
            current = current.iter().map(|c| join(c, part)).collect();
            continue;
        }
        let matcher = glob::Pattern::new(part).map_err(|e| StorageError::BadUrl {
            url: pattern.as_str(),
            problem: format!("invalid glob pattern {part}: {e}"),
        })?;
        let mut next = Vec::new();
        for prefix in &current {
            let listed = match prefix.is_empty() {
                true => StorePrefix::root(),
                false => {
                    StorePrefix::new(format!("{prefix}/")).map_err(|e| StorageError::BadUrl {
                        url: pattern.as_str(),
                        problem: e.to_string(),
                    })?
                }
            };
            let listing = store.list_dir(&listed).map_err(|e| StorageError::Remote {
                url: root.join(prefix).as_str(),
                problem: e.to_string(),
            })?;
            for sub in listing.prefixes() {
                let name = sub
                    .as_str()
                    .trim_end_matches('/')
                    .rsplit('/')
                    .next()
                    .unwrap_or("");
                if matcher.matches(name) {
                    next.push(join(prefix, name));
                }
            }
        }
        next.sort();
        current = next;
    }
    if current.is_empty() {
        return Err(StorageError::NotFound {
            path: format!("{pattern} (the pattern matches nothing)"),
        });
    }
    Ok(current.iter().map(|k| root.join(k)).collect())
}

/// Copies the local directory tree `dir` to the object store at `url` (one PUT per file, keys
/// below the URL's key as the files' paths below `dir`); returns how many files. For `demo
/// --out s3://...` and for setting up test data.
pub fn upload(
    dir: &std::path::Path,
    url: &StoreUrl,
    options: StoreOptions,
) -> Result<usize, StorageError> {
    let store = open(url, options)?;
    let fail = |what: String, problem: String| StorageError::Write {
        path: url.as_str(),
        what,
        message: crate::error::Cause::text(problem),
    };
    let mut pending = vec![dir.to_path_buf()];
    let mut count = 0;
    while let Some(at) = pending.pop() {
        let entries =
            std::fs::read_dir(&at).map_err(|e| fail(at.display().to_string(), e.to_string()))?;
        for entry in entries {
            let path = entry
                .map_err(|e| fail(at.display().to_string(), e.to_string()))?
                .path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            let relative = path.strip_prefix(dir).unwrap_or(&path);
            let key = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            let bytes = std::fs::read(&path).map_err(|e| fail(key.clone(), e.to_string()))?;
            let store_key =
                StoreKey::new(key.as_str()).map_err(|e| fail(key.clone(), e.to_string()))?;
            store
                .set(&store_key, bytes.into())
                .map_err(|e| fail(key.clone(), e.to_string()))?;
            count += 1;
        }
    }
    Ok(count)
}

/// Requests a region's read keeps in flight on an object store ([`io_pool`]).
pub const IO_THREADS: usize = 16;

/// The thread pool that reads the chunks of one region from an object store: [`IO_THREADS`]
/// threads, mostly waiting on requests, so the chunks of a region (a feeder ROI across chunk
/// borders) are fetched together rather than two at a time on a 2-core pool. One per process
/// (made again in a forked child).
pub fn io_pool() -> &'static rayon::ThreadPool {
    static POOL: Mutex<Option<(u32, &'static rayon::ThreadPool)>> = Mutex::new(None);
    crate::threads::per_process(&POOL, || {
        rayon::ThreadPoolBuilder::new()
            .num_threads(IO_THREADS)
            .thread_name(|i| format!("annomask-fetch-{i}"))
            .build()
            .expect("an I/O thread pool starts")
    })
}

/// Runs the object stores' futures: one multi-threaded tokio runtime per process, made on first
/// use and made again in a forked child (a runtime's threads do not survive `fork`; the
/// parent's runtime is left alone, never dropped in the child).
#[derive(Clone, Copy, Debug)]
pub struct BlockOn;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: Mutex<Option<(u32, &'static tokio::runtime::Runtime)>> = Mutex::new(None);
    crate::threads::per_process(&RUNTIME, || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("annomask-io")
            .enable_all()
            .build()
            .expect("a tokio runtime starts")
    })
}

impl AsyncToSyncBlockOn for BlockOn {
    fn block_on<F: core::future::Future>(&self, future: F) -> F::Output {
        runtime().block_on(future)
    }
}

type Adapter = AsyncToSyncStorageAdapter<AsyncObjectStore<Arc<dyn ObjectStore>>, BlockOn>;

/// A blocking zarrs store over an object store: reads, listings and writes, each error turned
/// into one line that says what failed ([`describe_error`]). Fork-safe: a forked child (a
/// PyTorch DataLoader worker) gets a client of its own on first use, as the parent's connections
/// and runtime threads are not its to use.
pub struct RemoteStore {
    /// The store's root (its key is the prefix of every key of the store).
    url: StoreUrl,
    options: StoreOptions,
    /// The client and the process it was made in.
    client: Mutex<(u32, Arc<Client>)>,
}

/// The object store of one process, and zarrs' blocking adapter over it.
struct Client {
    adapter: Adapter,
    /// The object store itself, for whole-object GETs (no `Range` header: static HTTP servers
    /// that ignore ranges serve them too).
    object: Arc<dyn ObjectStore>,
}

impl std::fmt::Debug for RemoteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteStore")
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

impl RemoteStore {
    /// Whether the store can list keys (HTTP servers cannot).
    pub fn can_list(&self) -> bool {
        self.url.scheme != Scheme::Http
    }

    /// This process's client (made anew in a forked child).
    fn client(&self) -> Result<Arc<Client>, ZarrsStorageError> {
        let pid = std::process::id();
        let mut slot = self.client.lock().unwrap_or_else(|e| e.into_inner());
        if slot.0 != pid {
            let client = make_client(&self.url, self.options)
                .map_err(|e| ZarrsStorageError::Other(e.to_string()))?;
            *slot = (pid, Arc::new(client));
        }
        Ok(slot.1.clone())
    }
}

/// The store rooted at `url` (keys are relative to the URL's key); stores of one bucket share
/// their connection pool.
///
/// Errors: [`StorageError::BadUrl`] for an unusable URL or configuration (named, with what
/// `object_store` said).
pub fn open(url: &StoreUrl, options: StoreOptions) -> Result<Arc<RemoteStore>, StorageError> {
    let client = make_client(url, options)?;
    Ok(Arc::new(RemoteStore {
        url: url.clone(),
        options,
        client: Mutex::new((std::process::id(), Arc::new(client))),
    }))
}

fn make_client(url: &StoreUrl, options: StoreOptions) -> Result<Client, StorageError> {
    let bucket = bucket_store(url, options)?;
    let object: Arc<dyn ObjectStore> = match url.key.is_empty() {
        true => bucket,
        false => Arc::new(object_store::prefix::PrefixStore::new(
            bucket,
            url.key.as_str(),
        )),
    };
    Ok(Client {
        adapter: AsyncToSyncStorageAdapter::new(
            Arc::new(AsyncObjectStore::new(object.clone())),
            BlockOn,
        ),
        object,
    })
}

/// The object store of `url`'s bucket, made once per process, bucket and options.
fn bucket_store(
    url: &StoreUrl,
    options: StoreOptions,
) -> Result<Arc<dyn ObjectStore>, StorageError> {
    type Key = (u32, Scheme, String, StoreOptions);
    static STORES: OnceLock<Mutex<HashMap<Key, Arc<dyn ObjectStore>>>> = OnceLock::new();
    let key = (std::process::id(), url.scheme, url.bucket.clone(), options);
    let stores = STORES.get_or_init(Default::default);
    if let Some(store) = stores.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(store.clone());
    }
    let store = build(url, options).map_err(|e| StorageError::BadUrl {
        url: url.as_str(),
        problem: one_line(&e.to_string()),
    })?;
    stores
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, store.clone());
    Ok(store)
}

/// Retries: a few, within seconds, so a wrong endpoint fails a run in seconds, not minutes.
fn retry() -> RetryConfig {
    RetryConfig {
        max_retries: 4,
        retry_timeout: Duration::from_secs(30),
        ..RetryConfig::default()
    }
}

fn client_options(allow_http: bool) -> ClientOptions {
    ClientOptions::new()
        .with_allow_http(allow_http)
        .with_connect_timeout(Duration::from_secs(10))
        .with_timeout(Duration::from_secs(120))
        // Many requests in flight: one per reader and decoder thread.
        .with_pool_max_idle_per_host(64)
}

fn build(url: &StoreUrl, options: StoreOptions) -> object_store::Result<Arc<dyn ObjectStore>> {
    match url.scheme {
        Scheme::S3 => {
            use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
            let mut builder = AmazonS3Builder::from_env();
            // The shared files of AWS_PROFILE (or `default`) fill what the environment leaves
            // unset, as the AWS CLI and boto3 do.
            for (key, value) in aws_profile::settings() {
                if builder.get_config_value(&key).is_none() {
                    builder = builder.with_config(key, value);
                }
            }
            let endpoint = builder.get_config_value(&AmazonS3ConfigKey::Endpoint);
            let allow_http = endpoint
                .as_deref()
                .is_some_and(|e| e.starts_with("http://"));
            if builder
                .get_config_value(&AmazonS3ConfigKey::Region)
                .is_none()
                && builder
                    .get_config_value(&AmazonS3ConfigKey::DefaultRegion)
                    .is_none()
            {
                builder = builder.with_region("us-east-1");
            }
            let store = builder
                .with_bucket_name(&url.bucket)
                .with_skip_signature(options.anonymous)
                .with_client_options(client_options(allow_http))
                .with_retry(retry())
                .build()?;
            Ok(Arc::new(store))
        }
        Scheme::Gcs => {
            use object_store::gcp::GoogleCloudStorageBuilder;
            let store = GoogleCloudStorageBuilder::from_env()
                .with_bucket_name(&url.bucket)
                .with_skip_signature(options.anonymous)
                .with_client_options(client_options(false))
                .with_retry(retry())
                .build()?;
            Ok(Arc::new(store))
        }
        Scheme::Http => {
            let store = object_store::http::HttpBuilder::new()
                .with_url(&url.bucket)
                .with_client_options(client_options(url.bucket.starts_with("http://")))
                .with_retry(retry())
                .build()?;
            Ok(Arc::new(store))
        }
    }
}

/// The first line of `text` (object_store errors carry the response body on later lines),
/// whitespace collapsed.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What a remote store's error means, in a few words and one line: `no such bucket`, `access
/// denied`, `credentials refused`, `cannot connect to the endpoint`, else the error's first
/// sentence.
///
/// ```
/// use annomask::remote::describe_error;
/// let text = "Generic S3 error: Error performing GET http://x/b/k in 2ms - Server returned \
///             non-retryable error. Status: 404 Not Found Body: <Code>NoSuchBucket</Code>";
/// assert_eq!(describe_error(text), "no such bucket (HTTP 404)");
/// ```
pub fn describe_error(text: &str) -> String {
    let text = one_line(text);
    let has = |s: &str| text.contains(s);
    let status = ["Status: ", "status code: ", "status: "]
        .iter()
        .find_map(|marker| text.split(marker).nth(1))
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .filter(|s| s.len() == 3)
        .map(str::to_string);
    let with_status = |what: &str| match &status {
        Some(s) => format!("{what} (HTTP {s})"),
        None => what.to_string(),
    };
    if has("NoSuchBucket") {
        with_status("no such bucket")
    } else if has("InvalidAccessKeyId") || has("SignatureDoesNotMatch") || has("ExpiredToken") {
        with_status(
            "credentials refused (check AWS_ACCESS_KEY_ID / AWS_PROFILE, or use --anonymous for a public bucket)",
        )
    } else if has("AccessDenied") || status.as_deref() == Some("403") || has("PermissionDenied") {
        with_status("access denied (check the credentials, or use --anonymous for a public bucket)")
    } else if status.as_deref() == Some("401") || has("Unauthenticated") {
        with_status("not authenticated (no credentials found; use --anonymous for a public bucket)")
    } else if has("Connection refused")
        || has("error sending request")
        || has("dns error")
        || has("timed out")
    {
        let what = text
            .split(" in ")
            .next()
            .and_then(|s| s.rsplit(' ').next())
            .filter(|u| u.contains("://"))
            .map(|u| format!("cannot connect to {}", u.split('?').next().unwrap_or(u)))
            .unwrap_or_else(|| "cannot connect to the endpoint".into());
        format!("{what} (is the server up, and AWS_ENDPOINT_URL right?)")
    } else if status.as_deref().is_some_and(|s| s.starts_with('5')) {
        with_status("the server failed the request, also when retried")
    } else if status.is_some() {
        with_status("request failed")
    } else {
        text.split(". ").next().unwrap_or(&text).to_string()
    }
}

fn map_error(e: ZarrsStorageError) -> ZarrsStorageError {
    match e {
        ZarrsStorageError::Other(text) => ZarrsStorageError::Other(describe_error(&text)),
        other => other,
    }
}

impl ReadableStorageTraits for RemoteStore {
    /// One GET of the whole object.
    fn get(&self, key: &StoreKey) -> Result<zarrs::storage::MaybeBytes, ZarrsStorageError> {
        use object_store::ObjectStoreExt;
        let client = self.client()?;
        let path = object_store::path::Path::from(key.as_str());
        let got = runtime().block_on(async {
            match client.object.get(&path).await {
                Ok(result) => result.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        });
        got.map_err(|e| ZarrsStorageError::Other(describe_error(&e.to_string())))
    }

    fn get_partial_many<'a>(
        &'a self,
        key: &StoreKey,
        byte_ranges: ByteRangeIterator<'a>,
    ) -> Result<MaybeBytesIterator<'a>, ZarrsStorageError> {
        let client = self.client()?;
        let parts = client
            .adapter
            .get_partial_many(key, byte_ranges)
            .map_err(map_error)?
            .map(|parts| parts.collect::<Vec<_>>());
        Ok(parts.map(|p| Box::new(p.into_iter()) as Box<dyn Iterator<Item = _> + 'a>))
    }

    fn size_key(&self, key: &StoreKey) -> Result<Option<u64>, ZarrsStorageError> {
        self.client()?.adapter.size_key(key).map_err(map_error)
    }

    fn supports_get_partial(&self) -> bool {
        true
    }
}

impl ListableStorageTraits for RemoteStore {
    fn list(&self) -> Result<StoreKeys, ZarrsStorageError> {
        self.client()?.adapter.list().map_err(map_error)
    }

    fn list_prefix(&self, prefix: &StorePrefix) -> Result<StoreKeys, ZarrsStorageError> {
        self.client()?
            .adapter
            .list_prefix(prefix)
            .map_err(map_error)
    }

    fn list_dir(&self, prefix: &StorePrefix) -> Result<StoreKeysPrefixes, ZarrsStorageError> {
        self.client()?.adapter.list_dir(prefix).map_err(map_error)
    }

    fn size_prefix(&self, prefix: &StorePrefix) -> Result<u64, ZarrsStorageError> {
        self.client()?
            .adapter
            .size_prefix(prefix)
            .map_err(map_error)
    }
}

impl WritableStorageTraits for RemoteStore {
    fn set(&self, key: &StoreKey, value: Bytes) -> Result<(), ZarrsStorageError> {
        self.client()?.adapter.set(key, value).map_err(map_error)
    }

    fn set_partial_many(
        &self,
        key: &StoreKey,
        offset_values: OffsetBytesIterator,
    ) -> Result<(), ZarrsStorageError> {
        self.client()?
            .adapter
            .set_partial_many(key, offset_values)
            .map_err(map_error)
    }

    fn erase(&self, key: &StoreKey) -> Result<(), ZarrsStorageError> {
        self.client()?.adapter.erase(key).map_err(map_error)
    }

    fn erase_prefix(&self, prefix: &StorePrefix) -> Result<(), ZarrsStorageError> {
        self.client()?
            .adapter
            .erase_prefix(prefix)
            .map_err(map_error)
    }

    fn supports_set_partial(&self) -> bool {
        false
    }
}

/// The AWS shared credentials and config files (`~/.aws/credentials`, `~/.aws/config`, or
/// `AWS_SHARED_CREDENTIALS_FILE` / `AWS_CONFIG_FILE`), section `AWS_PROFILE` (else `default`):
/// the keys `object_store` takes that the environment may leave unset.
mod aws_profile {
    use object_store::aws::AmazonS3ConfigKey;
    use zarrs_object_store::object_store;

    pub(super) fn settings() -> Vec<(AmazonS3ConfigKey, String)> {
        let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
        let file = |var: &str, name: &str| {
            std::env::var_os(var)
                .map(std::path::PathBuf::from)
                .or_else(|| home.as_ref().map(|h| h.join(".aws").join(name)))
        };
        let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
        let mut out = Vec::new();
        // credentials: `[name]`; config: `[profile name]` (or `[default]`).
        let sections = [
            (
                file("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
                profile.clone(),
            ),
            (
                file("AWS_CONFIG_FILE", "config"),
                match profile.as_str() {
                    "default" => "default".to_string(),
                    p => format!("profile {p}"),
                },
            ),
        ];
        for (path, section) in sections {
            let Some(text) = path.and_then(|p| std::fs::read_to_string(p).ok()) else {
                continue;
            };
            for (name, value) in section_of(&text, &section) {
                let key = match name.as_str() {
                    "aws_access_key_id" => AmazonS3ConfigKey::AccessKeyId,
                    "aws_secret_access_key" => AmazonS3ConfigKey::SecretAccessKey,
                    "aws_session_token" => AmazonS3ConfigKey::Token,
                    "region" => AmazonS3ConfigKey::Region,
                    "endpoint_url" => AmazonS3ConfigKey::Endpoint,
                    _ => continue,
                };
                if !out.iter().any(|(k, _)| *k == key) {
                    out.push((key, value));
                }
            }
        }
        out
    }

    /// The `name = value` lines of the INI section `[section]`.
    pub(super) fn section_of(text: &str, section: &str) -> Vec<(String, String)> {
        let mut inside = false;
        let mut out = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                inside = name.trim() == section;
                continue;
            }
            if inside && let Some((k, v)) = line.split_once('=') {
                out.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_store_and_key() {
        let u = StoreUrl::parse("gs://b").unwrap().unwrap();
        assert_eq!((u.scheme(), u.bucket(), u.key()), (Scheme::Gcs, "b", ""));
        assert_eq!(u.join("x/").as_str(), "gs://b/x");
        let h = StoreUrl::parse("http://127.0.0.1:8000/data/a.zarr")
            .unwrap()
            .unwrap();
        assert_eq!(h.bucket(), "http://127.0.0.1:8000");
        assert_eq!(h.key(), "data/a.zarr");
        assert_eq!(h.as_str(), "http://127.0.0.1:8000/data/a.zarr");
        assert!(StoreUrl::parse("file:///x").unwrap().is_none());
        let e = StoreUrl::parse("s3:///key").unwrap_err().to_string();
        assert!(e.contains("no bucket"), "{e}");
        let e = StoreUrl::parse("ftp://h/k").unwrap_err().to_string();
        assert!(e.contains("ftp"), "{e}");
    }

    #[test]
    fn errors_are_named_in_one_line() {
        let denied = describe_error("x Status: 403 Forbidden\n<Code>AccessDenied</Code>");
        assert!(
            denied.starts_with("access denied") && denied.ends_with("(HTTP 403)"),
            "{denied}"
        );
        let refused = describe_error(
            "Error performing GET http://127.0.0.1:1/b?list-type=2 in 1ms - error sending request",
        );
        assert!(
            refused.starts_with("cannot connect to http://127.0.0.1:1/b ("),
            "{refused}"
        );
        assert!(!describe_error("a\nb").contains('\n'));
    }

    #[test]
    fn profile_sections_are_read() {
        let text = "[default]\naws_access_key_id = A\n[profile lab]\nregion = eu-west-1\n";
        assert_eq!(
            aws_profile::section_of(text, "default"),
            [("aws_access_key_id".to_string(), "A".to_string())]
        );
        assert_eq!(
            aws_profile::section_of(text, "profile lab"),
            [("region".to_string(), "eu-west-1".to_string())]
        );
    }
}
