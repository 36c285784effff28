//! Plain deletes: one DeleteObjects request for up to [`DELETE_BATCH`](crate::store::DELETE_BATCH)
//! keys, each key's own outcome read from the answer.

use std::collections::BTreeMap;

use aws_sdk_s3::types::{Delete, ObjectIdentifier};

use super::{S3Store, classify};
use crate::store::StoreError;

impl S3Store {
    /// Sends one DeleteObjects request for `objects` (`quiet`: the store
    /// reports only failures); `what` and `first` name it in errors.
    pub(super) async fn send_delete(
        &self,
        objects: impl Iterator<Item = aws_sdk_s3::types::builders::ObjectIdentifierBuilder>,
        quiet: bool,
        what: &str,
        first: &str,
    ) -> Result<aws_sdk_s3::operation::delete_objects::DeleteObjectsOutput, StoreError> {
        let bad = |e: aws_sdk_s3::error::BuildError| {
            StoreError::Permanent(format!("{what} `{first}`…: {e}"))
        };
        let objects = objects
            .map(|o| o.build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad)?;
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(quiet)
            .build()
            .map_err(bad)?;
        // DeleteObjects requires a body checksum; the SDK sends CRC32 as a
        // plain header (not a trailer), which S3, R2 and Garage accept.
        self.client
            .delete_objects()
            .bucket(&self.bucket)
            .delete(delete)
            .send()
            .await
            .map_err(|e| classify(what, first, e))
    }

    /// One DeleteObjects request (quiet: the store reports only failures).
    pub(super) async fn delete_chunk(
        &self,
        keys: &[String],
    ) -> Result<Vec<(String, Result<(), StoreError>)>, StoreError> {
        let first = keys.first().map(String::as_str).unwrap_or("");
        let objects = keys.iter().map(|k| ObjectIdentifier::builder().key(k));
        let out = self
            .send_delete(objects, true, "delete objects", first)
            .await?;
        let mut failed: BTreeMap<&str, StoreError> = BTreeMap::new();
        for err in out.errors() {
            let key = err.key().unwrap_or("");
            let code = err.code().unwrap_or("");
            let message = format!(
                "delete `{key}`: {code}: {}",
                err.message().unwrap_or("refused")
            );
            let e = if matches!(code, "InternalError" | "SlowDown" | "ServiceUnavailable") {
                StoreError::Transient(message)
            } else {
                StoreError::Permanent(message)
            };
            failed.insert(key, e);
        }
        Ok(keys
            .iter()
            .map(|k| {
                let result = match failed.get(k.as_str()) {
                    Some(e) => Err(e.clone()),
                    None => Ok(()),
                };
                (k.clone(), result)
            })
            .collect())
    }
}
