//! The contracts every [`Inbox`] must meet, run by [`inbox_suite!`](crate::inbox_suite).

use limiter_core::Micros;
use limiter_core::notify::{Inbox, InboxItem, InboxQuery, NotifyKind};

use crate::fixtures::{BASE_NOW, SECOND};

/// An item of `tenant`'s inbox with id `id`, at `at`.
pub fn item(tenant: &str, id: &str, at: Micros) -> InboxItem {
    InboxItem {
        id: id.to_owned(),
        tenant: tenant.to_owned(),
        kind: NotifyKind::Approaching,
        policy: "plan_daily".to_owned(),
        message: format!("You're at 80% of your daily limit ({id})"),
        upgrade: Some("Upgrade to Professional for 20000/day".to_owned()),
        at,
        read_at: None,
    }
}

fn listed(items: &[InboxItem]) -> Vec<&str> {
    items.iter().map(|i| i.id.as_str()).collect()
}

/// An item is kept once per id; putting it again neither duplicates it nor clears its read
/// mark; items come back as they went in.
pub async fn put_keeps_each_id_once_and_its_read_mark(inbox: &dyn Inbox) {
    let mut first = item("acme", "ntf_1", BASE_NOW);
    first.kind = NotifyKind::Exhausted;
    first.upgrade = None;
    first.message = "ünïcode \"quoted\" {braces}".to_owned();
    assert!(inbox.put(&first).await.unwrap(), "{inbox:?}");
    assert!(!inbox.put(&first).await.unwrap(), "{inbox:?}: a redelivery");
    let listed_once = inbox.list(&InboxQuery::tenant("acme")).await.unwrap();
    assert_eq!(listed_once, [first.clone()], "{inbox:?}");
    assert!(
        inbox
            .mark_read("acme", "ntf_1", BASE_NOW + SECOND)
            .await
            .unwrap()
    );
    assert!(!inbox.put(&first).await.unwrap(), "{inbox:?}");
    let after = inbox.list(&InboxQuery::tenant("acme")).await.unwrap();
    assert_eq!(after.len(), 1, "{inbox:?}");
    assert_eq!(after[0].read_at, Some(BASE_NOW + SECOND), "{inbox:?}");
}

/// Lists are per tenant, newest first (ties by id, descending), filtered to unread on request,
/// and at most the query's limit long.
pub async fn lists_are_per_tenant_newest_first(inbox: &dyn Inbox) {
    for (id, at) in [
        ("ntf_a", BASE_NOW),
        ("ntf_c", BASE_NOW + 2 * SECOND),
        ("ntf_b", BASE_NOW + 2 * SECOND),
        ("ntf_d", BASE_NOW + SECOND),
    ] {
        inbox.put(&item("acme", id, at)).await.unwrap();
    }
    inbox.put(&item("bolt", "ntf_z", BASE_NOW)).await.unwrap();
    let all = inbox.list(&InboxQuery::tenant("acme")).await.unwrap();
    assert_eq!(
        listed(&all),
        ["ntf_c", "ntf_b", "ntf_d", "ntf_a"],
        "{inbox:?}"
    );
    let two = inbox
        .list(&InboxQuery::tenant("acme").limit(2))
        .await
        .unwrap();
    assert_eq!(listed(&two), ["ntf_c", "ntf_b"], "{inbox:?}");
    assert!(inbox.mark_read("acme", "ntf_b", BASE_NOW).await.unwrap());
    let unread = inbox
        .list(&InboxQuery::tenant("acme").unread())
        .await
        .unwrap();
    assert_eq!(listed(&unread), ["ntf_c", "ntf_d", "ntf_a"], "{inbox:?}");
    let other = inbox.list(&InboxQuery::tenant("bolt")).await.unwrap();
    assert_eq!(listed(&other), ["ntf_z"], "{inbox:?}");
    assert!(
        inbox
            .list(&InboxQuery::tenant("nobody"))
            .await
            .unwrap()
            .is_empty()
    );
}

/// Marking read works once, only on the tenant's own items, and the unread count follows.
pub async fn read_marks_are_per_tenant(inbox: &dyn Inbox) {
    inbox.put(&item("acme", "ntf_1", BASE_NOW)).await.unwrap();
    inbox.put(&item("acme", "ntf_2", BASE_NOW)).await.unwrap();
    inbox.put(&item("bolt", "ntf_3", BASE_NOW)).await.unwrap();
    assert_eq!(inbox.unread("acme").await.unwrap(), 2, "{inbox:?}");
    assert!(
        !inbox.mark_read("bolt", "ntf_1", BASE_NOW).await.unwrap(),
        "{inbox:?}: another tenant's id is not found"
    );
    assert!(
        !inbox
            .mark_read("acme", "ntf_missing", BASE_NOW)
            .await
            .unwrap()
    );
    assert!(inbox.mark_read("acme", "ntf_1", BASE_NOW).await.unwrap());
    assert!(
        !inbox
            .mark_read("acme", "ntf_1", BASE_NOW + SECOND)
            .await
            .unwrap(),
        "{inbox:?}: already read"
    );
    assert_eq!(inbox.unread("acme").await.unwrap(), 1, "{inbox:?}");
    assert_eq!(inbox.unread("bolt").await.unwrap(), 1, "{inbox:?}");
    assert_eq!(inbox.unread("nobody").await.unwrap(), 0, "{inbox:?}");
    let listed = inbox.list(&InboxQuery::tenant("acme")).await.unwrap();
    let read: Vec<Option<Micros>> = listed.iter().map(|i| i.read_at).collect();
    assert_eq!(read, [None, Some(BASE_NOW)], "{inbox:?}: ntf_2 then ntf_1");
}

/// Generates one `#[tokio::test]` per [`Inbox`] contract. `$new_inbox` names an
/// `async fn() -> Option<(impl Inbox + 'static, guard)>` giving an empty inbox (`None` skips
/// with a message).
#[macro_export]
macro_rules! inbox_suite {
    ($new_inbox:path) => {
        $crate::__inbox_tests! {
            $new_inbox;
            put_keeps_each_id_once_and_its_read_mark,
            lists_are_per_tenant_newest_first,
            read_marks_are_per_tenant,
        }
    };
}

/// Implementation detail of [`inbox_suite!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __inbox_tests {
    ($new_inbox:path; $($contract:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $contract() {
                let Some((inbox, _guard)) = $new_inbox().await else {
                    ::std::eprintln!("SKIPPED {}: no inbox to test", stringify!($contract));
                    return;
                };
                $crate::conformance::inbox::$contract(&inbox).await;
            }
        )*
    };
}
