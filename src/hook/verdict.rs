//! Reading a hook's answer into the core's [`Verdict`], as tusd reads it:
//! `RejectUpload`, `RejectTermination`, `StopUpload`, `ChangeFileInfo.ID`
//! and `.MetaData` (`{}` clears the metadata, null or absent keeps it), and
//! `HTTPResponse`; keys in any case, unknown keys ignored.

use super::client::HookAnswer;
use crate::upload::events::Verdict;
use serde_json::Value;
use std::collections::BTreeMap;

/// The verdict `answer` gives.
pub fn read(answer: &HookAnswer) -> Verdict {
    let change = answer
        .get("ChangeFileInfo")
        .and_then(Value::as_object)
        .map(|c| HookAnswer::from(c.clone()));
    let change_id = change
        .as_ref()
        .and_then(|c| c.get("ID"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let change_metadata = change
        .as_ref()
        .and_then(|c| c.get("MetaData"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect::<BTreeMap<_, _>>()
        });
    Verdict {
        reject_upload: answer.flag("RejectUpload"),
        reject_termination: answer.flag("RejectTermination"),
        stop_upload: answer.flag("StopUpload"),
        change_id,
        change_metadata,
        response: answer.http_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(json: &str) -> HookAnswer {
        let map: serde_json::Map<String, Value> = serde_json::from_str(json).expect("json");
        HookAnswer::from(map)
    }

    #[test]
    fn an_empty_answer_changes_nothing() {
        assert_eq!(read(&answer("{}")), Verdict::default());
    }

    #[test]
    fn rejections_and_changes_are_read_in_any_case() {
        let verdict = read(&answer(
            r#"{"rejectUpload": true, "httpresponse": {"StatusCode": 403, "Body": "quota"},
                "changefileinfo": {"id": "tenant-7.x", "metaData": {"filename": "a.csv", "n": 1}},
                "Unknown": 1}"#,
        ));
        assert!(verdict.reject_upload && !verdict.stop_upload);
        assert_eq!(verdict.change_id.as_deref(), Some("tenant-7.x"));
        let metadata = verdict.change_metadata.expect("metadata");
        assert_eq!(metadata.len(), 1, "non-string values are dropped");
        assert_eq!(metadata["filename"], "a.csv");
        let response = verdict.response.expect("response");
        assert_eq!(
            (response.status, response.body.as_deref()),
            (Some(403), Some("quota"))
        );
    }

    #[test]
    fn null_metadata_keeps_and_empty_metadata_clears() {
        let keep = read(&answer(r#"{"ChangeFileInfo": {"MetaData": null}}"#));
        assert_eq!(keep.change_metadata, None);
        let clear = read(&answer(r#"{"ChangeFileInfo": {"MetaData": {}}}"#));
        assert_eq!(clear.change_metadata, Some(BTreeMap::new()));
    }
}
