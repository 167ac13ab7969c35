//! A real server on a free port, a real HTTP client, and a limiter on a manual clock (so that
//! no test depends on how long it takes).

#![allow(dead_code, unreachable_pub)]

#[path = "../../examples/service/app.rs"]
pub mod app;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use limiter_core::api_key::{KeyAdmin, KeyFormat, NewKey};
use limiter_core::{Limiter, ManualClock, PolicySet, TrustedProxies};
use limiter_memory::MemoryKeyStore;
use limiter_tower::Recorder;

/// A fixed "now": 2026-09-21T13:46:40Z.
pub const NOW: u64 = 1_790_000_000_000_000;

pub struct Server {
    pub addr: SocketAddr,
    pub client: Client<HttpConnector, Empty<Bytes>>,
    pub keys: Keys,
}

/// One key per demo tenant.
pub struct Keys {
    pub acme: String,
    pub ops: String,
    pub partner: String,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

/// The example service over `store`, on a free port of 127.0.0.1.
pub async fn start(
    store: impl limiter_core::Store + 'static,
    proxies: TrustedProxies,
    recorder: Option<Recorder>,
) -> Server {
    let format = KeyFormat::new("demo_test").expect("prefix");
    let key_store = Arc::new(MemoryKeyStore::new());
    let limiter = Limiter::builder(PolicySet::default(), store)
        .clock(ManualClock::new(NOW))
        .keys(format.clone(), key_store.clone())
        .build();
    let admin = KeyAdmin::new(format, key_store);
    let key = |tenant: &'static str, bypass: bool| {
        let admin = &admin;
        async move {
            admin
                .create(NewKey::new(tenant, "test").bypass(bypass), NOW)
                .await
                .expect("key")
                .secret
                .expose()
                .to_owned()
        }
    };
    let keys = Keys {
        acme: key("acme", false).await,
        ops: key("ops", false).await,
        partner: key("partner", false).await,
    };
    // The partner's key bypasses the limits.
    let keys = Keys {
        partner: key("partner", true).await,
        ..keys
    };
    let mut tenants = app::demo_tenants();
    // Staff on the smallest plan: "never limited" must come from the staff flag.
    if let Some(ops) = tenants.get_mut("ops") {
        ops.plan = "free".into();
    }
    let router = app::router(limiter, proxies, tenants, recorder);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("server");
    });
    let client = Client::builder(TokioExecutor::new()).build_http();
    Server { addr, client, keys }
}

impl Server {
    /// `GET path` with these headers.
    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut request = Request::get(format!("http://{}{path}", self.addr));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = self
            .client
            .request(request.body(Empty::new()).expect("request"))
            .await
            .expect("a response");
        let (head, body) = response.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        Reply {
            status: head.status,
            headers: head.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    /// `GET path` with `key` as a bearer token.
    pub async fn get_with_key(&self, path: &str, key: &str) -> Reply {
        self.get(path, &[("authorization", &format!("Bearer {key}"))])
            .await
    }
}

pub fn memory_store() -> limiter_memory::MemoryStore {
    limiter_memory::MemoryStore::new(limiter_memory::MemoryConfig::new()).expect("store")
}
