//! HTTP caching for catalogue reads: `ETag`, `If-None-Match` → 304, `Cache-Control`.

use sha2::{Digest, Sha256};

use crate::catalogue::cache::hex;

/// Catalogue answers may be cached by anyone for a minute, then revalidated with the ETag.
pub const CACHE_CONTROL: &str = "public, max-age=60, must-revalidate";

/// A strong ETag for one answer derived from the catalogue version and what was asked.
pub fn etag(catalogue_version: &str, request_key: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(catalogue_version.as_bytes());
    hash.update([0]);
    hash.update(request_key.as_bytes());
    format!("\"{}\"", hex(&hash.finalize()[..12]))
}

/// Whether `If-None-Match` matches `etag` (RFC 9110 §13.1.2: weak comparison, `*` matches).
pub fn not_modified(if_none_match: Option<&str>, etag: &str) -> bool {
    let Some(header) = if_none_match else {
        return false;
    };
    header.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
    })
}

/// One page of a name-sorted catalogue snapshot, keyed by (name ignoring case, id).
pub fn page_of<'a, T: crate::catalogue::Versioned>(
    items: &'a [T],
    keep: impl Fn(&T) -> bool,
    page: &super::pagination::PageRequest<(String, uuid::Uuid)>,
) -> (Vec<&'a T>, Option<String>) {
    let key = |item: &T| (item.sort_name().to_lowercase(), item.id());
    let rows = items
        .iter()
        .filter(|item| keep(item))
        .filter(|item| page.after.as_ref().is_none_or(|after| key(item) > *after))
        .take(page.fetch() as usize)
        .collect();
    page.finish(rows, |item| key(item))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching() {
        let tag = etag("v1", "limit=20");
        assert_ne!(tag, etag("v2", "limit=20"));
        assert_ne!(tag, etag("v1", "limit=21"));
        assert!(not_modified(Some(&tag), &tag));
        assert!(not_modified(Some(&format!("\"x\", W/{tag}")), &tag));
        assert!(not_modified(Some("*"), &tag));
        assert!(!not_modified(Some("\"other\""), &tag));
        assert!(!not_modified(None, &tag));
    }
}
