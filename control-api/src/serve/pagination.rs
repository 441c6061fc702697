//! Cursor pagination: `?cursor=&limit=` in, `{"items": [...], "next_cursor": ...}` out.
//! The cursor is opaque to clients (it is the last item's key, hex-encoded); `null` means
//! the last page.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::problem::ApiError;

/// Default page size.
pub const DEFAULT_LIMIT: u32 = 50;
/// Largest page size.
pub const MAX_LIMIT: u32 = 500;

/// Pagination query parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Cursor from the previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Items per page, 1..=500 (default 50).
    pub limit: Option<u32>,
}

impl PageQuery {
    /// The page size, checked.
    pub fn limit(&self) -> Result<u32, ApiError> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(l) if (1..=MAX_LIMIT).contains(&l) => Ok(l),
            Some(_) => Err(ApiError::bad_request("limit must be 1..=500")),
        }
    }

    /// The decoded cursor (empty string: first page).
    pub fn after(&self) -> Result<String, ApiError> {
        match self.cursor.as_deref() {
            None | Some("") => Ok(String::new()),
            Some(c) => decode(c).ok_or_else(|| ApiError::bad_request("invalid cursor")),
        }
    }

    /// The decoded cursor as an integer id (0: first page).
    pub fn after_id(&self) -> Result<i64, ApiError> {
        let s = self.after()?;
        if s.is_empty() {
            return Ok(0);
        }
        s.parse()
            .map_err(|_| ApiError::bad_request("invalid cursor"))
    }
}

/// Encodes a key as a cursor.
pub fn encode(key: &str) -> String {
    super::state::hex(key.as_bytes())
}

fn decode(c: &str) -> Option<String> {
    if c.len() & 1 == 1 || c.len() > 1024 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..c.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(c.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

/// One page of items.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T: ToSchema> {
    /// The items.
    pub items: Vec<T>,
    /// Cursor of the next page; null on the last one.
    pub next_cursor: Option<String>,
}

impl<T: ToSchema> Page<T> {
    /// Builds a page from up to `limit + 1` fetched items (the extra one only says that
    /// there is a next page); `key` gives an item's cursor key.
    pub fn from_fetched(mut items: Vec<T>, limit: u32, key: impl Fn(&T) -> String) -> Self {
        let next_cursor = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(|i| encode(&key(i)))
        } else {
            None
        };
        Page { items, next_cursor }
    }
}
