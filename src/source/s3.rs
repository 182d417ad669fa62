//! ALB access logs read straight from S3 (`path = "s3://bucket/prefix"`), through the
//! `object_store` crate. Credentials come from the environment, the instance's role or the
//! container's (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, web identity, ECS, IMDSv2); an
//! S3-compatible server (MinIO) is named with `endpoint`.
//!
//! The reader thread is not async: each call runs on a small runtime of its own.

use anyhow::Context;
use futures_util::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt};
use std::io::Write;
use std::path::Path;

/// A bucket and prefix holding ALB logs.
pub struct Bucket {
    store: AmazonS3,
    prefix: Option<StorePath>,
    rt: tokio::runtime::Runtime,
    url: String,
}

impl Bucket {
    /// `s3://bucket/prefix`, with an optional endpoint (`http://127.0.0.1:9000`) and region.
    pub fn open(url: &str, endpoint: Option<&str>, region: Option<&str>) -> anyhow::Result<Bucket> {
        let rest = url
            .strip_prefix("s3://")
            .with_context(|| format!("{url} is not an s3:// address"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        anyhow::ensure!(!bucket.is_empty(), "{url} names no bucket");
        let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
        if let Some(e) = endpoint {
            b = b.with_endpoint(e).with_allow_http(e.starts_with("http://"));
        }
        if let Some(r) = region {
            b = b.with_region(r);
        }
        let store = b
            .build()
            .with_context(|| format!("setting up access to {url}"))?;
        let prefix = prefix.trim_matches('/');
        Ok(Bucket {
            store,
            prefix: (!prefix.is_empty()).then(|| StorePath::from(prefix)),
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting a runtime for S3")?,
            url: url.to_string(),
        })
    }

    /// The `.log.gz` objects below the prefix, after `offset` when given (S3 lists in key
    /// order): (key below the prefix, size).
    pub fn list(&self, offset: Option<&str>) -> anyhow::Result<Vec<(String, u64)>> {
        let prefix_len = self.prefix.as_ref().map_or(0, |p| p.as_ref().len() + 1);
        self.rt.block_on(async {
            let metas: Vec<_> = match offset {
                Some(o) => {
                    let full = match &self.prefix {
                        Some(p) => StorePath::from(format!("{}/{o}", p.as_ref())),
                        None => StorePath::from(o),
                    };
                    self.store
                        .list_with_offset(self.prefix.as_ref(), &full)
                        .try_collect()
                        .await
                }
                None => self.store.list(self.prefix.as_ref()).try_collect().await,
            }
            .with_context(|| format!("listing {}", self.url))?;
            Ok(metas
                .into_iter()
                .filter_map(|m| {
                    let key = m.location.as_ref();
                    let name = key.rsplit('/').next().unwrap_or(key);
                    let wanted = name.ends_with(".log.gz")
                        && !name.starts_with("conn_log_")
                        && !name.contains("ELBAccessLogTestFile");
                    wanted.then(|| (key[prefix_len.min(key.len())..].to_string(), m.size))
                })
                .collect())
        })
    }

    /// Downloads an object (key below the prefix) into a file.
    pub fn download(&self, key: &str, to: &Path) -> anyhow::Result<()> {
        let full = match &self.prefix {
            Some(p) => StorePath::from(format!("{}/{key}", p.as_ref())),
            None => StorePath::from(key),
        };
        self.rt.block_on(async {
            let mut file =
                std::fs::File::create(to).with_context(|| format!("creating {}", to.display()))?;
            let mut stream = self
                .store
                .get(&full)
                .await
                .with_context(|| format!("reading {}/{key}", self.url))?
                .into_stream();
            while let Some(chunk) = stream
                .try_next()
                .await
                .with_context(|| format!("reading {}/{key}", self.url))?
            {
                file.write_all(&chunk)?;
            }
            Ok(())
        })
    }
}
