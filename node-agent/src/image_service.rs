//! The image RPCs of the agent's gRPC service: import (an archive streamed in chunks to a
//! temporary file under the data dir, then loaded into the store), list and remove, over
//! the node's [`ImageStore`] (`<data-dir>/images`, the one the `oci` runtime uses).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use skiff_api::proto::{
    ExportImageChunk, ImageInfo, ImportImageRequest, ImportImageResponse, ImportedImage,
    ListImagesResponse, RemoveImageResponse,
};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use crate::image::{Image, ImageError, ImageStore, Reference};

/// The largest archive an import takes.
pub const MAX_ARCHIVE_BYTES: u64 = 4 << 30;
/// The largest image an export streams (the most an import takes).
pub const MAX_EXPORT_BYTES: u64 = MAX_ARCHIVE_BYTES;
/// Bytes per chunk of an export.
pub const EXPORT_CHUNK: usize = 1024 * 1024;
/// Where uploads are spooled, under the agent's data dir.
pub const UPLOAD_DIR: &str = "image-uploads";

/// The node's image store as the gRPC service serves it.
#[derive(Clone)]
pub struct ImageService {
    /// `Err`: the store could not be opened (the reason, returned by every image call).
    store: Arc<Result<ImageStore, String>>,
    uploads: PathBuf,
}

static UPLOAD_SEQ: AtomicU64 = AtomicU64::new(0);

/// A spooled upload, removed when dropped (whatever happened to the import).
struct Upload {
    path: PathBuf,
}

impl Drop for Upload {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The store's error as a gRPC status: NotFound → NOT_FOUND; what the caller got wrong
/// (reference, ambiguous prefix, a corrupt or unusable archive) → INVALID_ARGUMENT with the
/// store's message; an image containers run from → FAILED_PRECONDITION; Unsupported → UNIMPLEMENTED; I/O and a broken store → INTERNAL.
pub fn status_of(e: ImageError) -> Status {
    let message = e.to_string();
    match e {
        ImageError::NotFound(_) => Status::not_found(message),
        ImageError::Unsupported(_) => Status::unimplemented(message),
        ImageError::Io { .. } | ImageError::CorruptIndex { .. } => Status::internal(message),
        ImageError::Registry { .. } => Status::unavailable(message),
        ImageError::InUse { .. } => Status::failed_precondition(message),
        ImageError::Limit { .. } => Status::resource_exhausted(message),
        // Reference, ambiguous prefix, and everything wrong with an archive.
        _ => Status::invalid_argument(message),
    }
}

/// The chunks of an export as it is written: full ones go out as they fill, the rest
/// (with `end`) once the tarball is complete.
pub type ExportStream = ReceiverStream<Result<ExportImageChunk, Status>>;

struct Chunks {
    tx: mpsc::Sender<Result<ExportImageChunk, Status>>,
    buf: Vec<u8>,
}

impl std::io::Write for Chunks {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(EXPORT_CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == EXPORT_CHUNK {
            let chunk = ExportImageChunk {
                data: std::mem::replace(&mut self.buf, Vec::with_capacity(EXPORT_CHUNK)),
                end: false,
            };
            // The caller went away: stop reading blobs.
            self.tx
                .blocking_send(Ok(chunk))
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        }
        Ok(n)
    }

