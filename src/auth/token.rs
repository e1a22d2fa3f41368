//! Where a request's bearer token is found: `Authorization: Bearer`, or a
//! named cookie, never the query string (a URL ends up in logs, proxies'
//! logs and browser history).

use http::HeaderMap;

/// What the request carries.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Presented<'a> {
    /// A token, from the header or the cookie.
    Token(&'a str),
    /// No token at all.
    Nothing,
    /// Something that cannot be a token: several Authorization headers, or
    /// a value that is not text.
    Garbled(&'static str),
}

/// The token of a request: the `Authorization: Bearer` header first, then
/// the cookie named `cookie`, if any.
pub(crate) fn presented<'a>(headers: &'a HeaderMap, cookie: Option<&str>) -> Presented<'a> {
    let mut authorization = headers.get_all(http::header::AUTHORIZATION).iter();
    if let Some(value) = authorization.next() {
        if authorization.next().is_some() {
            return Presented::Garbled("more than one Authorization header");
        }
        let Ok(value) = value.to_str() else {
            return Presented::Garbled("the Authorization header is not text");
        };
        if let Some(token) = bearer(value) {
            return Presented::Token(token);
        }
    }
    match cookie.and_then(|name| cookie_value(headers, name)) {
        Some(token) if !token.is_empty() => Presented::Token(token),
        _ => Presented::Nothing,
    }
}

/// The token of an `Authorization: Bearer <token>` value (the scheme is
/// case-insensitive, RFC 9110 §11.1).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The value of cookie `name` among the request's `Cookie` headers.
fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim().trim_matches('"'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &[u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                *name,
                HeaderValue::from_bytes(value).expect("a header value"),
            );
        }
        map
    }

    #[test]
    fn the_header_comes_first_then_the_cookie() {
        let both = headers(&[
            ("authorization", b"bearer  abc.def.ghi "),
            ("cookie", b"a=1; pw=cookie.token.x"),
        ]);
        assert_eq!(
            presented(&both, Some("pw")),
            Presented::Token("abc.def.ghi")
        );
        let cookie = headers(&[("cookie", b"a=1"), ("cookie", b"pw=\"c.d.e\"; b=2")]);
        assert_eq!(presented(&cookie, Some("pw")), Presented::Token("c.d.e"));
        assert_eq!(presented(&cookie, None), Presented::Nothing);
        assert_eq!(presented(&cookie, Some("other")), Presented::Nothing);
    }

    #[test]
    fn other_schemes_and_garbage_are_not_tokens() {
        for value in [
            &b"Basic dXNlcjpwYXNz"[..],
            b"Bearer",
            b"Bearer ",
            b"",
            b"token",
        ] {
            let map = headers(&[("authorization", value)]);
            assert_eq!(presented(&map, None), Presented::Nothing, "{value:?}");
        }
        let twice = headers(&[
            ("authorization", b"Bearer a"),
            ("authorization", b"Bearer b"),
        ]);
        assert!(matches!(presented(&twice, None), Presented::Garbled(_)));
        let binary = headers(&[("authorization", b"Bearer \xff\xfe")]);
        assert!(matches!(presented(&binary, None), Presented::Garbled(_)));
    }
}
