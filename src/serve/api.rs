//! The HTTP API of one replica (described in `docs/openapi.yaml`).

use super::clock::Clock;
use super::replication::Replica;
use super::store::{StoreError, Update};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The header a client sends so that a retried write applies once.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Set on a response that replays the stored answer of an earlier request.
pub const REPLAYED: &str = "idempotent-replayed";

/// An error answer: a status and `{"error": message}`.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

/// Bytes each write leaks under `--fault leak-memory`: 4 KiB, about
/// 240 MB a minute at 1,000 writes a second, the slope a short soak shows.
pub const LEAK_BYTES: usize = 4096;

/// What `--fault leak-memory` holds on to, never read and never freed.
static LEAKED: parking_lot::Mutex<Vec<Box<[u8]>>> = parking_lot::Mutex::new(Vec::new());

type Shared = State<Arc<Replica>>;
type Answer = Result<Response, ApiError>;

/// Every route of a replica.
pub fn router(replica: Arc<Replica>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/counters/{key}", get(read_counter))
        .route("/counters/{key}/increment", post(increment))
        .route("/sets/{key}", get(read_set))
        .route("/sets/{key}/add", post(add))
        .route("/sets/{key}/remove", post(remove))
        .route("/2p-sets/{key}", get(read_two_phase_set))
        .route("/2p-sets/{key}/add", post(two_phase_add))
        .route("/2p-sets/{key}/remove", post(two_phase_remove))
        .route("/registers/lww/{key}", get(read_lww).post(write_lww))
        .route("/registers/mv/{key}", get(read_mv).post(write_mv))
        .route("/replication/pull", post(pull))
        .route("/replication/clock", get(clock))
        .route("/admin/partition", post(partition))
        .route("/admin/heal", post(heal))
        .route("/admin/state", get(state))
        .with_state(replica)
}

async fn health(State(r): Shared) -> Json<Value> {
    Json(json!({"status": "ok", "replica": r.id}))
}

async fn write(r: &Replica, headers: &HeaderMap, update: Update) -> Answer {
    let key = headers
        .get(IDEMPOTENCY_KEY)
        .map(|v| {
            v.to_str().map_err(|_| {
                ApiError(
                    StatusCode::BAD_REQUEST,
                    "Idempotency-Key must be visible ASCII".into(),
                )
            })
        })
        .transpose()?;
    let (body, replayed) = r.store.apply(&update, key).await?;
    if r.fault == Some(super::ServeFault::LeakMemory) {
        // Written, not just allocated: the pages are resident.
        LEAKED
            .lock()
            .push(vec![0xA5; LEAK_BYTES].into_boxed_slice());
    }
    let mut response = Json(body).into_response();
    if replayed {
        response
            .headers_mut()
            .insert(REPLAYED, axum::http::HeaderValue::from_static("true"));
    }
    Ok(response)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeltaBody {
    delta: i64,
}

async fn increment(
    State(r): Shared,
    Path(key): Path<String>,
    headers: HeaderMap,
    Json(body): Json<DeltaBody>,
) -> Answer {
    write(
        &r,
        &headers,
        Update::Increment {
            key,
            delta: body.delta,
        },
    )
    .await
}

async fn read_counter(State(r): Shared, Path(key): Path<String>) -> Answer {
    let value = r.store.counter(&key).await?;
    Ok(Json(json!({"key": key, "value": value})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ElementBody {
    element: Value,
}

async fn add(
    State(r): Shared,
    Path(key): Path<String>,
    headers: HeaderMap,
    Json(body): Json<ElementBody>,
) -> Answer {
    let element = body.element;
    write(&r, &headers, Update::Add { key, element }).await
}

async fn remove(
    State(r): Shared,
    Path(key): Path<String>,
    headers: HeaderMap,
    Json(body): Json<ElementBody>,
) -> Answer {
    let element = body.element;
    write(&r, &headers, Update::Remove { key, element }).await
}

async fn read_set(State(r): Shared, Path(key): Path<String>) -> Answer {
    let elements = r.store.set(&key).await?;
    Ok(Json(json!({"key": key, "elements": elements})).into_response())
}

async fn two_phase_add(
    State(r): Shared,
    Path(key): Path<String>,
    headers: HeaderMap,
    Json(body): Json<ElementBody>,
) -> Answer {
    let element = body.element;
    write(&r, &headers, Update::TwoPAdd { key, element }).await
}

async fn two_phase_remove(
    State(r): Shared,
    Path(key): Path<String>,
    headers: HeaderMap,
    Json(body): Json<ElementBody>,
) -> Answer {
    let element = body.element;
    write(&r, &headers, Update::TwoPRemove { key, element }).await
}

async fn read_two_phase_set(State(r): Shared, Path(key): Path<String>) -> Answer {
    let elements = r.store.two_phase_set(&key).await?;
    Ok(Json(json!({"key": key, "elements": elements})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ValueBody {
    value: Value,
    #[serde(default)]
    context: Option<Clock>,
}

async fn write_lww(
    State(r): Shared,
    Path(key): Path<String>,
    headers: HeaderMap,
    Json(body): Json<ValueBody>,
) -> Answer {
    let value = body.value;
    write(&r, &headers, Update::LwwWrite { key, value }).await
}

async fn read_lww(State(r): Shared, Path(key): Path<String>) -> Answer {
    let body = match r.store.lww(&key).await? {
        Some((value, ts, replica)) => {
            json!({"key": key, "value": value, "ts": ts, "replica": replica})
        }
        None => json!({"key": key, "value": null, "ts": null, "replica": null}),
    };
    Ok(Json(body).into_response())
}

async fn write_mv(
    State(r): Shared,
    Path(key): Path<String>,
    headers: HeaderMap,
    Json(body): Json<ValueBody>,
) -> Answer {
    let update = Update::MvWrite {
        key,
        value: body.value,
        context: body.context.unwrap_or_default(),
    };
    write(&r, &headers, update).await
}

async fn read_mv(State(r): Shared, Path(key): Path<String>) -> Answer {
    let (values, context) = r.store.mv(&key).await?;
    Ok(Json(json!({"key": key, "values": values, "context": context})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PullBody {
    from: u16,
    since: Clock,
}

async fn pull(State(r): Shared, Json(body): Json<PullBody>) -> Answer {
    if r.blocked.read().contains(&body.from) {
        return Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("replica {} is partitioned from replica {}", r.id, body.from),
        ));
    }
    let delta = r.store.delta_since(&body.since).await?;
    Ok(Json(delta).into_response())
}

async fn clock(State(r): Shared) -> Answer {
    Ok(Json(r.store.clock().await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PartitionBody {
    blocked: Vec<u16>,
}

async fn partition(State(r): Shared, Json(body): Json<PartitionBody>) -> Json<Value> {
    let mut blocked = r.blocked.write();
    *blocked = body.blocked.into_iter().filter(|p| *p != r.id).collect();
    if !blocked.is_empty() {
        r.was_partitioned.store(true, Ordering::SeqCst);
    }
    Json(json!({"replica": r.id, "blocked": *blocked}))
}

async fn heal(State(r): Shared) -> Json<Value> {
    r.heal();
    Json(json!({"replica": r.id, "blocked": []}))
}

async fn state(State(r): Shared) -> Json<Value> {
    Json(json!({
        "replica": r.id,
        "blocked": *r.blocked.read(),
        "syncing": r.syncing.load(Ordering::SeqCst),
        "fault": r.fault.map(|f| f.name()),
    }))
}
