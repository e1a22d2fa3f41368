//! Pure arithmetic of the global part grid, and the rules a part list must
//! keep before it is completed.
//!
//! An upload's part size `P` is fixed when it is created. Part `n` always
//! covers bytes `[(n-1)·P, n·P)` of the upload, however the client splits its
//! PATCH requests, so every part but the last is exactly `P` bytes, there are
//! never more than [`PartLimits::max_parts`] parts, and the part number of any
//! byte is a pure function of its offset. No I/O happens here; the streaming
//! pipeline in `append` drives a [`Cutter`] and this module is property-tested
//! on its own.

use super::model::PartRecord;
use thiserror::Error;

/// One mebibyte.
pub const MIB: u64 = 1 << 20;

/// The multipart limits of the object store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartLimits {
    /// Smallest size of every part but the last (S3: 5 MiB).
    pub min_part_size: u64,
    /// Largest size of one part (S3: 5 GiB).
    pub max_part_size: u64,
    /// Most parts in one multipart upload (S3: 10,000).
    pub max_parts: u32,
    /// Part sizes are rounded up to a multiple of this (1 MiB in production;
    /// tests shrink it with the other limits).
    pub granularity: u64,
    /// Largest object (S3: 5 TiB).
    pub max_object_size: u64,
}

impl PartLimits {
    /// The limits AWS S3 documents.
    pub const S3: PartLimits = PartLimits {
        min_part_size: 5 * MIB,
        max_part_size: 5 * 1024 * MIB,
        max_parts: 10_000,
        granularity: MIB,
        max_object_size: 5 << 40,
    };
}

/// The part grid cannot hold an upload.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PlanError {
    #[error("upload of {size} bytes exceeds the largest object the store allows ({max} bytes)")]
    TooLarge { size: u64, max: u64 },
}

/// Chooses the part size for an upload of `total` bytes.
///
/// `total` is `Upload-Length`, or for a deferred length the largest size the
/// upload may reach. The result is at least `preferred` and at least
/// `min_part_size`, a multiple of the granularity, and large enough that
/// `total` fits in `max_parts` parts.
///
/// # Errors
/// [`PlanError::TooLarge`] when even the largest part size cannot hold `total`.
pub fn part_size(total: u64, preferred: u64, limits: &PartLimits) -> Result<u64, PlanError> {
    let too_large = PlanError::TooLarge {
        size: total,
        max: limits.max_object_size,
    };
    if total > limits.max_object_size {
        return Err(too_large);
    }
    let needed = total.div_ceil(u64::from(limits.max_parts));
    let size = needed.max(preferred).max(limits.min_part_size);
    let unit = limits.granularity.max(1);
    let size = size
        .div_ceil(unit)
        .checked_mul(unit)
        .ok_or(too_large.clone())?;
    if size > limits.max_part_size {
        return Err(too_large);
    }
    Ok(size)
}

/// The part number that holds byte `offset` of an upload with part size `part_size`.
pub fn part_number(offset: u64, part_size: u64) -> u32 {
    // Offsets are bounded by max_parts · part_size, so this always fits.
    u32::try_from(offset / part_size + 1).unwrap_or(u32::MAX)
}

/// How many bytes of a committed offset sit in the tail, past the last full part.
pub fn tail_len(offset: u64, part_size: u64) -> u64 {
    offset % part_size
}

/// A run of incoming bytes that belongs to a single part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    /// The part these bytes belong to.
    pub part: u32,
    /// How many of the offered bytes go into it.
    pub len: u64,
    /// Whether these bytes complete the part (it reached the part size).
    pub fills_part: bool,
}

/// Walks the part grid as bytes arrive, starting at an upload offset.
#[derive(Debug, Clone)]
pub struct Cutter {
    part_size: u64,
    position: u64,
}

impl Cutter {
    /// A cutter for bytes that start at `offset`.
    pub fn new(part_size: u64, offset: u64) -> Self {
        Self {
            part_size,
            position: offset,
        }
    }

    /// The upload offset of the next byte.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Takes up to `available` bytes: as many as fit in the current part.
    pub fn take(&mut self, available: u64) -> Piece {
        let in_part = self.position % self.part_size;
        let room = self.part_size - in_part;
        let len = available.min(room);
        let piece = Piece {
            part: part_number(self.position, self.part_size),
            len,
            fills_part: len == room,
        };
        self.position += len;
        piece
    }
}

/// A part list that breaks the store's multipart rules.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PartListError {
    #[error("{count} parts, more than {max}")]
    TooMany { count: usize, max: u32 },
    #[error("part {number} at position {position}")]
    OutOfOrder { number: u32, position: usize },
    #[error("part {number} is {size} bytes, below the {min}-byte minimum")]
    TooSmall { number: u32, size: u64, min: u64 },
}