    /// The last chunk is sent with `end` once the whole tarball is written.
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An image as the API shows it.
pub fn image_info(image: &Image) -> ImageInfo {
    ImageInfo {
        references: image.references.iter().map(|r| r.to_string()).collect(),
        id: image.id.to_string(),
        digest: image.digest.to_string(),
        size: image.size,
        created: image
            .created
            .map(|c| c.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default(),
        unpacked_size: image.unpacked_size,
        architecture: image.architecture.clone(),
        os: image.os.clone(),
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ImageError> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Status::internal(format!("image store task: {e}")))?
        .map_err(status_of)
}

impl ImageService {
    /// Serves `store` (or the reason it could not be opened), spooling uploads in
    /// `<data_dir>/image-uploads` (emptied now: what is there is left from a crash).
    pub fn new(store: Result<ImageStore, String>, data_dir: &Path) -> ImageService {
        let uploads = data_dir.join(UPLOAD_DIR);
        let _ = std::fs::remove_dir_all(&uploads);
        ImageService {
            store: Arc::new(store),
            uploads,
        }
    }

    fn store(&self) -> Result<ImageStore, Status> {
        self.store
            .as_ref()
            .clone()
            .map_err(|e| Status::internal(format!("the node's image store is unusable: {e}")))
    }

    /// Spools the stream to a file, then imports it.
    pub async fn import(
        &self,
        mut input: Streaming<ImportImageRequest>,
    ) -> Result<ImportImageResponse, Status> {
        let store = self.store()?;
        tokio::fs::create_dir_all(&self.uploads)
            .await
            .map_err(|e| Status::internal(format!("mkdir {}: {e}", self.uploads.display())))?;
        let upload = Upload {
            path: self.uploads.join(format!(
                "upload-{}-{}.tar",
                std::process::id(),
                UPLOAD_SEQ.fetch_add(1, Ordering::Relaxed)
            )),
        };
        let internal =
            |what: &str, e: std::io::Error| Status::internal(format!("{what} upload file: {e}"));
        let mut file = tokio::fs::File::create(&upload.path)
            .await
            .map_err(|e| internal("creating the", e))?;
        let mut received: u64 = 0;
        let mut complete = false;
        while let Some(message) = input.message().await? {
            received += message.data.len() as u64;
            if received > MAX_ARCHIVE_BYTES {
                return Err(Status::resource_exhausted(format!(
                    "image archive too large: more than {} bytes (the limit is 4 GiB)",
                    MAX_ARCHIVE_BYTES
                )));
            }
            file.write_all(&message.data)
                .await
                .map_err(|e| internal("writing the", e))?;
            if message.end {
                complete = true;
                break;
            }
        }
        if !complete {
            return Err(Status::cancelled(
                "the image upload ended before the whole archive was sent; nothing imported",
            ));
        }
        file.flush().await.map_err(|e| internal("writing the", e))?;
        drop(file);
        let _turn = store.import_turn().await;
        let imported = blocking(move || {
            let result = store.import_named(&upload.path, "the uploaded archive");
            drop(upload);
            result
        })
        .await;
        let metrics = &crate::metrics::METRICS;
        metrics
            .image_imports
            .get_or_create(&crate::metrics::outcome(&imported))
            .inc();
        if imported.is_ok() {
            metrics.image_import_bytes.inc_by(received);
        }
        let imported = imported?;
        Ok(ImportImageResponse {
            images: imported
                .images
                .iter()
                .map(|i| ImportedImage {
                    image: Some(image_info(&i.image)),
                    names: i.names.iter().map(|r| r.to_string()).collect(),
                    existed: !i.new,
                })
                .collect(),
        })
    }

    pub async fn list(&self) -> Result<ListImagesResponse, Status> {
        let store = self.store()?;
        let images = blocking(move || store.list()).await?;
        Ok(ListImagesResponse {
            images: images.iter().map(image_info).collect(),
        })
    }

    /// Streams the image `reference` names as an OCI image layout (see
    /// [`ImageStore::export_layout`]), named by that reference when it is one of the
    /// image's, else by its first; images over [`MAX_EXPORT_BYTES`] are refused.
    pub async fn export(&self, reference: String) -> Result<ExportStream, Status> {
        if reference.is_empty() {
            return Err(Status::invalid_argument("reference: Required value"));
        }
        let store = self.store()?;
        let found = store.clone();
        let (image, name) = blocking(move || {
            let image = found.get(&reference)?;
            let asked = Reference::parse(&reference)
                .ok()
                .filter(|r| image.references.contains(r));
            let name = asked.or_else(|| image.references.first().cloned());
            Ok((image, name))
        })
        .await?;
        if image.size > MAX_EXPORT_BYTES {
            return Err(Status::resource_exhausted(format!(
                "image {} is {} bytes: an export may be at most 4 GiB",
                image.digest, image.size
            )));
        }
        let (tx, rx) = mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            let mut chunks = Chunks {
                tx: tx.clone(),
                buf: Vec::with_capacity(EXPORT_CHUNK),
            };
            let last = match store.export_layout(&image, name.as_ref(), &mut chunks) {
                Ok(()) => Ok(ExportImageChunk {
                    data: chunks.buf,
                    end: true,
                }),
                Err(e) => Err(status_of(e)),
            };
            let _ = tx.blocking_send(last);
        });
        Ok(ReceiverStream::new(rx))
    }

    pub async fn remove(&self, reference: String) -> Result<RemoveImageResponse, Status> {
        if reference.is_empty() {
            return Err(Status::invalid_argument("reference: Required value"));
        }
        let store = self.store()?;
        let removed = blocking(move || store.remove(&reference)).await?;
        Ok(RemoveImageResponse {
            untagged: removed.untagged.iter().map(|r| r.to_string()).collect(),
            deleted: removed.deleted.iter().map(|d| d.to_string()).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_errors_map_to_grpc_codes() {
        use tonic::Code;
        assert_eq!(
            status_of(ImageError::NotFound("x".into())).code(),
            Code::NotFound
        );
        assert_eq!(
            status_of(ImageError::Ambiguous("abcd".into())).code(),
            Code::InvalidArgument
        );
        assert_eq!(
            status_of(ImageError::InvalidArchive("no manifest.json".into())).code(),
            Code::InvalidArgument
        );
        assert_eq!(
            status_of(ImageError::Unsupported("schema 1".into())).code(),
            Code::Unimplemented
        );
        assert_eq!(
            status_of(ImageError::io("read x", std::io::Error::other("boom"))).code(),
            Code::Internal
        );
    }
}
