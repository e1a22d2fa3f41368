//! The URL of a new upload, as its `Location` header gives it.
//!
//! By default the URL is absolute, built from the request's `Host`, over
//! plain http. Behind a reverse proxy that terminates TLS or rewrites the
//! host, the proxy's `Forwarded` or `X-Forwarded-Proto` / `X-Forwarded-Host`
//! headers give the URL the client used, but only when the request comes
//! from a proxy the operator trusts: anyone else could point Location at a
//! host of their choosing. With `relative_location`, Location is just a path,
//! which every tus client resolves against the URL it posted to.

use super::AppState;
use axum::extract::ConnectInfo;
use axum::extract::Request;
use axum::http::{HeaderMap, header as h};
use std::net::{IpAddr, SocketAddr};

/// A header value safe to put in a URL's authority.
fn clean_host(host: &str) -> Option<&str> {
    let host = host.trim();
    (!host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b)))
    .then_some(host)
}

fn clean_proto(proto: &str) -> Option<&'static str> {
    match proto.trim().to_ascii_lowercase().as_str() {
        "https" => Some("https"),
        "http" => Some("http"),
        _ => None,
    }
}

/// The first value of a possibly comma-separated header.
fn first<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
}

/// `proto` and `host` of the first element of an RFC 7239 `Forwarded`.
fn forwarded(headers: &HeaderMap) -> (Option<&'static str>, Option<&str>) {
    let (mut proto, mut host) = (None, None);
    if let Some(element) = first(headers, "forwarded") {
        for pair in element.split(';') {
            let Some((key, value)) = pair.split_once('=') else {
                continue;
            };
            let value = value.trim().trim_matches('"');
            match key.trim().to_ascii_lowercase().as_str() {
                "proto" => proto = clean_proto(value),
                "host" => host = clean_host(value),
                _ => {}
            }
        }
    }
    (proto, host)
}

/// The peer's address, when the server recorded it.
pub(super) fn peer(request: &Request) -> Option<IpAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// The URL of the upload collection, to which the new id is appended.
pub(super) fn collection_url(app: &AppState, request: &Request) -> String {
    if app.relative_location {
        return app.base_path.to_string();
    }
    let (headers, peer) = (request.headers(), peer(request));
    let mut proto = if app.https { "https" } else { "http" };
    // HTTP/2 carries the host as the URI's authority, not as Host.
    let mut host = headers
        .get(h::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))
        .and_then(clean_host);
    let trusted = peer.is_some_and(|ip| {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        app.trusted_proxies.iter().any(|net| net.contains(&ip))
    });
    if trusted {
        let (fwd_proto, fwd_host) = forwarded(headers);
        if let Some(p) =
            fwd_proto.or_else(|| first(headers, "x-forwarded-proto").and_then(clean_proto))
        {
            proto = p;
        }
        if let Some(h) =
            fwd_host.or_else(|| first(headers, "x-forwarded-host").and_then(clean_host))
        {
            host = Some(h);
        }
    }
    match host {
        Some(host) => format!("{proto}://{host}{}", app.base_path),
        // No usable host: a path, which clients resolve.
        None => app.base_path.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn forwarded_elements() {
        let h = headers(&[(
            "forwarded",
            "for=1.2.3.4;proto=https;host=\"up.example.com\", for=5.6.7.8",
        )]);
        assert_eq!(forwarded(&h), (Some("https"), Some("up.example.com")));
        let h = headers(&[("forwarded", "proto=gopher;host=a/b")]);
        assert_eq!(forwarded(&h), (None, None));
    }

    #[test]
    fn hosts_are_cleaned() {
        assert_eq!(clean_host("example.com:8443"), Some("example.com:8443"));
        assert_eq!(clean_host("[::1]:80"), Some("[::1]:80"));
        assert_eq!(clean_host("evil.com/path"), None);
        assert_eq!(clean_host("a\r\nb"), None);
        assert_eq!(clean_host(""), None);
    }
}
