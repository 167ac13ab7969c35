//! Notifications, the pure part: which limits notify and at which shares of their limit
//! ([`NotifyRules`]), the kinds of notice ([`NotifyKind`]), the identity that makes each notice
//! unique per window ([`NotificationId`]), and the texts ([`Messages`]).
//!
//! Nothing here reads a clock or does I/O: the store decides when a threshold is crossed and
//! writes the [`Notice`]s of the crossing ([`NoticePlan`]) to its [`Outbox`], keyed by
//! [`NotificationId::id`] so that each is kept once; a worker (the `limiter-notify` crate)
//! claims and delivers them, to webhooks, an [`Inbox`] per tenant, or a sink of your own.
//!
//! ```
//! use limiter_core::PolicySet;
//! use limiter_core::notify::{MessageVars, Messages, NotifyKind, NotifyRules};
//! use limiter_core::policy::PolicyKind;
//!
//! let policies = PolicySet::default();
//! let rules = NotifyRules::default();
//! assert!(rules.notifies("plan_daily"));
//! assert!(!rules.notifies("plan_burst"));
//!
//! let starter = policies.plan("starter").unwrap();
//! let vars = MessageVars::for_plan(&policies, starter, PolicyKind::PlanDaily)
//!     .unwrap()
//!     .percent(80);
//! let messages = Messages::default();
//! assert_eq!(
//!     messages.render(NotifyKind::Approaching, &vars).unwrap(),
//!     "You're at 80% of your daily limit"
//! );
//! assert_eq!(
//!     messages.upgrade_hint(&vars).unwrap(),
//!     "Upgrade to Professional for 20000/day; you are on Starter at 5000/day"
//! );
//! ```

mod inbox;
mod message;
mod notice;
mod outbox;
mod rules;

pub use inbox::{Inbox, InboxItem, InboxQuery};
pub use message::{MessageVars, Messages, MessagesConfig, PLACEHOLDERS, capitalise};
pub use notice::{Notice, NoticePlan};
pub use outbox::{ClaimRequest, Claimed, Outbox, OutboxStats, Settlement};
pub use rules::{NotificationId, NotifyConfig, NotifyKind, NotifyRules};
