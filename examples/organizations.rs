//! Organizations: an organization and everything around it, through its `TenantScope`, with the
//! global `User` table through `GlobalTables`.
//!
//! ```text
//! cargo run --example organizations
//! ```
//!
//! It creates an organization (the scope fills in its id), reads it back and updates its plan
//! and settings; creates users and makes them members with roles, lists the members, changes a
//! role with `update_many` and removes a member; records a subscription and audit log entries;
//! upserts a usage metric twice on its unique key, showing the value replaced; and finally
//! shows that a second organization's scope sees none of the first one's members.
//!
//! Without DATABASE_URL it starts a throwaway PostgreSQL from the machine's binaries (removed
//! when it exits) and connects as a role subject to row-level security. With
//! DATABASE_URL=postgres://user:password@host/db it migrates that database and writes its rows
//! there, in new organizations and users, so that it can run again.

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use flakeguard_db::entity::{
    audit_log, organization, organization_user, subscription, usage_metric, user,
};
use flakeguard_db::sea_orm::{
    ColumnTrait, Condition, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, Set,
};
use flakeguard_db::testing::{expect_nothing, expect_refused};
use flakeguard_db::{Context, Error, GlobalTables, Operation, OrgId, Result, TenantScope};
use serde_json::json;

#[tokio::main]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    // `_throwaway` keeps the throwaway database alive until the end of `main`.
    let (db, _throwaway) = flakeguard_db::testing::connect_example().await?;
    let global = db.global();
    let acme = db.scope(OrgId::generate());

    // ------------------------------------------------------------ the organization
    println!("\n1. create the organization through its scope");
    let created = acme
        .insert(organization::ActiveModel {
            name: Set("Acme".to_owned()),
            slug: Set(format!("acme-{}", acme.org_id())),
            github_login: Set(Some("acme-corp".to_owned())),
            ..Default::default() // id: the scope's tenant id; plan, status, settings: defaults
        })
        .await?;
    println!(
        "  created {} ({}): plan {:?}, status {:?}, settings {}",
        created.name, created.id, created.plan, created.status, created.settings
    );
    println!(
        "  its id is the scope's tenant id: {}",
        created.id == acme.org_id().as_str()
    );

    println!("\n2. read it back with scope.organization()");
    let Some(org) = acme.organization().await? else {
        return Err(not_found("Organization").into());
    };
    println!(
        "  {} (slug {}), created {}",
        org.name, org.slug, org.created_at
    );

    println!("\n3. update its plan and settings");
    let mut changes = org.into_active_model();
    changes.plan = Set("team".to_owned());
    changes.settings = Set(json!({
        "flakeThreshold": 0.2,
        "autoQuarantine": true,
        "notify": { "slack": "#ci-flakes" }
    }));
    let org = acme.update(changes).await?;
    println!(
        "  plan {:?}, settings {}, updatedAt {}",
        org.plan, org.settings, org.updated_at
    );

    // ------------------------------------------------------------ users and members
    println!("\n4. create users (global table) and add them as members with roles");
    let ada = add_member(&acme, &global, "Ada Lovelace", "ada", "owner").await?;
    let grace = add_member(&acme, &global, "Grace Hopper", "grace", "member").await?;
    let linus = add_member(&acme, &global, "Linus Torvalds", "linus", "member").await?;

    println!("\n5. list the members");
    list_members(&acme, &global).await?;

    println!("\n6. promote Grace to admin with update_many");
    let changed = acme
        .update_many(
            organization_user::ActiveModel {
                role: Set("admin".to_owned()),
                ..Default::default()
            },
            organization_user::Column::UserId.eq(grace.user_id.as_str()),
        )
        .await?;
    println!("  {changed} membership changed");

    println!("\n7. remove Linus with delete");
    acme.delete::<organization_user::Entity, _>(linus.id.clone())
        .await?;
    println!("  membership {} deleted", linus.id);
    list_members(&acme, &global).await?;

    // ------------------------------------------------------------ billing and audit
    println!("\n8. record a subscription");
    let now = Utc::now();
    let sub = acme
        .insert(subscription::ActiveModel {
            plan: Set("team".to_owned()),
            status: Set("active".to_owned()),
            current_period_start: Set(now),
            current_period_end: Set(now + TimeDelta::days(30)),
            metadata: Set(json!({ "seats": 10, "billingEmail": "billing@acme.example" })),
            ..Default::default()
        })
        .await?;
    println!(
        "  subscription {}: {} {}, {} to {}, cancel at period end: {}",
        sub.id,
        sub.plan,
        sub.status,
        sub.current_period_start.date_naive(),
        sub.current_period_end.date_naive(),
        sub.cancel_at_period_end
    );

    println!("\n9. write audit log entries with insert_many");
    let entries = [
        ("organization.update", "Organization", org.id.clone()),
        ("member.role_change", "OrganizationUser", grace.id.clone()),
        ("member.remove", "OrganizationUser", linus.id.clone()),
        ("subscription.create", "Subscription", sub.id.clone()),
    ];
    let written = acme
        .insert_many(
            entries
                .iter()
                .map(|(action, resource, id)| audit_log::ActiveModel {
                    user_id: Set(Some(ada.user_id.clone())),
                    action: Set((*action).to_owned()),
                    resource: Set((*resource).to_owned()),
                    resource_id: Set(Some(id.clone())),
                    details: Set(json!({ "via": "examples/organizations.rs" })),
                    ip_address: Set(Some("203.0.113.7".to_owned())),
                    ..Default::default()
                }),
        )
        .await?;
    println!("  {written} entries written");
    let log = acme
        .find::<audit_log::Entity>()
        .filter(audit_log::Column::Resource.eq("OrganizationUser"))
        .order_by_asc(audit_log::Column::Action)
        .all()
        .await?;
    for entry in &log {
        println!(
            "  {} on {} {}",
            entry.action,
            entry.resource,
            entry.resource_id.as_deref().unwrap_or("-")
        );
    }

    // ------------------------------------------------------------ usage metric upsert
    println!("\n10. upsert a usage metric twice on (orgId, metricType, period, date)");
    // Today at 00:00 UTC: the same value both times, so that the second write hits the key.
    let today = DateTime::<Utc>::UNIX_EPOCH + TimeDelta::days(now.timestamp().div_euclid(86_400));
    let key = [
        usage_metric::Column::OrgId,
        usage_metric::Column::MetricType,
        usage_metric::Column::Period,
        usage_metric::Column::Date,
    ];
    let mut first_id = String::new();
    for (value, source) in [(120, "first count"), (175, "recount after late uploads")] {
        let metric = acme
            .upsert(
                usage_metric::ActiveModel {
                    metric_type: Set("test_runs".to_owned()),
                    period: Set("daily".to_owned()),
                    date: Set(today),
                    value: Set(value),
                    metadata: Set(json!({ "source": source })),
                    ..Default::default()
                },
                key,
            )
            .await?;
        println!(
            "  {} {} {}: value {} ({}), row {}{}",
            metric.metric_type,
            metric.period,
            metric.date.date_naive(),
            metric.value,
            metric.metadata["source"],
            metric.id,
            if first_id.is_empty() {
                ""
            } else if first_id == metric.id {
                " (the same row, value replaced)"
            } else {
                " (A NEW ROW)"
            }
        );
        first_id = metric.id;
    }
    let metrics = acme
        .count::<usage_metric::Entity>(usage_metric::Column::MetricType.eq("test_runs"))
        .await?;
    println!("  test_runs metrics stored: {metrics}");

    // ------------------------------------------------------------ isolation
    println!("\n11. a second organization's scope cannot see Acme's members");
    let globex = db.scope(OrgId::generate());
    let other = globex
        .insert(organization::ActiveModel {
            name: Set("Globex".to_owned()),
            slug: Set(format!("globex-{}", globex.org_id())),
            ..Default::default()
        })
        .await?;
    println!("  created {} ({})", other.name, other.id);
    let theirs = globex
        .count::<organization_user::Entity>(Condition::all())
        .await?;
    let by_id = globex
        .find_by_id::<organization_user::Entity, _>(grace.id.clone())
        .await?;
    let ours = acme
        .count::<organization_user::Entity>(Condition::all())
        .await?;
    println!("  Acme counts {ours} members");
    expect_nothing("Globex counts members", theirs, theirs == 0)?;
    expect_nothing(
        "Globex looks up Grace's membership by id",
        &by_id,
        by_id.is_none(),
    )?;
    let acme_row = globex
        .find_by_id::<organization::Entity, _>(org.id.clone())
        .await?;
    expect_nothing(
        "Globex looks up Acme's organization row",
        &acme_row,
        acme_row.is_none(),
    )?;
    let promoted = globex
        .update_many(
            organization_user::ActiveModel {
                role: Set("owner".to_owned()),
                ..Default::default()
            },
            organization_user::Column::UserId.eq(grace.user_id.as_str()),
        )
        .await?;
    expect_nothing(
        "Globex tries to make Grace an owner (rows changed)",
        promoted,
        promoted == 0,
    )?;
    expect_refused(
        "Globex tries to remove Ada",
        globex
            .delete::<organization_user::Entity, _>(ada.id.clone())
            .await,
    )?;

    println!("\ndone");
    Ok(())
}

