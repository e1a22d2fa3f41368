//! The JSON of a hook request: tusd's `FileInfo` for an upload and
//! `HTTPRequest` for the request that caused it.

use crate::protocol::metadata::Metadata;
use crate::upload::access::Caller;
use crate::upload::model::{Concat, UploadInfo};
use serde_json::{Map, Value, json};

/// An upload as tusd's `FileInfo`. `Storage` names partway and the object
/// key; the bucket is not given out.
pub fn file_info(info: &UploadInfo) -> Value {
    let metadata: Map<String, Value> = info
        .metadata
        .as_deref()
        .and_then(|raw| Metadata::parse(raw.as_bytes()).ok())
        .map(|m| {
            m.pairs()
                .map(|(k, v)| (k.to_owned(), Value::from(String::from_utf8_lossy(v))))
                .collect()
        })
        .unwrap_or_default();
    let partials = match &info.concat {
        Some(Concat::Final { partials, .. }) => {
            Value::from(partials.iter().map(|p| p.to_string()).collect::<Vec<_>>())
        }
        _ => Value::Null,
    };
    json!({
        "ID": info.id.as_str(),
        "Size": info.length.unwrap_or(0),
        "SizeIsDeferred": info.length.is_none(),
        "Offset": info.offset,
        "MetaData": metadata,
        "IsPartial": info.concat == Some(Concat::Partial),
        "IsFinal": info.is_final(),
        "PartialUploads": partials,
        "Storage": { "Type": "partway", "Key": info.object_key.as_str() },
    })
}

/// The request as tusd's `HTTPRequest`: header names in Go's canonical
/// form, each with all its values.
pub fn http_request(caller: &Caller) -> Value {
    let mut header: Map<String, Value> = Map::new();
    for (name, value) in caller.headers() {
        let Ok(value) = value.to_str() else { continue };
        let entry = header
            .entry(canonical(name.as_str()))
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(values) = entry {
            values.push(Value::from(value));
        }
    }
    json!({
        "Method": caller.method(),
        "URI": caller.uri(),
        "RemoteAddr": caller.peer().map(|p| p.to_string()).unwrap_or_default(),
        "Header": header,
    })
}

/// `content-type` as Go writes it: `Content-Type`.
fn canonical(name: &str) -> String {
    name.split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_are_canonical() {
        assert_eq!(canonical("content-type"), "Content-Type");
        assert_eq!(
            canonical("x-http-method-override"),
            "X-Http-Method-Override"
        );
        assert_eq!(canonical("tus-resumable"), "Tus-Resumable");
    }
}
