//! One Redis connection type for a single server and for a Redis Cluster.
//!
//! The state store and the lock speak to [`RedisConn`], which forwards each
//! command to a self-reconnecting connection to one server, or to a cluster
//! connection that routes it by key slot. Every per-upload key carries the
//! upload id as a hash tag, so each Lua script touches one slot; the expiry
//! index and release requests are single-key commands and PUBLISH, which a
//! cluster broadcasts to every node.

use super::store_error;
use crate::upload::ports::StoreError;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use std::time::Duration;

/// A connection to a Redis server or a Redis Cluster.
#[derive(Clone)]
pub enum RedisConn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

impl RedisConn {
    /// Whether this is a Redis Cluster, where one script reaches one slot.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }
}

/// Opens a self-reconnecting connection to one server with bounded
/// timeouts, so a Redis outage turns into prompt errors, not hung requests.
///
/// # Errors
/// Redis not answering at start.
pub async fn connect(client: &redis::Client) -> Result<RedisConn, StoreError> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_millis(500));
    client
        .get_connection_manager_with_config(config)
        .await
        .map(RedisConn::Single)
        .map_err(store_error)
}

/// Connects to a Redis Cluster through any of its `nodes`, with the same
/// bounded timeouts.
///
/// # Errors
/// No node answering, or a malformed node URL.
pub async fn connect_cluster(
    nodes: &[String],
    tls: Option<redis::TlsCertificates>,
) -> Result<RedisConn, StoreError> {
    let mut builder = redis::cluster::ClusterClient::builder(nodes.iter().map(String::as_str))
        .connection_timeout(CONNECT_TIMEOUT)
        .response_timeout(RESPONSE_TIMEOUT)
        .retries(2);
    if let Some(certs) = tls {
        builder = builder.certs(certs);
    }
    let client = builder.build().map_err(store_error)?;
    client
        .get_async_connection()
        .await
        .map(RedisConn::Cluster)
        .map_err(store_error)
}
