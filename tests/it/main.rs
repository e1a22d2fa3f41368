//! Integration tests: partway over HTTP against a real redis-server and a
//! real S3-protocol server (moto, which enforces the 5 MiB part minimum),
//! both started by the tests on ephemeral loopback ports. Every upload is read
//! back from S3 and compared byte for byte.

mod access_hook;
mod auth;
mod backpressure;
mod binary;
mod clients;
mod cluster;
mod concurrency;
mod conformance;
mod connections;
mod contract;
mod draft;
mod extensions;
mod faults;
mod health;
mod helpers;
mod hooks;
mod js_client;
mod jwks;
mod load;
mod metrics;
mod protocol;
mod proxy;
mod receiver;
mod redis_store;
mod resume;
mod s3_faults;
mod s3_wire;
mod secrets;
mod servers;
mod tls;
mod tokens;
mod tuspy;
mod uploads;
mod uppy;
