//! Upload sizes around the part boundaries × the ways clients split PATCHes.

use crate::helpers::{KIB, MIB, TestApp, data, header_u64};
use reqwest::StatusCode;

#[derive(Debug, Clone, Copy)]
enum Pattern {
    /// The whole file in one PATCH with a Content-Length.
    Single,
    /// PATCHes of this many bytes, each with a Content-Length.
    Chunks(usize),
    /// One PATCH with chunked transfer encoding (no Content-Length).
    Chunked,
}

async fn run(size: usize, pattern: Pattern) {
    let app = TestApp::spawn().await;
    let bytes = data(size, size as u64 ^ 0xA5);
    let url = app.create(Some(size as u64)).await;
    match pattern {
        Pattern::Single => {
            let response = app.patch(&url, 0, bytes.clone()).await;
            assert_eq!(response.status(), StatusCode::NO_CONTENT);
            assert_eq!(
                header_u64(response.headers(), "upload-offset"),
                Some(size as u64)
            );
        }
        Pattern::Chunks(chunk) => {
            let mut offset = 0;
            for piece in bytes.chunks(chunk) {
                let response = app.patch(&url, offset, piece.to_vec()).await;
                assert_eq!(
                    response.status(),
                    StatusCode::NO_CONTENT,
                    "PATCH at {offset}"
                );
                offset += piece.len() as u64;
                assert_eq!(
                    header_u64(response.headers(), "upload-offset"),
                    Some(offset)
                );
            }
        }
        Pattern::Chunked => {
            let response = app
                .patch_chunked(&url, 0, bytes.clone(), 64 * KIB + 3)
                .await;
            assert_eq!(response.status(), StatusCode::NO_CONTENT);
            assert_eq!(
                header_u64(response.headers(), "upload-offset"),
                Some(size as u64)
            );
        }
    }
    assert_eq!(app.offset(&url).await, size as u64);
    app.assert_object(&url, &bytes).await;
    assert_eq!(
        app.open_multipart_uploads().await,
        0,
        "no multipart upload left open"
    );
}

macro_rules! matrix {
    ($($name:ident: $size:expr, $pattern:expr;)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                run($size, $pattern).await;
            }
        )*
    };
}

matrix! {
    empty_single: 0, Pattern::Single;
    empty_chunked: 0, Pattern::Chunked;
    one_byte_single: 1, Pattern::Single;
    one_byte_chunks_1mib: 1, Pattern::Chunks(MIB);
    one_byte_chunked: 1, Pattern::Chunked;
    under_part_single: 5 * MIB - 1, Pattern::Single;
    under_part_chunks_1mib: 5 * MIB - 1, Pattern::Chunks(MIB);
    under_part_chunks_500kib: 5 * MIB - 1, Pattern::Chunks(500 * KIB);
    under_part_chunks_6mib: 5 * MIB - 1, Pattern::Chunks(6 * MIB);
    under_part_chunked: 5 * MIB - 1, Pattern::Chunked;
    over_part_single: 5 * MIB + 1, Pattern::Single;
    over_part_chunks_1mib: 5 * MIB + 1, Pattern::Chunks(MIB);
    over_part_chunks_500kib: 5 * MIB + 1, Pattern::Chunks(500 * KIB);
    over_part_chunks_6mib: 5 * MIB + 1, Pattern::Chunks(6 * MIB);
    over_part_chunked: 5 * MIB + 1, Pattern::Chunked;
    mib17_single: 17 * MIB, Pattern::Single;
    mib17_chunks_1mib: 17 * MIB, Pattern::Chunks(MIB);
    mib17_chunks_500kib: 17 * MIB, Pattern::Chunks(500 * KIB);
    mib17_chunks_6mib: 17 * MIB, Pattern::Chunks(6 * MIB);
    mib17_chunked: 17 * MIB, Pattern::Chunked;
    mib100_single: 100 * MIB, Pattern::Single;
    mib100_chunks_1mib: 100 * MIB, Pattern::Chunks(MIB);
    mib100_chunks_500kib: 100 * MIB, Pattern::Chunks(500 * KIB);
    mib100_chunks_6mib: 100 * MIB, Pattern::Chunks(6 * MIB);
    mib100_chunked: 100 * MIB, Pattern::Chunked;
}
