"""The native local service stack: real PostgreSQL, Redis, Kafka, OpenSearch, S3, stripe-mock
and Mailpit (SMTP)."""
