"""Each service is real and reachable through the same clients the app uses (infra.bootstrap)."""

from __future__ import annotations

import uuid

import httpx
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from infra.bootstrap import Container
from tests.support import wait_for_topic_leaders


def test_postgres_is_version_15_and_runs_queries(container: Container) -> None:
    with container.postgres_pool.connection() as conn:
        version = conn.execute("SELECT current_setting('server_version_num')::int").fetchone()
        conn.execute("CREATE TEMP TABLE probe (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO probe VALUES (1, 'arrow'), (2, 'calendar')")
        rows = conn.execute("SELECT id, name FROM probe ORDER BY id").fetchall()
    assert version is not None
    assert 150000 <= version[0] < 160000
    assert rows == [(1, "arrow"), (2, "calendar")]


def test_redis_set_get_and_ttl(container: Container) -> None:
    key = f"test:probe:{uuid.uuid4().hex}"
    assert container.redis.set(key, "icon-42", ex=60) is True
    assert container.redis.get(key) == b"icon-42"
    assert 0 < container.redis.ttl(key) <= 60
    assert container.redis.delete(key) == 1
    assert container.redis.get(key) is None


def test_kafka_round_trip_through_a_consumer_group(container: Container) -> None:
    topic = f"test.roundtrip.{uuid.uuid4().hex[:12]}"
    group = f"test-group-{uuid.uuid4().hex[:8]}"
    admin = container.kafka_admin()
    admin.create_topics([NewTopic(topic, 1, 1)], timeout_ms=10_000)
    wait_for_topic_leaders(container.settings.kafka_bootstrap, topic, 1)
    producer = KafkaProducer(bootstrap_servers=container.settings.kafka_bootstrap, acks="all")
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=container.settings.kafka_bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=20_000,
    )
    try:
        for n in range(3):
            producer.send(topic, key=f"icon-{n}".encode(), value=f"event-{n}".encode())
        producer.flush(timeout=10)
        received = []
        for message in consumer:
            received.append((message.key, message.value, message.offset))
            if len(received) == 3:
                break
        consumer.commit()
        committed = consumer.committed(TopicPartition(topic, 0))
    finally:
        producer.close()
        consumer.close()
        admin.delete_topics([topic])
        admin.close()
    assert received == [
        (b"icon-0", b"event-0", 0),
        (b"icon-1", b"event-1", 1),
        (b"icon-2", b"event-2", 2),
    ]
    assert committed == 3


def test_opensearch_index_and_search(container: Container) -> None:
    index = f"test-probe-{uuid.uuid4().hex[:12]}"
    client = container.opensearch
    client.indices.create(
        index=index, body={"mappings": {"properties": {"name": {"type": "text"}}}}
    )
    try:
        client.index(index=index, id="a", body={"name": "arrow left"}, refresh="wait_for")
        client.index(index=index, id="b", body={"name": "calendar"}, refresh="wait_for")
        hits = client.search(index=index, body={"query": {"match": {"name": "arrow"}}})["hits"]
    finally:
        client.indices.delete(index=index)
    assert hits["total"]["value"] == 1
    assert [hit["_id"] for hit in hits["hits"]] == ["a"]


def test_opensearch_has_the_analysis_module_the_catalog_needs(container: Container) -> None:
    tokens = container.opensearch.indices.analyze(
        body={
            "tokenizer": {"type": "edge_ngram", "min_gram": 2, "max_gram": 4},
            "text": "arrow",
        }
    )["tokens"]
    assert [token["token"] for token in tokens] == ["ar", "arr", "arro"]


def test_s3_put_get_and_presigned_download(container: Container) -> None:
    bucket = container.settings.s3_bucket_private
    key = f"test/{uuid.uuid4().hex}.svg"
    body = b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1 1"/>'
    container.s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="image/svg+xml")
    try:
        got = container.s3.get_object(Bucket=bucket, Key=key)
        url = container.s3.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=60
        )
        via_url = httpx.get(url, timeout=5)
        tampered = httpx.get(url.replace("Signature=", "Signature=0"), timeout=5)
    finally:
        container.s3.delete_object(Bucket=bucket, Key=key)
    assert got["Body"].read() == body
    assert got["ContentType"] == "image/svg+xml"
    assert via_url.status_code == 200
    assert via_url.content == body
    assert tampered.status_code == 403


def test_stripe_library_creates_a_payment_intent_on_stripe_mock(container: Container) -> None:
    intent = container.stripe.v1.payment_intents.create(
        params={"amount": 1999, "currency": "usd", "payment_method_types": ["card"]},
        options={"idempotency_key": f"test-{uuid.uuid4().hex}"},
    )
    assert intent.object == "payment_intent"
    assert intent.amount == 1999
    assert intent.currency == "usd"
    assert intent.id.startswith("pi_")


def test_stripe_mock_rejects_a_bad_request(container: Container) -> None:
    import stripe

    with pytest.raises(stripe.InvalidRequestError):
        container.stripe.v1.payment_intents.create(params={"currency": "usd"})
