//! The HTTP API: a bearer token names an organization, the organization gets a `TenantScope`,
//! and every handler works through that scope alone.
//!
//! | route | what |
//! |---|---|
//! | `POST /repos/{repo}/runs/{run}/junit?job=<job>` | store one job's JUnit XML report (header `X-GitHub-Delivery`) |
//! | `GET /repos/{repo}` | the repository |
//! | `GET /repos/{repo}/failure-rates?days=7` | `reports::failure_rates` |
//! | `GET /repos/{repo}/flakiest?limit=10&days=7` | `reports::flakiest_tests` |
//! | `GET /repos/{repo}/clusters?limit=10` | `reports::failure_clusters` |
//! | `GET /quarantines/expiring?days=7` | `reports::expiring_quarantines` |
//!
//! Statuses: 401 without a known token, 404 for a repository that is not the caller's
//! organization's (another organization's looks exactly like a missing one), 400 for a
//! malformed report or delivery GUID (nothing is written), 200 for a redelivery, 201 for a
//! stored report, 409 for a report of another job whose tests the run holds already.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Extension, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use flakeguard_db::entity::fg_repository;
use flakeguard_db::{Db, Error, OrgId, TenantScope, reports};
use serde::Deserialize;
use tracing::Instrument;
use uuid::Uuid;

use crate::ingest::{self, Delivery, Refused, Stored};
use crate::junit;

/// What the handlers share: the database and the token of each organization.
pub struct AppState {
    /// The pool, as a member of `flakeguard_app`.
    pub db: Db,
    /// Bearer token -> organization. A real service resolves tokens in its identity provider;
    /// what matters here is that the organization comes from the token, never from the request.
    pub tokens: HashMap<String, OrgId>,
}

/// The service's routes over `state`.
pub fn router(state: Arc<AppState>) -> Router {
    let tenant_routes = Router::new()
        .route("/repos/{repo}", get(repository))
        .route("/repos/{repo}/runs/{run}/junit", post(report))
        .route("/repos/{repo}/failure-rates", get(failure_rates))
        .route("/repos/{repo}/flakiest", get(flakiest))
        .route("/repos/{repo}/clusters", get(clusters))
        .route("/quarantines/expiring", get(expiring))
        .layer(DefaultBodyLimit::max(junit::MAX_REPORT_BYTES))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            authenticate,
        ));
    tenant_routes.with_state(state)
}

/// An error as the client sees it: a status and a message that carries no data of another
/// organization and no database detail.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match &e {
            Error::NotFound { .. } | Error::TenantDenied { .. } => {
                ApiError(StatusCode::NOT_FOUND, "not found".into())
            }
            Error::InvalidInput { reason, .. } => ApiError(StatusCode::BAD_REQUEST, reason.clone()),
            Error::Rejected { .. } => ApiError(StatusCode::CONFLICT, e.kind_name().into()),
            _ => {
                tracing::error!(error = %e, "request failed");
                let status = if e.is_connection_error() {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::INTERNAL_SERVER_ERROR
                };
                ApiError(status, "internal error".into())
            }
        }
    }
}

fn bad_request(reason: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, reason.into())
}

fn not_found() -> ApiError {
    ApiError(StatusCode::NOT_FOUND, "not found".into())
}

/// Resolves the bearer token to an organization, hands the handlers its scope, and runs the
/// request in a `request` span that names the organization (the scope's spans nest beneath).
async fn authenticate(
    State(state): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let unauthorized = || {
        ApiError(
            StatusCode::UNAUTHORIZED,
            "a known bearer token is needed".into(),
        )
    };
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(unauthorized)?;
    let org = state
        .tokens
        .get(token.trim())
        .cloned()
        .ok_or_else(unauthorized)?;
    let span = tracing::info_span!(
        "request",
        org = org.as_str(),
        method = %req.method(),
        path = req.uri().path(),
        status = tracing::field::Empty,
    );
    req.extensions_mut().insert(state.db.scope(org));
    let response = next.run(req).instrument(span.clone()).await;
    span.record("status", response.status().as_u16());
    Ok(response)
}

