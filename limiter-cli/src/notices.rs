//! `limiter notices`: whether notifications flow, seen from a shell. `status` counts the
//! outbox's notices by state, `inbox` lists a tenant's in-app inbox and `read` marks its items
//! read, over the core's [`Outbox`] and [`Inbox`] in a SQLite file or a Redis.

use std::io::Write;

use limiter_core::notify::{Inbox, InboxItem, InboxQuery, Outbox, OutboxStats};
use limiter_core::policy::check_namespace;
use limiter_core::request_log::format_ts;
use limiter_core::{Clock, Micros, SystemClock};
use serde::Serialize;

use crate::args::{
    Format, InboxArgs, NoticeStoreArgs, NoticesAction, NoticesArgs, NoticesStatusArgs, ReadArgs,
};
use crate::table::Table;
use crate::{CliError, Outcome, stores};

pub(crate) fn run(args: &NoticesArgs, out: &mut dyn Write) -> Result<Outcome, CliError> {
    stores::block_on(async {
        match &args.action {
            NoticesAction::Status(a) => status(a, out).await,
            NoticesAction::Inbox(a) => inbox(a, out).await,
            NoticesAction::Read(a) => read(a, out).await,
        }
    })
}

fn written(e: std::io::Error) -> CliError {
    CliError::Io {
        path: "standard output".into(),
        source: e,
    }
}

fn json(out: &mut dyn Write, value: &impl Serialize) -> Result<(), CliError> {
    serde_json::to_writer_pretty(&mut *out, value).map_err(|e| written(e.into()))?;
    writeln!(out).map_err(written)
}

/// A failure of `what` (the outbox, the inbox) once it is open.
fn failed(what: &'static str) -> impl Fn(limiter_core::Error) -> CliError {
    move |source| CliError::Store {
        at: what.into(),
        source,
    }
}

/// The Redis store named on the command line, once `--namespace` is known to be one that
/// keys can have (so that a typo is told without a server).
async fn redis(args: &NoticeStoreArgs) -> Result<limiter_redis::RedisStore, CliError> {
    check_namespace(&args.namespace, "--namespace").map_err(usage)?;
    stores::redis(args.redis.as_deref().unwrap_or_default()).await
}

fn usage(e: limiter_core::Error) -> CliError {
    CliError::Usage(e.to_string())
}

/// The outbox named on the command line.
async fn open_outbox(args: &NoticeStoreArgs) -> Result<Box<dyn Outbox>, CliError> {
    if let Some(path) = &args.sqlite {
        stores::existing(path)?;
        let outbox = limiter_sqlite::SqliteOutbox::open(path, stores::BUSY)
            .await
            .map_err(stores::sqlite_failed(path))?;
        return Ok(Box::new(outbox));
    }
    let store = redis(args).await?;
    let outbox = limiter_redis::RedisOutbox::new(&store, &args.namespace).map_err(usage)?;
    Ok(Box::new(outbox))
}

/// The inboxes named on the command line.
async fn open_inbox(args: &NoticeStoreArgs) -> Result<Box<dyn Inbox>, CliError> {
    if let Some(path) = &args.sqlite {
        stores::existing(path)?;
        let inbox = limiter_sqlite::SqliteInbox::open(path, stores::BUSY)
            .await
            .map_err(stores::sqlite_failed(path))?;
        return Ok(Box::new(inbox));
    }
    let store = redis(args).await?;
    let inbox = limiter_redis::RedisInbox::new(&store, &args.namespace).map_err(usage)?;
    Ok(Box::new(inbox))
}

#[derive(Serialize)]
struct StatusJson {
    /// The time "due" is counted at.
    at: String,
    pending: u64,
    due: u64,
    claimed: u64,
    delivered: u64,
    failed: u64,
}

async fn status(args: &NoticesStatusArgs, out: &mut dyn Write) -> Result<Outcome, CliError> {
    let outbox = open_outbox(&args.store).await?;
    let now = SystemClock.now();
    let stats = outbox.stats(now).await.map_err(failed("the outbox"))?;
    show_status(out, now, &stats, args.format)?;
    Ok(Outcome::Ok)
}

fn show_status(
    out: &mut dyn Write,
    now: Micros,
    stats: &OutboxStats,
    format: Format,
) -> Result<(), CliError> {
    if format == Format::Json {
        return json(
            out,
            &StatusJson {
                at: format_ts(now),
                pending: stats.pending,
                due: stats.due,
                claimed: stats.claimed,
                delivered: stats.delivered,
                failed: stats.failed,
            },
        );
    }
    writeln!(out, "notices in the outbox at {}", format_ts(now)).map_err(written)?;
    let mut t = Table::new(&["PENDING", "DUE NOW", "CLAIMED", "DELIVERED", "FAILED"]);
    t.row(
        [
            stats.pending,
            stats.due,
            stats.claimed,
            stats.delivered,
            stats.failed,
        ]
        .iter()
        .map(u64::to_string)
        .collect(),
    );
    out.write_all(t.render(0).as_bytes()).map_err(written)
}

