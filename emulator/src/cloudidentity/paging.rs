//! Paging of list and search results: page sizes as Cloud Identity documents them, and opaque
//! page tokens that name the last item returned, so that paging stays correct while items
//! are added or removed between pages.

use crate::encoding::{hex_decode, hex_encode};
use crate::error::{ApiError, ApiResult};
use crate::extract::Params;

/// How much of each item to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// The default: the item without its timestamps.
    Basic,
    /// Everything.
    Full,
}

impl View {
    /// The `view` parameter; `BASIC` when absent.
    pub fn from_params(params: &Params) -> ApiResult<View> {
        match params.get("view") {
            None | Some("BASIC") | Some("VIEW_UNSPECIFIED") | Some("GROUP_VIEW_UNSPECIFIED") => {
                Ok(View::Basic)
            }
            Some("FULL") => Ok(View::Full),
            Some(other) => Err(ApiError::invalid(format!(
                "Invalid value at 'view' ({other}): use BASIC or FULL."
            ))),
        }
    }
}

/// Page-size limits of one method.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The size used when the caller gives none.
    pub default: usize,
    /// The largest size a caller may ask for.
    pub max: usize,
}

impl Limits {
    /// The limits of list and search methods: 200 by default and at most 1000 in the basic
    /// view, 50 and 500 in the full view.
    pub fn for_view(view: View) -> Limits {
        match view {
            View::Basic => Limits {
                default: 200,
                max: 1000,
            },
            View::Full => Limits {
                default: 50,
                max: 500,
            },
        }
    }
}

/// The page size to use: the caller's `pageSize` checked against the limits, then held to the
/// emulator's page-size cap if one is set.
pub fn page_size(params: &Params, limits: Limits, cap: Option<usize>) -> ApiResult<usize> {
    let requested = match params.get("pageSize") {
        None => 0,
        Some(text) => text.parse::<i64>().map_err(|_| {
            ApiError::invalid(format!(
                "Invalid value at 'page_size' (TYPE_INT32), \"{text}\""
            ))
        })?,
    };
    if requested < 0 {
        return Err(ApiError::invalid(
            "Request contains an invalid argument: page_size is negative.",
        ));
    }
    let size = if requested == 0 {
        limits.default
    } else {
        usize::try_from(requested).unwrap_or(usize::MAX)
    };
    if size > limits.max {
        return Err(ApiError::invalid(format!(
            "Request contains an invalid argument: page_size must not be greater than {}.",
            limits.max
        )));
    }
    Ok(cap.map_or(size, |cap| size.min(cap)))
}

/// One page of `items`, which must be sorted by their key, starting after the item the
/// `pageToken` names; with the token of the next page if there is one.
pub fn page<T>(
    items: Vec<(String, T)>,
    params: &Params,
    size: usize,
) -> ApiResult<(Vec<T>, Option<String>)> {
    let after = match params.get("pageToken") {
        None => None,
        Some(token) => Some(hex_decode(token).ok_or_else(|| {
            ApiError::invalid("Request contains an invalid argument: the page token is invalid.")
        })?),
    };
    let mut remaining: Vec<(String, T)> = items
        .into_iter()
        .filter(|(key, _)| after.as_ref().is_none_or(|after| key > after))
        .collect();
    let more = remaining.len() > size;
    remaining.truncate(size);
    let next = if more {
        remaining.last().map(|(key, _)| hex_encode(key))
    } else {
        None
    };
    Ok((remaining.into_iter().map(|(_, item)| item).collect(), next))
}