/// This organization's repository `repo`, or 404.
async fn own_repository(scope: &TenantScope, repo: &str) -> Result<fg_repository::Model, ApiError> {
    scope
        .find_by_id::<fg_repository::Entity, _>(repo.to_owned())
        .await?
        .ok_or_else(not_found)
}

async fn repository(
    Extension(scope): Extension<TenantScope>,
    Path(repo): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let r = own_repository(&scope, &repo).await?;
    Ok(Json(serde_json::json!({
        "id": r.id, "provider": r.provider, "owner": r.owner, "name": r.name,
    })))
}

#[derive(Deserialize)]
struct JobQuery {
    job: Option<String>,
}

async fn report(
    Extension(scope): Extension<TenantScope>,
    Path((repo, run)): Path<(String, String)>,
    Query(q): Query<JobQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Stored>), ApiError> {
    let delivery = headers
        .get("x-github-delivery")
        .ok_or_else(|| bad_request("the X-GitHub-Delivery header is missing"))?
        .to_str()
        .ok()
        .and_then(|v| Uuid::parse_str(v.trim()).ok())
        .ok_or_else(|| bad_request("X-GitHub-Delivery is not a GUID"))?;
    let job = q.job.unwrap_or_else(|| "test".to_owned());
    if run.trim().is_empty() || job.trim().is_empty() {
        return Err(bad_request("the run and the job need a name"));
    }
    let xml = std::str::from_utf8(&body).map_err(|_| bad_request("the report is not UTF-8"))?;
    let results = junit::parse(xml).map_err(bad_request)?;
    let delivery = Delivery {
        id: delivery,
        repo_id: repo,
        run_id: run,
        job,
    };
    match ingest::store(&scope, &delivery, results).await {
        Ok(stored @ Stored::Stored { .. }) => Ok((StatusCode::CREATED, Json(stored))),
        Ok(again @ Stored::AlreadyStored { .. }) => Ok((StatusCode::OK, Json(again))),
        Err(Refused::UnknownRepository) => Err(not_found()),
        Err(Refused::TestAlreadyInRun) => Err(ApiError(
            StatusCode::CONFLICT,
            "a test of this report is stored for this run by another job's report".into(),
        )),
        Err(Refused::Db(e)) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct Window {
    days: Option<u32>,
    limit: Option<u64>,
}

impl Window {
    fn days(&self) -> u32 {
        self.days.unwrap_or(7)
    }

    /// At most 1,000 rows a page.
    fn limit(&self) -> Result<u64, ApiError> {
        match self.limit.unwrap_or(10) {
            n @ 1..=1000 => Ok(n),
            _ => Err(bad_request("limit is from 1 to 1000")),
        }
    }
}

async fn failure_rates(
    Extension(scope): Extension<TenantScope>,
    Path(repo): Path<String>,
    Query(w): Query<Window>,
) -> Result<Json<Vec<reports::FailureRate>>, ApiError> {
    own_repository(&scope, &repo).await?;
    Ok(Json(reports::failure_rates(&scope, &repo, w.days()).await?))
}

async fn flakiest(
    Extension(scope): Extension<TenantScope>,
    Path(repo): Path<String>,
    Query(w): Query<Window>,
) -> Result<Json<Vec<reports::FlakyTest>>, ApiError> {
    own_repository(&scope, &repo).await?;
    let limit = w.limit()?;
    Ok(Json(
        reports::flakiest_tests(&scope, &repo, limit, w.days()).await?,
    ))
}

async fn clusters(
    Extension(scope): Extension<TenantScope>,
    Path(repo): Path<String>,
    Query(w): Query<Window>,
) -> Result<Json<Vec<reports::ClusterSummary>>, ApiError> {
    own_repository(&scope, &repo).await?;
    Ok(Json(
        reports::failure_clusters(&scope, &repo, w.limit()?).await?,
    ))
}

async fn expiring(
    Extension(scope): Extension<TenantScope>,
    Query(w): Query<Window>,
) -> Result<Json<Vec<reports::ExpiringQuarantine>>, ApiError> {
    Ok(Json(reports::expiring_quarantines(&scope, w.days()).await?))
}