/// An inbox item as `notices inbox` shows it.
#[derive(Serialize)]
struct ItemRow<'a> {
    id: &'a str,
    at: String,
    kind: &'static str,
    policy: &'a str,
    message: &'a str,
    upgrade: Option<&'a str>,
    read: bool,
    read_at: Option<String>,
}

impl ItemRow<'_> {
    fn of(item: &InboxItem) -> ItemRow<'_> {
        ItemRow {
            id: &item.id,
            at: format_ts(item.at),
            kind: item.kind.name(),
            policy: &item.policy,
            message: &item.message,
            upgrade: item.upgrade.as_deref(),
            read: item.read_at.is_some(),
            read_at: item.read_at.map(format_ts),
        }
    }
}

#[derive(Serialize)]
struct InboxJson<'a> {
    tenant: &'a str,
    /// All of the tenant's unread items, listed or not.
    unread: u64,
    items: Vec<ItemRow<'a>>,
}

async fn inbox(args: &InboxArgs, out: &mut dyn Write) -> Result<Outcome, CliError> {
    let inbox = open_inbox(&args.store).await?;
    let mut query =
        InboxQuery::tenant(&args.tenant).limit(usize::try_from(args.limit).unwrap_or(usize::MAX));
    if args.unread {
        query = query.unread();
    }
    let items = inbox.list(&query).await.map_err(failed("the inbox"))?;
    let unread = inbox
        .unread(&args.tenant)
        .await
        .map_err(failed("the inbox"))?;
    show_inbox(out, args, unread, &items)?;
    Ok(if items.is_empty() {
        Outcome::Finding
    } else {
        Outcome::Ok
    })
}

fn show_inbox(
    out: &mut dyn Write,
    args: &InboxArgs,
    unread: u64,
    items: &[InboxItem],
) -> Result<(), CliError> {
    let tenant = &args.tenant;
    if args.format == Format::Json {
        return json(
            out,
            &InboxJson {
                tenant,
                unread,
                items: items.iter().map(ItemRow::of).collect(),
            },
        );
    }
    if items.is_empty() {
        let which = if args.unread {
            "unread notices"
        } else {
            "notices"
        };
        return writeln!(out, "no {which} in the inbox of tenant {tenant}").map_err(written);
    }
    writeln!(
        out,
        "inbox of tenant {tenant}, newest first ({unread} unread)"
    )
    .map_err(written)?;
    let mut t = Table::new(&["TIME", "ID", "KIND", "POLICY", "READ", "MESSAGE"]);
    for item in items {
        t.row(vec![
            format_ts(item.at),
            item.id.clone(),
            item.kind.name().into(),
            item.policy.clone(),
            item.read_at.map_or_else(|| "-".into(), format_ts),
            item.message.clone(),
        ]);
        // The hint under its message, where it reads as one notice rather than a wide column.
        if let Some(upgrade) = &item.upgrade {
            let mut hint = vec![String::new(); 5];
            hint.push(upgrade.clone());
            t.row(hint);
        }
    }
    out.write_all(t.render(0).as_bytes()).map_err(written)
}

/// What `notices read` did, as it prints it with `--format json`.
#[derive(Serialize)]
struct Marks<'a> {
    tenant: &'a str,
    /// The ids marked read now.
    marked: Vec<&'a str>,
    /// The ids that changed nothing: not in the tenant's inbox, or read already.
    unchanged: Vec<&'a str>,
}

async fn read(args: &ReadArgs, out: &mut dyn Write) -> Result<Outcome, CliError> {
    let inbox = open_inbox(&args.store).await?;
    let now = SystemClock.now();
    let mut ids: Vec<&str> = Vec::with_capacity(args.ids.len());
    for id in &args.ids {
        if !ids.contains(&id.as_str()) {
            ids.push(id);
        }
    }
    // Each id on its own: one that is not there is reported below and stops nothing.
    let (mut marked, mut unchanged) = (Vec::new(), Vec::new());
    for id in ids {
        if inbox
            .mark_read(&args.tenant, id, now)
            .await
            .map_err(failed("the inbox"))?
        {
            marked.push(id);
        } else {
            unchanged.push(id);
        }
    }
    let result = Marks {
        tenant: &args.tenant,
        marked,
        unchanged,
    };
    if args.format == Format::Json {
        json(out, &result)?;
    } else {
        show_read(out, &result)?;
    }
    Ok(if result.unchanged.is_empty() {
        Outcome::Ok
    } else {
        Outcome::Finding
    })
}

fn show_read(out: &mut dyn Write, result: &Marks<'_>) -> Result<(), CliError> {
    let tenant = result.tenant;
    let asked = result.marked.len() + result.unchanged.len();
    writeln!(
        out,
        "marked {} of {asked} read in the inbox of tenant {tenant}",
        result.marked.len()
    )
    .map_err(written)?;
    for id in &result.unchanged {
        // The inbox answers only whether a mark changed anything, so an unknown id and one
        // read already cannot be told apart here.
        writeln!(
            out,
            "not marked: {id} is not an unread item of tenant {tenant} (unknown id, or read \
             already)"
        )
        .map_err(written)?;
    }
    Ok(())
}
