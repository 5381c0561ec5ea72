//! A small HTTP service on flakeguard-db: CI posts JUnit reports, dashboards read failure rates,
//! flaky tests, failure clusters and expiring quarantines. A bearer token names the
//! organization; everything else goes through that organization's `TenantScope`.
//!
//! ```text
//! cargo run --example service
//!     # a throwaway database, two organizations keyed by UUID, and a short session over HTTP
//! DATABASE_URL=postgres://app@localhost/flakeguard FLAKEGUARD_TOKENS="tok1=<org id>,tok2=<org id>" \
//!     cargo run --example service -- --serve 127.0.0.1:8080
//! ```
//!
//! The routes are in `app.rs`; storing a report in `ingest.rs`; reading JUnit XML in
//! `junit.rs`. `tests/service.rs` drives the same router over HTTP.

mod app;
mod ingest;
mod junit;

use std::collections::HashMap;
use std::sync::Arc;

use flakeguard_db::OrgId;
use flakeguard_db::entity::{fg_repository, organization};
use flakeguard_db::sea_orm::Set;
use uuid::Uuid;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .init();
    let mut args = std::env::args().skip(1);
    match (args.next().as_deref(), args.next()) {
        (Some("--serve"), Some(addr)) => serve(&addr).await,
        (None, _) => demo().await,
        _ => Err("usage: service [--serve ADDR]".into()),
    }
}

/// Serves on `addr` with the database of DATABASE_URL and the tokens of FLAKEGUARD_TOKENS
/// (`token=org,token=org`).
async fn serve(addr: &str) -> Result<(), BoxError> {
    let url = std::env::var("DATABASE_URL").map_err(|_| "DATABASE_URL is not set")?;
    let mut tokens = HashMap::new();
    for pair in std::env::var("FLAKEGUARD_TOKENS")
        .map_err(|_| "FLAKEGUARD_TOKENS is not set")?
        .split(',')
    {
        let (token, org) = pair
            .split_once('=')
            .ok_or("FLAKEGUARD_TOKENS holds token=org pairs")?;
        tokens.insert(token.trim().to_owned(), OrgId::new(org.trim())?);
    }
    let db = flakeguard_db::connect(&url).await?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(
        listener,
        app::router(Arc::new(app::AppState { db, tokens })),
    )
    .await?;
    Ok(())
}

/// Creates organization `org` with one repository; returns the repository's id.
async fn organization(db: &flakeguard_db::Db, org: &OrgId, name: &str) -> Result<String, BoxError> {
    let scope = db.scope(org.clone());
    scope
        .insert(organization::ActiveModel {
            name: Set(name.to_owned()),
            slug: Set(format!("{}-{}", name.to_lowercase(), &org.as_str()[..8])),
            ..Default::default()
        })
        .await?;
    let repo = scope
        .insert(fg_repository::ActiveModel {
            owner: Set(name.to_lowercase()),
            name: Set("web".into()),
            installation_id: Set(format!("inst-{org}")),
            ..Default::default()
        })
        .await?;
    Ok(repo.id)
}

const REPORT: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites>
  <testsuite name="unit">
    <testcase classname="Math" name="adds" time="0.004"/>
    <testcase classname="Math" name="divides" time="0.120">
      <failure message="expected 2 but was 3">at Math.divides(Math.java:42)</failure>
    </testcase>
    <testcase classname="Net" name="fetches" time="2.5"><skipped/></testcase>
  </testsuite>
</testsuites>"#;

/// A short session against a throwaway database: each step prints what it got, and a status
/// other than the expected one ends the program with an error.
async fn demo() -> Result<(), BoxError> {
    let (db, _tmp) = flakeguard_db::testing::connect_example().await?;
    let (acme, globex) = (OrgId::from(Uuid::new_v4()), OrgId::from(Uuid::new_v4()));
    let acme_repo = organization(&db, &acme, "Acme").await?;
    let globex_repo = organization(&db, &globex, "Globex").await?;
    let (acme_token, globex_token) = (
        Uuid::new_v4().simple().to_string(),
        Uuid::new_v4().simple().to_string(),
    );
    println!("organizations {acme} (Acme) and {globex} (Globex)");
    let tokens = HashMap::from([(acme_token.clone(), acme), (globex_token, globex)]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let router = app::router(Arc::new(app::AppState { db, tokens }));
    tokio::spawn(async move { axum::serve(listener, router).await });
    println!("serving on {base}");

    let http = reqwest::Client::new();
    let delivery = Uuid::new_v4().to_string();
    let post = || {
        http.post(format!(
            "{base}/repos/{acme_repo}/runs/1001/junit?job=unit-tests"
        ))
        .bearer_auth(&acme_token)
        .header("X-GitHub-Delivery", &delivery)
        .body(REPORT)
    };
    let steps: [(&str, reqwest::RequestBuilder, u16); 7] = [
        ("Acme posts a JUnit report", post(), 201),
        ("the webhook is redelivered", post(), 200),
        (
            "Acme reads its failure rates",
            http.get(format!("{base}/repos/{acme_repo}/failure-rates?days=7"))
                .bearer_auth(&acme_token),
            200,
        ),
        (
            "Acme reads its flakiest tests",
            http.get(format!("{base}/repos/{acme_repo}/flakiest?limit=5"))
                .bearer_auth(&acme_token),
            200,
        ),
        (
            "Acme asks for Globex's repository",
            http.get(format!("{base}/repos/{globex_repo}/failure-rates"))
                .bearer_auth(&acme_token),
            404,
        ),
        (
            "a malformed report",
            http.post(format!("{base}/repos/{acme_repo}/runs/1002/junit"))
                .bearer_auth(&acme_token)
                .header("X-GitHub-Delivery", Uuid::new_v4().to_string())
                .body("<testsuites><testsuite>"),
            400,
        ),
        (
            "no token",
            http.get(format!("{base}/repos/{acme_repo}")),
            401,
        ),
    ];
    for (what, request, expected) in steps {
        let response = request.send().await?;
        let status = response.status().as_u16();
        let body = response.text().await?;
        println!("{what}: {status} {body}");
        if status != expected {
            return Err(format!("{what}: status {status}, expected {expected}").into());
        }
    }
    Ok(())
}