/// Prints the organization's members: the `OrganizationUser` rows through the scope, then their
/// users, which are global, through `GlobalTables`.
async fn list_members(scope: &TenantScope, global: &GlobalTables) -> Result<()> {
    let members = scope
        .find::<organization_user::Entity>()
        .order_by_asc(organization_user::Column::JoinedAt)
        .order_by_asc(organization_user::Column::Id)
        .all()
        .await?;
    let users: HashMap<String, user::Model> = global
        .all(
            user::Entity::find()
                .filter(user::Column::Id.is_in(members.iter().map(|m| m.user_id.clone())))
                .order_by_asc(user::Column::Email),
        )
        .await?
        .into_iter()
        .map(|u| (u.id.clone(), u))
        .collect();
    println!("  {} members:", members.len());
    for m in &members {
        let who = users
            .get(&m.user_id)
            .and_then(|u| u.name.clone())
            .unwrap_or_else(|| m.user_id.clone());
        println!("    {who:<16} {:<7} {}", m.role, m.status);
    }
    Ok(())
}

/// Creates a user (global) and makes them a member of the scope's organization with `role`.
async fn add_member(
    scope: &TenantScope,
    global: &GlobalTables,
    name: &str,
    handle: &str,
    role: &str,
) -> Result<organization_user::Model> {
    // "email" is unique across the whole database: one per run, so that it can run again.
    let person = global
        .insert(user::ActiveModel {
            email: Set(format!("{handle}+{}@example.com", scope.org_id())),
            name: Set(Some(name.to_owned())),
            ..Default::default()
        })
        .await?;
    let member = scope
        .insert(organization_user::ActiveModel {
            user_id: Set(person.id.clone()),
            role: Set(role.to_owned()),
            ..Default::default() // orgId: filled in by the scope
        })
        .await?;
    println!(
        "  user {name} <{}> ({}) joined as {}",
        person.email, person.id, member.role
    );
    Ok(member)
}

/// The error for a row that the example has just written and cannot find again.
fn not_found(table: &'static str) -> Error {
    Error::NotFound {
        context: Context {
            operation: Operation::Find,
            tenant: None,
            table: Some(table),
        },
    }
}
