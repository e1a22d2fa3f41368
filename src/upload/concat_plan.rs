//! Pure arithmetic of concatenation: which parts of a final upload are copied
//! inside the store and which bytes must pass through partway.
//!
//! A final upload is the partial objects laid end to end. A part can be a
//! server-side copy (UploadPartCopy) of one range of one partial, but every
//! part but the last must reach the store's minimum size. So partials of at
//! least that size are copied, in pieces of at most the largest part size,
//! while smaller partials, and the few bytes needed to bring a run of them up
//! to the minimum, are read and uploaded. At most `min_part_size` bytes pass
//! through partway for each small run; everything else stays in the store.

use super::plan::PartLimits;
use std::ops::Range;
use thiserror::Error;

/// The partials cannot make one multipart upload.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("these partial uploads would need {parts} parts; the store allows {max}")]
pub struct ConcatPlanError {
    pub parts: usize,
    pub max: u32,
}

/// Bytes of one partial, by its position in the final's list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub source: usize,
    pub range: Range<u64>,
}

/// One part of the final upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlannedPart {
    /// A server-side copy of one range.
    Copy(Piece),
    /// Ranges read through partway and uploaded as one part.
    Upload(Vec<Piece>),
}

impl PlannedPart {
    /// The part's size in bytes.
    pub fn size(&self) -> u64 {
        match self {
            Self::Copy(p) => p.range.end - p.range.start,
            Self::Upload(pieces) => pieces.iter().map(|p| p.range.end - p.range.start).sum(),
        }
    }
}

/// Plans the parts of a final upload made of partials of `sizes` bytes.
///
/// # Errors
/// [`ConcatPlanError`] when the result would need more parts than the store
/// allows.
pub fn plan(sizes: &[u64], limits: &PartLimits) -> Result<Vec<PlannedPart>, ConcatPlanError> {
    let min = limits.min_part_size;
    let mut parts = Vec::new();
    let mut buffer: Vec<Piece> = Vec::new();
    let mut buffered = 0;
    for (source, &size) in sizes.iter().enumerate() {
        let mut pos = 0;
        if buffered > 0 {
            // Top the pending bytes up to a full part from this partial.
            let take = (min - buffered).min(size);
            if take > 0 {
                buffer.push(Piece {
                    source,
                    range: 0..take,
                });
                buffered += take;
                pos = take;
            }
            if buffered >= min {
                parts.push(PlannedPart::Upload(std::mem::take(&mut buffer)));
                buffered = 0;
            }
        }
        let rest = size - pos;
        if rest == 0 {
            continue;
        }
        if rest < min {
            buffer.push(Piece {
                source,
                range: pos..size,
            });
            buffered += rest;
            continue;
        }
        // Equal copies of at most the largest part size, each >= min.
        let count = rest.div_ceil(limits.max_part_size);
        let each = rest.div_ceil(count);
        while pos < size {
            let end = (pos + each).min(size);
            parts.push(PlannedPart::Copy(Piece {
                source,
                range: pos..end,
            }));
            pos = end;
        }
    }
    if !buffer.is_empty() {
        parts.push(PlannedPart::Upload(buffer));
    }
    if parts.len() > limits.max_parts as usize {
        return Err(ConcatPlanError {
            parts: parts.len(),
            max: limits.max_parts,
        });
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIMITS: PartLimits = PartLimits {
        min_part_size: 100,
        max_part_size: 1000,
        max_parts: 10_000,
        granularity: 1,
        max_object_size: u64::MAX,
    };

    /// Every byte once and in order, parts within the store's rules.
    fn check(sizes: &[u64]) -> Vec<PlannedPart> {
        let parts = plan(sizes, &LIMITS).expect("plan");
        let mut next = (0, 0);
        let skip_empty = |next: &mut (usize, u64)| {
            while next.0 < sizes.len() && next.1 == sizes[next.0] {
                *next = (next.0 + 1, 0);
            }
        };
        for (i, part) in parts.iter().enumerate() {
            let pieces = match part {
                PlannedPart::Copy(p) => {
                    assert!(part.size() <= LIMITS.max_part_size);
                    vec![p.clone()]
                }
                PlannedPart::Upload(pieces) => pieces.clone(),
            };
            for piece in pieces {
                skip_empty(&mut next);
                assert_eq!((piece.source, piece.range.start), next, "{sizes:?}");
                assert!(piece.range.end > piece.range.start);
                next = (piece.source, piece.range.end);
            }
            if i + 1 < parts.len() {
                assert!(part.size() >= LIMITS.min_part_size, "{sizes:?}: {parts:?}");
            }
        }
        skip_empty(&mut next);
        assert_eq!(next.0, sizes.len(), "{sizes:?}: not every byte planned");
        parts
    }

    #[test]
    fn large_partials_are_copied_small_ones_read() {
        let parts = check(&[250, 250]);
        assert!(parts.iter().all(|p| matches!(p, PlannedPart::Copy(_))));
        let parts = check(&[30, 40, 50]);
        assert_eq!(
            parts.iter().map(PlannedPart::size).collect::<Vec<_>>(),
            [100, 20]
        );
        let parts = check(&[30, 500, 10]);
        // 30 + 70 read, 430 copied, 10 read last.
        assert_eq!(
            parts.iter().map(PlannedPart::size).collect::<Vec<_>>(),
            [100, 430, 10]
        );
        // A partial above the largest part is copied in equal pieces.
        let parts = check(&[2500]);
        assert_eq!(
            parts.iter().map(PlannedPart::size).collect::<Vec<_>>(),
            [834, 834, 832]
        );
        assert!(check(&[]).is_empty());
        assert!(check(&[0, 0]).is_empty());
    }

    proptest! {
        #[test]
        fn every_plan_is_valid(sizes in proptest::collection::vec(
            prop_oneof![0..5u64, 0..150u64, 90..110u64, 0..3000u64], 0..12)) {
            let parts = check(&sizes);
            // Only small runs pass through partway.
            let read: u64 = parts.iter().filter(|p| matches!(p, PlannedPart::Upload(_)))
                .map(PlannedPart::size).sum();
            let runs = parts.iter().filter(|p| matches!(p, PlannedPart::Upload(_))).count() as u64;
            prop_assert!(read <= runs * 2 * LIMITS.min_part_size);
        }
    }
}
