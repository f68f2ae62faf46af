//! The Kafka backend (arrives with the Kafka issue).
