//! Reading objects without downloading them first: a streaming GET for
//! playback, and presigned GET URLs a browser can play from directly.

use std::time::Duration;

use super::super::{ObjectReader, StoreError};
use super::{S3Store, classify, status_of};

impl S3Store {
    /// A streaming GET; `None` for a missing object.
    pub(super) async fn open_object(&self, key: &str) -> Result<Option<ObjectReader>, StoreError> {
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => Ok(Some(Box::new(out.body.into_async_read()))),
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(classify("get", key, e)),
        }
    }

    /// A presigned GET URL for `key`, valid for `ttl`, answered with `content_type`.
    pub(super) async fn presign(
        &self,
        key: &str,
        ttl: Duration,
        content_type: &str,
    ) -> Result<String, StoreError> {
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(ttl)
            .map_err(|e| StoreError::Permanent(format!("presign `{key}`: {e}")))?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .response_content_type(content_type)
            .presigned(config)
            .await
            .map_err(|e| classify("presign", key, e))?;
        Ok(request.uri().to_string())
    }
}
