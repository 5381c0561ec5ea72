//! Tracing: the spans every scoped operation runs in, printed by `tracing-subscriber`.
//!
//! ```text
//! cargo run --example tracing
//! ```
//!
//! Each operation is a `flakeguard.operation` span (tenant, table, operation, rows, outcome),
//! with `flakeguard.begin` and `flakeguard.commit` beneath it and a DEBUG event `finished`
//! carrying the duration; a multi-statement unit of work is a `flakeguard.transaction` span.
//! The fields hold what the caller passed and counts, never row contents. Printed here when
//! each span closes, with its fields.

use flakeguard_db::entity::{fg_repository, fg_test_case, organization};
use flakeguard_db::sea_orm::Set;
use flakeguard_db::{Error, OrgId};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

#[tokio::main]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let (db, _throwaway) = flakeguard_db::testing::connect_example().await?;
    // This crate's spans and events only (SeaORM and sqlx have their own).
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_span_events(FmtSpan::CLOSE)
                .with_target(false)
                .without_time(),
        )
        .with(Targets::new().with_target("flakeguard_db", tracing::Level::DEBUG))
        .init();

    let acme = db.scope(OrgId::new("acme-tracing")?);
    acme.insert(organization::ActiveModel {
        name: Set("Acme".into()),
        slug: Set(format!("acme-{}", OrgId::generate())),
        ..Default::default()
    })
    .await?;
    let repo = acme
        .insert(fg_repository::ActiveModel {
            owner: Set("acme".into()),
            name: Set("web".into()),
            installation_id: Set("1".into()),
            ..Default::default()
        })
        .await?;
    acme.transaction(|tx| {
        let repo = repo.id.clone();
        Box::pin(async move {
            for name in ["adds", "divides"] {
                tx.insert(fg_test_case::ActiveModel {
                    repo_id: Set(repo.clone()),
                    suite: Set("unit".into()),
                    name: Set(name.into()),
                    ..Default::default()
                })
                .await?;
            }
            Ok::<_, Error>(())
        })
    })
    .await?;
    let cases = acme.find::<fg_test_case::Entity>().all().await?;
    println!("{} test cases", cases.len());
    // A refusal shows in the span's outcome: tenant_denied.
    let other = db.scope(OrgId::new("globex-tracing")?);
    let refused = other
        .delete::<fg_test_case::Entity, _>(cases[0].id.clone())
        .await;
    println!("Globex deletes Acme's test case: {}", refused.is_err());
    Ok(())
}