/// Checks the multipart rules on a part list before it is completed.
///
/// Stores accept what AWS rejects (Garage takes a 1 MiB non-last part), so
/// the core checks the list itself: part numbers ascending from 1 without
/// gaps, at most `max_parts`, every part but the last at least
/// `min_part_size`.
///
/// # Errors
/// The first rule broken.
pub fn check_part_list(parts: &[PartRecord], limits: &PartLimits) -> Result<(), PartListError> {
    if parts.len() > limits.max_parts as usize {
        return Err(PartListError::TooMany {
            count: parts.len(),
            max: limits.max_parts,
        });
    }
    for (i, part) in parts.iter().enumerate() {
        let number = part.number.get();
        if number as usize != i + 1 {
            return Err(PartListError::OutOfOrder {
                number,
                position: i + 1,
            });
        }
        if i + 1 < parts.len() && part.size < limits.min_part_size {
            return Err(PartListError::TooSmall {
                number,
                size: part.size,
                min: limits.min_part_size,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn part_size_prefers_the_configured_size() {
        let l = PartLimits::S3;
        assert_eq!(part_size(0, 8 * MIB, &l), Ok(8 * MIB));
        assert_eq!(part_size(100 * MIB, 8 * MIB, &l), Ok(8 * MIB));
        assert_eq!(
            part_size(1, MIB, &l),
            Ok(5 * MIB),
            "never below the minimum"
        );
    }

    #[test]
    fn part_size_grows_to_fit_ten_thousand_parts() {
        let l = PartLimits::S3;
        let five_tib = 5 * 1024 * 1024 * MIB;
        let p = part_size(five_tib, 8 * MIB, &l).expect("5 TiB fits");
        assert_eq!(p % MIB, 0);
        assert!(p * 10_000 >= five_tib);
        assert!((p - MIB) * 10_000 < five_tib, "smallest such size");
        assert!(part_size(five_tib + 1, 8 * MIB, &l).is_err());
    }

    #[test]
    fn cutter_follows_the_grid() {
        let mut c = Cutter::new(10, 7);
        assert_eq!(
            c.take(100),
            Piece {
                part: 1,
                len: 3,
                fills_part: true
            }
        );
        assert_eq!(
            c.take(4),
            Piece {
                part: 2,
                len: 4,
                fills_part: false
            }
        );
        assert_eq!(
            c.take(0),
            Piece {
                part: 2,
                len: 0,
                fills_part: false
            }
        );
        assert_eq!(c.position(), 14);
    }

    /// Replays the PATCH pipeline in memory: each PATCH continues from the
    /// committed offset; full parts leave for "S3", the rest joins the tail;
    /// the tail becomes the last part when the upload completes.
    fn simulate(data: &[u8], patches: &[usize], part_size: u64) -> Vec<Vec<u8>> {
        let mut parts: Vec<Vec<u8>> = Vec::new();
        let mut tail: Vec<u8> = Vec::new();
        let mut offset = 0usize;
        for &len in patches {
            let mut body = &data[offset..offset + len];
            let mut cutter = Cutter::new(part_size, offset as u64);
            let mut pending = Vec::new();
            while !body.is_empty() {
                let piece = cutter.take(body.len() as u64);
                let (now, rest) = body.split_at(piece.len as usize);
                pending.extend_from_slice(now);
                body = rest;
                if piece.fills_part {
                    assert_eq!(piece.part as usize, parts.len() + 1, "parts in order");
                    let mut part = std::mem::take(&mut tail);
                    part.append(&mut pending);
                    parts.push(part);
                }
            }
            tail.append(&mut pending);
            offset += len;
            assert_eq!(tail.len() as u64, tail_len(offset as u64, part_size));
        }
        if !tail.is_empty() {
            parts.push(tail);
        }
        parts
    }

    /// Splits `total` into PATCH sizes, mixing 0- and 1-byte requests in.
    fn splits(total: usize) -> impl Strategy<Value = Vec<usize>> {
        proptest::collection::vec(
            prop_oneof![Just(0usize), Just(1usize), 0usize..200, 0usize..2000],
            0..40,
        )
        .prop_map(move |mut sizes| {
            let mut left = total;
            for s in &mut sizes {
                *s = (*s).min(left);
                left -= *s;
            }
            sizes.push(left);
            sizes
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn any_split_gives_the_same_valid_parts(
            (data, patches) in (0usize..6000).prop_flat_map(|n| {
                (proptest::collection::vec(any::<u8>(), n), splits(n))
            }),
            preferred in 1u64..700,
        ) {
            let limits = PartLimits { min_part_size: 100, max_part_size: 1 << 20, max_parts: 40, granularity: 1, max_object_size: 40 << 20 };
            let p = part_size(data.len() as u64, preferred, &limits).expect("fits");
            let parts = simulate(&data, &patches, p);
            let whole = simulate(&data, &[data.len()], p);
            prop_assert_eq!(&parts, &whole, "independent of how PATCHes split the stream");
            prop_assert!(parts.len() <= limits.max_parts as usize);
            if let Some((_last, rest)) = parts.split_last() {
                for part in rest {
                    prop_assert_eq!(part.len() as u64, p);
                    prop_assert!(part.len() as u64 >= limits.min_part_size);
                }
            }
            prop_assert!(parts.iter().all(|part| !part.is_empty()));
            prop_assert_eq!(parts.concat(), data);
        }

        #[test]
        fn part_size_always_fits(total in 0u64..=(5u64 << 40), preferred_mib in 5u64..200) {
            let l = PartLimits::S3;
            let p = part_size(total, preferred_mib * MIB, &l).expect("within 5 TiB");
            prop_assert!(p >= l.min_part_size && p <= l.max_part_size);
            prop_assert_eq!(p % MIB, 0);
            prop_assert!(total.div_ceil(p) <= u64::from(l.max_parts));
            prop_assert!(part_number(total.saturating_sub(1), p) <= l.max_parts);
        }
    }
}
