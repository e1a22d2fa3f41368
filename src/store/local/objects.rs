//! The embedded object store: multipart uploads emulated in a local directory.
//!
//! This is partway's zero-configuration default (`--data-dir`) and the store
//! the core's unit tests run on. It follows S3's multipart rules rather than
//! being lenient: part numbers 1..=10000, ETags checked at completion, every
//! part but the last at least the minimum size, and no such upload after an
//! abort or a completion. Layout under the root:
//! `multipart/<id>/<n>` (parts), `multipart/<id>/<n>.etag`, `objects/<key>`.

use crate::upload::model::{ETag, MultipartId, ObjectKey, PartNumber, PartRecord};
use crate::upload::plan::{PartLimits, check_part_list};
use crate::upload::ports::{ObjectStore, ObjectStream, PartsFrom, StoreError};
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::TryStreamExt;
use std::io::{ErrorKind, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};
use tokio::fs;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// Objects and multipart uploads under one directory.
#[derive(Debug, Clone)]
pub struct LocalObjects {
    root: PathBuf,
    limits: PartLimits,
}

fn io_err(context: &str, e: std::io::Error) -> StoreError {
    if e.kind() == ErrorKind::NotFound {
        StoreError::NotFound(context.to_owned())
    } else {
        StoreError::Other(format!("{context}: {e}"))
    }
}

/// Writes `data` to `path` through a temporary file and a rename, so a crash
/// never leaves a half-written file under the final name.
pub(crate) async fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).await?;
    }
    let tmp = path.with_extension(format!("tmp{:08x}", rand::random::<u32>()));
    let mut file = fs::File::create(&tmp).await?;
    file.write_all(data).await?;
    file.sync_data().await?;
    drop(file);
    fs::rename(&tmp, path).await
}

/// Gives the part `number` just written under `dir` a fresh ETag, as S3
/// gives every upload of a part a new one.
async fn new_etag(dir: &Path, number: PartNumber) -> Result<ETag, StoreError> {
    let etag = ETag::new(format!("{:016x}", rand::random::<u64>()));
    write_atomic(
        &dir.join(format!("{number}.etag")),
        etag.as_str().as_bytes(),
    )
    .await
    .map_err(|e| io_err("write part", e))?;
    Ok(etag)
}

impl LocalObjects {
    /// Objects under `root`, with multipart rules from `limits`.
    pub fn new(root: impl Into<PathBuf>, limits: PartLimits) -> Self {
        Self {
            root: root.into(),
            limits,
        }
    }

    fn object_path(&self, key: &ObjectKey) -> Result<PathBuf, StoreError> {
        let key = key.as_str();
        let safe = !key.is_empty()
            && key
                .split('/')
                .all(|seg| !seg.is_empty() && seg != "." && seg != "..");
        if !safe {
            return Err(StoreError::Other(format!("unsafe object key {key:?}")));
        }
        Ok(self.root.join("objects").join(key))
    }

    fn upload_dir(&self, multipart_id: &MultipartId) -> Result<PathBuf, StoreError> {
        let multipart_id = multipart_id.as_str();
        if multipart_id.is_empty() || !multipart_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StoreError::NotFound(format!(
                "no such upload {multipart_id:?}"
            )));
        }
        Ok(self.root.join("multipart").join(multipart_id))
    }

    async fn existing_upload(&self, multipart_id: &MultipartId) -> Result<PathBuf, StoreError> {
        let dir = self.upload_dir(multipart_id)?;
        match fs::metadata(&dir).await {
            Ok(m) if m.is_dir() => Ok(dir),
            _ => Err(StoreError::NotFound(format!(
                "no such upload {multipart_id}"
            ))),
        }
    }

    /// Path of a finished object, for tests and the embedded default's users.
    pub fn path_of(&self, key: &ObjectKey) -> Option<PathBuf> {
        self.object_path(key).ok()
    }
}

#[async_trait]
impl ObjectStore for LocalObjects {
    async fn create_multipart(
        &self,
        key: &ObjectKey,
        _content_type: Option<&str>,
        _from: PartsFrom,
    ) -> Result<MultipartId, StoreError> {
        self.object_path(key)?;
        let id = MultipartId::new(format!("{:032x}", rand::random::<u128>()));
        let dir = self.upload_dir(&id)?;
        fs::create_dir_all(&dir)
            .await
            .map_err(|e| io_err("create multipart", e))?;
        write_atomic(&dir.join("key"), key.as_str().as_bytes())
            .await
            .map_err(|e| io_err("create multipart", e))?;
        Ok(id)
    }

