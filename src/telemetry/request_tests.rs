//! Tests of the request record: its task-local slot, and hand-over between tasks.

use super::*;

fn read<T>(field: impl FnOnce(&RequestRecord) -> T) -> Option<T> {
    CURRENT.try_with(|record| field(&lock(record))).ok()
}

#[tokio::test]
async fn calls_outside_a_request_do_nothing() {
    identify(&CustomerId::parse("c1").expect("valid id"));
    upstream_started();
    finish();
    let output = time_ledger(async { 7 }).await;
    assert_eq!(output, 7);
    assert!(read(|record| record.finished).is_none());
}

#[tokio::test]
async fn plain_response_is_logged_once_by_metered() {
    let response = metered(Endpoint::Embeddings, async {
        requested("text-embedding-3-small", false);
        assert_eq!(read(|record| record.finished), Some(false));
        Response::new(axum::body::Body::empty())
    })
    .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn stream_relay_logs_the_record() {
    let response = metered(Endpoint::ChatCompletions, async {
        requested("gpt-4o", true);
        let relay = stream(200, async {
            assert_eq!(
                read(|record| record.stream),
                Some(Some(true)),
                "the relay sees the record"
            );
            finish();
            assert_eq!(read(|record| record.finished), Some(true));
        });
        assert_eq!(read(|record| record.streaming), Some(true));
        relay.await;
        Response::new(axum::body::Body::empty())
    })
    .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn carried_work_fills_the_same_record() {
    metered(Endpoint::Responses, async {
        let elsewhere = crate::task::spawn_named(
            "test-carry",
            carry(async {
                upstream_started();
                add_ledger_time(Duration::from_millis(3));
            }),
        );
        elsewhere.await.expect("task ran");
        assert_eq!(read(|record| record.upstream_started.is_some()), Some(true));
        let ledger = read(|record| record.ledger_time);
        assert!(
            ledger.is_some_and(|time| time >= Duration::from_millis(3)),
            "{ledger:?}"
        );
        Response::new(axum::body::Body::empty())
    })
    .await;
}

#[tokio::test]
async fn exchange_notes_the_error_status() {
    metered(Endpoint::ChatCompletions, async {
        let failed = exchange(async { Err(ProxyError::UpstreamTimeout { seconds: 5 }) }).await;
        assert!(failed.is_err());
        assert_eq!(read(|record| record.status), Some(Some(504)));
        assert_eq!(
            read(|record| record.error_code),
            Some(Some("upstream_timeout"))
        );
        Response::new(axum::body::Body::empty())
    })
    .await;
}
