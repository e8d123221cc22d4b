//! The lake's root inside a bucket: object_store's `PrefixStore`, with one correction.
//!
//! `PrefixStore::get_opts` (object_store 0.13) hands back the inner store's metadata untouched,
//! so `head` of `a.csv` under prefix `lake` reports the location `lake/a.csv`. DataFusion lists
//! a single-file table with `head` and keeps only objects inside the table's URL, so every
//! external table over one file in an `s3://bucket/prefix` lake came up empty. Listing already
//! strips the prefix; this makes `get` and `head` agree with it.

use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};
use std::ops::Range;

#[derive(Debug)]
pub(crate) struct RootedStore<T: ObjectStore> {
    inner: PrefixStore<T>,
}

impl<T: ObjectStore> RootedStore<T> {
    pub(crate) fn new(store: T, prefix: &str) -> Self {
        RootedStore {
            inner: PrefixStore::new(store, prefix),
        }
    }
}

impl<T: ObjectStore> std::fmt::Display for RootedStore<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Rooted({})", self.inner)
    }
}

#[async_trait::async_trait]
impl<T: ObjectStore> ObjectStore for RootedStore<T> {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let mut result = self.inner.get_opts(location, options).await?;
        // The object fetched is the one asked for, named as the caller named it.
        result.meta.location = location.clone();
        Ok(result)
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> Result<Vec<bytes::Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;
    use object_store::memory::InMemory;
    use object_store::ObjectStoreExt;

    #[tokio::test]
    async fn head_get_and_list_name_objects_relative_to_the_root() -> Result<()> {
        let store = RootedStore::new(InMemory::new(), "lake");
        let path = Path::from("workspaces/1/raw/cities.csv");
        store
            .put(&path, PutPayload::from_static(b"id\n1\n"))
            .await?;
        assert_eq!(store.head(&path).await?.location, path);
        assert_eq!(store.get(&path).await?.meta.location, path);
        let listed: Vec<ObjectMeta> = store
            .list(Some(&Path::from("workspaces")))
            .try_collect()
            .await?;
        assert_eq!(
            listed.iter().map(|m| &m.location).collect::<Vec<_>>(),
            vec![&path]
        );
        Ok(())
    }
}