    async fn upload_part(
        &self,
        _key: &ObjectKey,
        multipart_id: &MultipartId,
        number: PartNumber,
        body: Bytes,
    ) -> Result<ETag, StoreError> {
        self.check_part(number, body.len() as u64)?;
        let dir = self.existing_upload(multipart_id).await?;
        write_atomic(&dir.join(number.to_string()), &body)
            .await
            .map_err(|e| io_err("upload part", e))?;
        new_etag(&dir, number).await
    }

    async fn complete_multipart(
        &self,
        key: &ObjectKey,
        multipart_id: &MultipartId,
        parts: &[PartRecord],
    ) -> Result<(), StoreError> {
        let dir = self.existing_upload(multipart_id).await?;
        if parts.is_empty() {
            return Err(StoreError::Other("complete with no parts".into()));
        }
        check_part_list(parts, &self.limits).map_err(|e| StoreError::Other(e.to_string()))?;
        for part in parts {
            let stored = fs::read_to_string(dir.join(format!("{}.etag", part.number)))
                .await
                .map_err(|e| io_err("complete: missing part", e))?;
            let size = fs::metadata(dir.join(part.number.to_string()))
                .await
                .map_err(|e| io_err("complete: missing part", e))?
                .len();
            if stored != part.etag.as_str() || size != part.size {
                return Err(StoreError::Other(format!(
                    "part {} does not match (InvalidPart)",
                    part.number
                )));
            }
        }
        let target = self.object_path(key)?;
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)
                .await
                .map_err(|e| io_err("complete", e))?;
        }
        let tmp = target.with_extension(format!("tmp{:08x}", rand::random::<u32>()));
        let mut out = fs::File::create(&tmp)
            .await
            .map_err(|e| io_err("complete", e))?;
        for part in parts {
            let mut src = fs::File::open(dir.join(part.number.to_string()))
                .await
                .map_err(|e| io_err("complete", e))?;
            tokio::io::copy(&mut src, &mut out)
                .await
                .map_err(|e| io_err("complete", e))?;
        }
        out.sync_data().await.map_err(|e| io_err("complete", e))?;
        drop(out);
        fs::rename(&tmp, &target)
            .await
            .map_err(|e| io_err("complete", e))?;
        fs::remove_dir_all(&dir)
            .await
            .map_err(|e| io_err("complete", e))?;
        Ok(())
    }

    async fn abort_multipart(
        &self,
        _key: &ObjectKey,
        multipart_id: &MultipartId,
    ) -> Result<(), StoreError> {
        let dir = self.upload_dir(multipart_id)?;
        match fs::remove_dir_all(&dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("abort", e)),
        }
    }

    async fn put_object(
        &self,
        key: &ObjectKey,
        _content_type: Option<&str>,
        body: Bytes,
    ) -> Result<(), StoreError> {
        write_atomic(&self.object_path(key)?, &body)
            .await
            .map_err(|e| io_err("put object", e))
    }

    async fn object_size(&self, key: &ObjectKey) -> Result<Option<u64>, StoreError> {
        match fs::metadata(self.object_path(key)?).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("stat object", e)),
        }
    }

    async fn delete_object(&self, key: &ObjectKey) -> Result<(), StoreError> {
        match fs::remove_file(self.object_path(key)?).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("delete object", e)),
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        fs::metadata(&self.root)
            .await
            .map(|_| ())
            .map_err(|e| io_err("data directory", e))
    }

    async fn upload_part_copy(
        &self,
        _key: &ObjectKey,
        multipart_id: &MultipartId,
        number: PartNumber,
        source_key: &ObjectKey,
        range: Range<u64>,
    ) -> Result<ETag, StoreError> {
        self.check_part(number, range.end - range.start)?;
        let dir = self.existing_upload(multipart_id).await?;
        let source = self.open_range(source_key, range.clone()).await?;
        let path = dir.join(number.to_string());
        let tmp = path.with_extension(format!("tmp{:08x}", rand::random::<u32>()));
        let copied = async {
            let mut file = fs::File::create(&tmp).await?;
            let n = tokio::io::copy(&mut source.take(range.end - range.start), &mut file).await?;
            file.sync_data().await?;
            fs::rename(&tmp, &path).await?;
            Ok::<u64, std::io::Error>(n)
        }
        .await
        .map_err(|e| io_err("copy part", e))?;
        if copied != range.end - range.start {
            return Err(StoreError::Other(format!(
                "copy part {number}: source {source_key} is too short"
            )));
        }
        new_etag(&dir, number).await
    }

    async fn get_object(
        &self,
        key: &ObjectKey,
        range: Option<Range<u64>>,
    ) -> Result<ObjectStream, StoreError> {
        let range = range.unwrap_or(0..u64::MAX);
        let file = self.open_range(key, range.clone()).await?;
        let reader = file.take(range.end - range.start);
        Ok(Box::pin(
            tokio_util::io::ReaderStream::with_capacity(reader, 256 * 1024)
                .map_err(|e| StoreError::Other(format!("read object: {e}"))),
        ))
    }
}

