//! The nodes' image stores, through any control-plane endpoint (which passes the call on to
//! the agent of the node named): import an archive, list, remove, export.

use crate::client::{Client, Transport};
use crate::error::Error;
use skiff_api::proto::agent_client::AgentClient;
use skiff_api::proto::{
    ExportImageRequest, ImageInfo, ImportImageRequest, ImportImageResponse, ImportedImage,
    ListImagesRequest, RemoveImageRequest, RemoveImageResponse,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// Bytes of the archive per message.
const CHUNK: usize = 1024 * 1024;
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
/// The most an export may bring: a 4 GiB image (the agent's limit) and its tar headers.
pub const MAX_EXPORT_BYTES: u64 = (4 << 30) + (64 << 20);

/// An image in a node's store.
pub type Image = ImageInfo;
/// What an import did for one image of the archive.
pub type ImportedImageInfo = ImportedImage;
/// What a removal untagged and deleted.
pub type RemovedImages = RemoveImageResponse;

fn agent(channel: Transport) -> AgentClient<Transport> {
    AgentClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

impl Client {
    /// The images in `node`'s store, sorted by first reference (unnamed ones last).
    pub async fn list_images(&self, node: &str) -> Result<Vec<Image>, Error> {
        let request = ListImagesRequest { node: node.into() };
        let response = self
            .with_failover(|channel| {
                let request = request.clone();
                async move { agent(channel).list_images(request).await }
            })
            .await?;
        Ok(response.into_inner().images)
    }

    /// Loads a `docker save` archive or an OCI image-layout tarball (gzipped or not) read
    /// from `archive` into `node`'s store. A corrupt archive is refused (`Error::Invalid`,
    /// naming the problem) and leaves the store as it was.
    ///
    /// The node is checked first (with failover across endpoints); the upload then goes to
    /// the endpoint that answered, without a time limit (the reader is read once, so it is
    /// not retried elsewhere).
    pub async fn import_image(
        &self,
        node: &str,
        mut archive: impl AsyncRead + Unpin + Send + 'static,
    ) -> Result<Vec<ImportedImageInfo>, Error> {
        // Fails early, before reading anything, on an unknown node or unreachable agent,
        // and leaves the answering endpoint current.
        self.list_images(node).await?;
        let (index, channel) = self.channel(0);
        let (sender, receiver) = mpsc::channel::<ImportImageRequest>(4);
        let node = node.to_string();
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; CHUNK];
            loop {
                let mut filled = 0;
                while filled < CHUNK {
                    match archive.read(&mut buf[filled..]).await {
                        Ok(0) => break,
                        Ok(n) => filled += n,
                        // Ending without `end` makes the agent import nothing.
                        Err(e) => return Err(e),
                    }
                }
                let end = filled < CHUNK;
                let message = ImportImageRequest {
                    node: node.clone(),
                    data: buf[..filled].to_vec(),
                    end,
                };
                if sender.send(message).await.is_err() || end {
                    return Ok(());
                }
            }
        });
        let result = agent(channel)
            .import_image(ReceiverStream::new(receiver))
            .await;
        let read = reader.await;
        let response: ImportImageResponse = match result {
            Ok(response) => response.into_inner(),
            Err(status) => {
                if let Ok(Err(e)) = read {
                    return Err(Error::Invalid(format!("reading the image archive: {e}")));
                }
                return Err(status.into());
            }
        };
        self.mark_good(index);
        Ok(response.images)
    }

    /// Writes the image `reference` names in `node`'s store to `out` as an OCI image-layout
    /// tarball (its manifest as the store has it, named by `reference` when that is one of
    /// its names); returns the bytes written. A stream cut short, or one past
    /// [`MAX_EXPORT_BYTES`], is an error (what was written so far is incomplete).
    pub async fn export_image(
        &self,
        node: &str,
        reference: &str,
        out: &mut (impl AsyncWrite + Unpin),
    ) -> Result<u64, Error> {
        let request = ExportImageRequest {
            node: node.into(),
            reference: reference.into(),
        };
        let mut stream = self
            .with_failover(|channel| {
                let request = request.clone();
                async move { agent(channel).export_image(request).await }
            })
            .await?
            .into_inner();
        let mut written: u64 = 0;
        while let Some(chunk) = stream.message().await? {
            written += chunk.data.len() as u64;
            if written > MAX_EXPORT_BYTES {
                return Err(Error::Decode(format!(
                    "the export of {reference} from {node} is over {MAX_EXPORT_BYTES} bytes"
                )));
            }
            out.write_all(&chunk.data)
                .await
                .map_err(|e| Error::Decode(format!("writing the exported image: {e}")))?;
            if chunk.end {
                out.flush()
                    .await
                    .map_err(|e| Error::Decode(format!("writing the exported image: {e}")))?;
                return Ok(written);
            }
        }
        Err(Error::Unavailable(format!(
            "the export of {reference} from {node} ended before the whole image was sent"
        )))
    }

    /// Untags `reference` on `node` (deleting the image when it was its last name), or
    /// deletes the image an id or digest (or a unique prefix of one) names.
    pub async fn remove_image(&self, node: &str, reference: &str) -> Result<RemovedImages, Error> {
        let request = RemoveImageRequest {
            node: node.into(),
            reference: reference.into(),
        };
        let response = self
            .with_failover_write(|channel| {
                let request = request.clone();
                async move { agent(channel).remove_image(request).await }
            })
            .await?;
        Ok(response.into_inner())
    }
}
