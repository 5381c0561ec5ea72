//! The tracing spans of the crate's operations.
//!
//! | span | level | fields |
//! |---|---|---|
//! | `flakeguard.operation` | INFO | `tenant`, `table`, `operation`, `rows`, `outcome` |
//! | `flakeguard.transaction` | INFO | `tenant`, `operation` (`transaction`), `outcome` |
//! | `flakeguard.begin` | DEBUG | `tenant` |
//! | `flakeguard.commit` | DEBUG | `tenant`, `outcome` |
//!
//! An operation span closes with a DEBUG event `finished` carrying `duration_us`. `rows` counts
//! the rows returned or affected; `outcome` is `ok` or the error's
//! [`kind_name`](crate::Error::kind_name). Fields hold only what the caller passed (the tenant,
//! the table) and counts, never row contents.

use std::future::Future;
use std::time::Instant;

use tracing::Instrument;

use crate::Result;
use crate::error::Context;

/// The `flakeguard.operation` span of `ctx`, with `rows` and `outcome` to record.
pub(crate) fn operation_span(ctx: &Context) -> tracing::Span {
    tracing::info_span!(
        "flakeguard.operation",
        tenant = ctx.tenant.as_ref().map(|t| t.as_str()).unwrap_or(""),
        table = ctx.table.unwrap_or(""),
        operation = ctx.operation.as_str(),
        rows = tracing::field::Empty,
        outcome = tracing::field::Empty,
    )
}

/// Runs `work`, the operation of `ctx`, in a `flakeguard.operation` span, and records its row
/// count (`rows` of the result) and outcome.
pub(crate) async fn operation<T>(
    ctx: &Context,
    rows: fn(&T) -> u64,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    let span = operation_span(ctx);
    let started = Instant::now();
    let result = work.instrument(span.clone()).await;
    match &result {
        Ok(v) => {
            span.record("rows", rows(v));
            span.record("outcome", "ok");
        }
        Err(e) => {
            span.record("outcome", e.kind_name());
        }
    }
    let duration_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    span.in_scope(|| tracing::debug!(duration_us, "finished"));
    result
}

/// Row counts of common results, for [`operation`].
pub(crate) fn one<T>(_: &T) -> u64 {
    1
}

/// 1 for `Some`, 0 for `None`.
pub(crate) fn some<T>(v: &Option<T>) -> u64 {
    u64::from(v.is_some())
}

/// The length of a list. (A `&Vec`, not a slice: it is used as `fn(&Vec<T>) -> u64`.)
#[allow(clippy::ptr_arg)]
pub(crate) fn len<T>(v: &Vec<T>) -> u64 {
    v.len() as u64
}

/// A count itself.
pub(crate) fn count(n: &u64) -> u64 {
    *n
}
