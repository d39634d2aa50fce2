//! Rebuilding the label index from the object store alone: every segment's footer lists
//! its chunks with labels and time bounds.

use fenrir_chunk::{footer_len_from_trailer, parse_footer, SEGMENT_TRAILER_LEN};
use fenrir_common::Tenant;
use fenrir_index::Index;
use fenrir_storage::ObjectStore;

use crate::flush::chunk_ref;
use crate::{Error, Result};

/// Bytes read from a segment's end in the first request: footer and trailer of a typical
/// segment fit.
const FOOTER_GUESS_BYTES: u64 = 256 << 10;

/// Reads every segment footer in `store` and records its chunks in `index`. Returns the
/// number of chunks indexed.
pub async fn rebuild_index(store: &dyn ObjectStore, index: &Index) -> Result<usize> {
    let mut chunks = 0;
    for obj in store.list("").await? {
        let Some((tenant, rest)) = obj.key.split_once('/') else {
            continue;
        };
        if !rest.starts_with("seg/") || !obj.key.ends_with(".seg") {
            continue;
        }
        let Ok(tenant) = Tenant::new(tenant) else {
            tracing::warn!(key = obj.key, "skipping segment of an invalid tenant");
            continue;
        };
        let size = obj.size;
        let trailer_len = SEGMENT_TRAILER_LEN as u64;
        if size < trailer_len {
            tracing::warn!(key = obj.key, "skipping truncated segment");
            continue;
        }
        // One ranged GET covers footer and trailer of all but huge segments.
        let guess_from = size.saturating_sub(FOOTER_GUESS_BYTES);
        let guess = store.get_range(&obj.key, guess_from..size).await?;
        let Some(trailer_at) = guess.len().checked_sub(SEGMENT_TRAILER_LEN) else {
            tracing::warn!(key = obj.key, "skipping segment the store returned short");
            continue;
        };
        let trailer = guess.slice(trailer_at..);
        let footer_len = footer_len_from_trailer(&trailer)?;
        let Some(from) = size.checked_sub(trailer_len + footer_len) else {
            tracing::warn!(
                key = obj.key,
                "skipping segment whose footer is longer than itself"
            );
            continue;
        };
        let tail = if from >= guess_from {
            guess.slice((from - guess_from) as usize..)
        } else {
            store.get_range(&obj.key, from..size).await?
        };
        let footer = parse_footer(&tail)?;
        let refs: Vec<_> = footer
            .chunks
            .iter()
            .map(|c| {
                (
                    c.labels.clone(),
                    chunk_ref(&obj.key, c.offset, c.len, &c.meta),
                )
            })
            .collect();
        chunks += refs.len();
        let index = index.clone();
        tokio::task::spawn_blocking(move || index.add_chunks(&tenant, &refs))
            .await
            .map_err(|e| Error::Internal(e.to_string()))??;
    }
    Ok(chunks)
}
