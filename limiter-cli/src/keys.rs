//! `limiter keys`: create, list, revoke, rotate and flag API keys in a SQLite file or a Redis,
//! over the core's [`KeyAdmin`]. A secret is printed once, when its key is created (or
//! rotated in), and never again: the stores hold only its hash.

use std::io::Write;
use std::sync::Arc;

use limiter_core::api_key::{IssuedKey, KeyAdmin, KeyFormat, KeyId, KeyRecord, KeyStore, NewKey};
use limiter_core::request_log::format_ts;
use limiter_core::{Clock, SystemClock};
use serde::Serialize;

use crate::args::{Format, KeyStoreArgs, KeysAction, KeysArgs};
use crate::table::Table;
use crate::{CliError, Outcome, stores};

/// A key as `keys list` shows it: never its secret, nor its hash.
#[derive(Debug, Serialize)]
struct Shown {
    id: String,
    tenant: String,
    user: Option<String>,
    name: String,
    /// The first characters of the secret, to recognise it.
    start: String,
    active: bool,
    bypass: bool,
    created_at: String,
    expires_at: Option<String>,
    revoked_at: Option<String>,
    last_used_at: Option<String>,
}

impl Shown {
    fn of(r: &KeyRecord) -> Shown {
        Shown {
            id: r.id.as_str().to_owned(),
            tenant: r.tenant.clone(),
            user: r.user.clone(),
            name: r.name.clone(),
            start: r.start.clone(),
            active: r.active,
            bypass: r.bypass,
            created_at: format_ts(r.created_at),
            expires_at: r.expires_at.map(format_ts),
            revoked_at: r.revoked_at.map(format_ts),
            last_used_at: r.last_used_at.map(format_ts),
        }
    }
}

/// A key just issued, as `create` and `rotate` print it with `--format json`.
#[derive(Debug, Serialize)]
struct Issued<'a> {
    secret: &'a str,
    key: Shown,
}

pub(crate) fn run(args: &KeysArgs, out: &mut dyn Write) -> Result<Outcome, CliError> {
    stores::block_on(run_async(args, out))
}

async fn run_async(args: &KeysArgs, out: &mut dyn Write) -> Result<Outcome, CliError> {
    let (store_args, prefix) = match &args.action {
        KeysAction::Create(a) => (&a.store, Some(a.prefix.as_str())),
        KeysAction::Rotate(a) => (&a.store, Some(a.prefix.as_str())),
        KeysAction::List(a) => (&a.store, None),
        KeysAction::Revoke(a) => (&a.store, None),
        KeysAction::SetBypass(a) => (&a.store, None),
    };
    // Listing and revoking make no key: any valid prefix serves the facade.
    let format = KeyFormat::new(prefix.unwrap_or("key")).map_err(CliError::Request)?;
    let admin = KeyAdmin::new(format, open(store_args).await?);
    let now = SystemClock.now();
    let written = |e: std::io::Error| CliError::Io {
        path: "standard output".into(),
        source: e,
    };
    match &args.action {
        KeysAction::Create(a) => {
            let mut new = NewKey::new(&a.tenant, &a.name).bypass(a.bypass);
            if let Some(user) = &a.user {
                new = new.user(user);
            }
            if let Some(ttl) = a.expires_in {
                new = new.expires_at(now.saturating_add(limiter_core::time::micros(ttl)));
            }
            let issued = admin.create(new, now).await.map_err(refused)?;
            issue(out, &issued, a.format).map_err(written)?;
        }
        KeysAction::Rotate(a) => {
            let id = KeyId::new(&a.id);
            let issued = admin
                .rotate(&a.tenant, &id, a.overlap, now)
                .await
                .map_err(refused)?;
            issue(out, &issued, a.format).map_err(written)?;
        }
        KeysAction::List(a) => {
            let keys = admin.list(&a.tenant).await.map_err(refused)?;
            let shown: Vec<Shown> = keys.iter().map(Shown::of).collect();
            match a.format {
                Format::Json => {
                    serde_json::to_writer_pretty(&mut *out, &shown)
                        .map_err(|e| written(e.into()))?;
                    writeln!(out).map_err(written)?;
                }
                Format::Human => out.write_all(table(&shown).as_bytes()).map_err(written)?,
            }
        }
        KeysAction::Revoke(a) => {
            let record = admin
                .revoke(&a.tenant, &KeyId::new(&a.id), now)
                .await
                .map_err(refused)?;
            writeln!(out, "revoked {} ({})", record.id.as_str(), record.name).map_err(written)?;
        }
        KeysAction::SetBypass(a) => {
            let record = admin
                .set_bypass(&a.tenant, &KeyId::new(&a.id), a.bypass, now)
                .await
                .map_err(refused)?;
            writeln!(
                out,
                "{} ({}) bypass: {}",
                record.id.as_str(),
                record.name,
                if record.bypass { "on" } else { "off" }
            )
            .map_err(written)?;
        }
    }
    Ok(Outcome::Ok)
}

/// The key store named on the command line.
async fn open(args: &KeyStoreArgs) -> Result<Arc<dyn KeyStore>, CliError> {
    if let Some(path) = &args.sqlite {
        let store = limiter_sqlite::SqliteStore::open(path, limiter_sqlite::SqliteConfig::new())
            .await
            .map_err(stores::sqlite_failed(path))?;
        return Ok(Arc::new(limiter_sqlite::SqliteKeyStore::new(Arc::new(
            store,
        ))));
    }
    let store = stores::redis(args.redis.as_deref().unwrap_or_default()).await?;
    Ok(Arc::new(limiter_redis::RedisKeyStore::new(
        store,
        args.namespace.clone(),
    )))
}

/// A store's refusal (an unknown key, a revoked key changed) is a finding; its failure is not.
fn refused(error: limiter_core::Error) -> CliError {
    match error {
        limiter_core::Error::InvalidRequest(_) | limiter_core::Error::InvalidConfig { .. } => {
            CliError::Request(error)
        }
        error => CliError::Store {
            at: "the key store".into(),
            source: error,
        },
    }
}

/// Prints a new key's secret: the only time it is ever shown.
fn issue(out: &mut dyn Write, issued: &IssuedKey, format: Format) -> std::io::Result<()> {
    let secret = issued.secret.expose();
    match format {
        Format::Json => {
            let shown = Issued {
                secret,
                key: Shown::of(&issued.record),
            };
            serde_json::to_writer_pretty(&mut *out, &shown)?;
            writeln!(out)?;
        }
        Format::Human => writeln!(out, "{secret}")?,
    }
    eprintln!(
        "key {} ({}) of tenant {}: the secret above is shown once and stored nowhere; hand it \
         over now",
        issued.record.id.as_str(),
        issued.record.name,
        issued.record.tenant
    );
    Ok(())
}

fn table(keys: &[Shown]) -> String {
    if keys.is_empty() {
        return "no keys\n".into();
    }
    let mut t = Table::new(&[
        "ID",
        "NAME",
        "USER",
        "START",
        "STATE",
        "BYPASS",
        "CREATED",
        "EXPIRES",
        "LAST USED",
    ]);
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    for k in keys {
        let state = if k.revoked_at.is_some() {
            "revoked"
        } else if k.active {
            "active"
        } else {
            "inactive"
        };
        t.row(vec![
            k.id.clone(),
            k.name.clone(),
            or_dash(&k.user),
            k.start.clone(),
            state.into(),
            if k.bypass { "yes" } else { "no" }.into(),
            k.created_at.clone(),
            or_dash(&k.expires_at),
            or_dash(&k.last_used_at),
        ]);
    }
    t.render(0)
}