impl LocalObjects {
    /// S3's rules for one part: its number (within this store's limit; the
    /// type already keeps it in 1..=10000) and its size.
    fn check_part(&self, number: PartNumber, size: u64) -> Result<(), StoreError> {
        if number.get() > self.limits.max_parts {
            return Err(StoreError::Other(format!("invalid part number {number}")));
        }
        if size > self.limits.max_part_size {
            return Err(StoreError::Other(format!("part {number} is too large")));
        }
        Ok(())
    }

    /// An object's file, positioned at `range.start`.
    async fn open_range(&self, key: &ObjectKey, range: Range<u64>) -> Result<fs::File, StoreError> {
        let mut file = fs::File::open(self.object_path(key)?)
            .await
            .map_err(|e| io_err("open object", e))?;
        file.seek(SeekFrom::Start(range.start))
            .await
            .map_err(|e| io_err("seek object", e))?;
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> PartLimits {
        PartLimits {
            min_part_size: 4,
            max_part_size: 1024,
            max_parts: 10,
            granularity: 1,
            max_object_size: 10 * 1024,
        }
    }

    fn n(number: u32) -> PartNumber {
        PartNumber::new(number).expect("part number")
    }

    async fn upload(
        store: &LocalObjects,
        mp: &MultipartId,
        number: u32,
        data: &'static [u8],
    ) -> PartRecord {
        let etag = store
            .upload_part(
                &ObjectKey::new("k"),
                mp,
                n(number),
                Bytes::from_static(data),
            )
            .await
            .expect("part");
        PartRecord {
            number: n(number),
            etag,
            size: data.len() as u64,
        }
    }

    #[tokio::test]
    async fn completes_in_order_and_enforces_rules() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalObjects::new(dir.path(), limits());
        let key = ObjectKey::new("a/k");
        let mp = store
            .create_multipart(&key, None, PartsFrom::Uploads)
            .await
            .expect("create");
        let p1 = upload(&store, &mp, 1, b"abc").await;
        let p2 = upload(&store, &mp, 2, b"de").await;
        let err = store
            .complete_multipart(&key, &mp, &[p1, p2.clone()])
            .await
            .expect_err("3-byte non-last part is below the minimum");
        assert!(err.to_string().contains("minimum"), "{err}");
        let p1 = upload(&store, &mp, 1, b"abcd").await;
        let stale = PartRecord {
            etag: ETag::new("bogus"),
            ..p2.clone()
        };
        assert!(
            store
                .complete_multipart(&key, &mp, &[p1.clone(), stale])
                .await
                .is_err()
        );
        store
            .complete_multipart(&key, &mp, &[p1, p2])
            .await
            .expect("complete");
        assert_eq!(store.object_size(&key).await.expect("size"), Some(6));
        assert!(matches!(
            store.upload_part(&key, &mp, n(3), Bytes::new()).await,
            Err(StoreError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn refuses_bad_part_numbers_and_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalObjects::new(dir.path(), limits());
        let key = ObjectKey::new("k");
        let mp = store
            .create_multipart(&key, None, PartsFrom::Uploads)
            .await
            .expect("create");
        assert!(
            store
                .upload_part(&key, &mp, n(11), Bytes::new())
                .await
                .is_err()
        );
        let escape = ObjectKey::new("../escape");
        assert!(
            store
                .create_multipart(&escape, None, PartsFrom::Uploads)
                .await
                .is_err()
        );
        store.abort_multipart(&key, &mp).await.expect("abort");
        store.abort_multipart(&key, &mp).await.expect("abort twice");
    }
}
