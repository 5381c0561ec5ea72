//! A tracing layer that records every span as it closes: its target, name, fields and the
//! names of its ancestors.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// A span as it closed.
#[derive(Debug, Clone, Default)]
pub struct Closed {
    pub target: &'static str,
    pub name: &'static str,
    pub fields: BTreeMap<String, String>,
    pub parents: Vec<&'static str>,
}

#[derive(Default)]
struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

/// Records every span and every field value it was given.
#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<Closed>>>);

impl Capture {
    /// The spans closed so far, oldest first.
    pub fn closed(&self) -> Vec<Closed> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }
    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<Fields>()
        {
            values.record(fields);
        }
    }
    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let fields = span
            .extensions()
            .get::<Fields>()
            .map(|f| f.0.clone())
            .unwrap_or_default();
        let parents = span.scope().skip(1).map(|p| p.name()).collect();
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Closed {
                target: span.metadata().target(),
                name: span.name(),
                fields,
                parents,
            });
    }
}
