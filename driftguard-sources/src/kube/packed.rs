//! The watch caches' objects, compressed: zstd frames of the compact JSON text, with a
//! dictionary trained on the kind's own objects.
//!
//! Objects of one kind on one cluster repeat each other: the same keys, the same
//! `managedFields` shape, the same labels and images with a few names changed. A zstd
//! dictionary trained on a sample of the kind's first list (as `zstd --train` does) captures
//! what they share, and each object then costs about what makes it different. The dictionary
//! is trained again on each full list (a relist after a lost connection, a `410 Gone`), so it
//! follows the cluster; objects created later are packed with the current one and simply
//! cost more if they look like nothing listed before. Kinds with few objects are packed without
//! a dictionary (zstd on its own). Measured figures are in `docs/scale.md`.
//!
//! Unpacking happens when a scan reads the cache (a full scan, a relist's snapshot), one
//! object at a time; the watch's announcements carry the parsed object and unpack nothing.

use std::cell::RefCell;
use std::sync::Arc;

use driftguard_core::model::PackedText;
use zstd::zstd_safe::{self, CCtx, CDict, DCtx, DDict};

/// The compression level (zstd's default: fast to pack, and unpacking speed does not depend
/// on it).
const LEVEL: i32 = 3;
/// Fewest objects of a kind worth a dictionary of their own.
const MIN_SAMPLES: usize = 64;
/// Most objects a dictionary is trained on (spread over the whole list).
pub(super) const MAX_SAMPLES: usize = 2_000;
/// Largest dictionary (zstd's default for `--train` is 110 KB; the kinds' objects are small
/// and alike, and a smaller dictionary costs less to hold per kind).
const DICT_BYTES: usize = 32 * 1024;

/// A dictionary trained on a kind's objects, prepared for packing and unpacking.
pub(super) struct Dictionary {
    packing: CDict<'static>,
    unpacking: DDict<'static>,
    bytes: usize,
}

impl Dictionary {
    /// Trains a dictionary on `texts` (a spread sample of them); `None` when there are too few
    /// or training fails (the objects are then packed without one).
    pub(super) fn train<'a>(texts: impl ExactSizeIterator<Item = &'a str>) -> Option<Arc<Self>> {
        let n = texts.len();
        if n < MIN_SAMPLES {
            return None;
        }
        let step = n.div_ceil(MAX_SAMPLES);
        let mut data = Vec::new();
        let mut sizes = Vec::new();
        for text in texts.step_by(step) {
            data.extend_from_slice(text.as_bytes());
            sizes.push(text.len());
        }
        let trained = zstd::dict::from_continuous(&data, &sizes, DICT_BYTES).ok()?;
        Some(Arc::new(Dictionary {
            packing: CDict::create(&trained, LEVEL),
            unpacking: DDict::create(&trained),
            bytes: trained.len(),
        }))
    }

    /// The dictionary's own size (bytes).
    pub(super) fn len(&self) -> usize {
        self.bytes
    }
}

/// One object as the cache keeps it: a zstd frame of its compact JSON text.
pub(super) struct Packed {
    frame: Box<[u8]>,
    dictionary: Option<Arc<Dictionary>>,
}

thread_local! {
    static PACKER: RefCell<CCtx<'static>> = RefCell::new(CCtx::create());
    static UNPACKER: RefCell<DCtx<'static>> = RefCell::new(DCtx::create());
}

impl Packed {
    /// Packs `text` with `dictionary` (or without one).
    pub(super) fn pack(text: &str, dictionary: Option<&Arc<Dictionary>>) -> Arc<Packed> {
        let mut frame = Vec::with_capacity(zstd_safe::compress_bound(text.len()));
        let packed = PACKER.with(|cctx| {
            let mut cctx = cctx.borrow_mut();
            match dictionary {
                Some(d) => cctx.compress_using_cdict(&mut frame, text.as_bytes(), &d.packing),
                None => cctx.compress(&mut frame, text.as_bytes(), LEVEL),
            }
        });
        if packed.is_err() {
            // zstd does not fail on a buffer of compress_bound's size; should it ever, the
            // object is packed on its own (and an empty frame, never unpacked, is skipped)
            return Arc::new(Packed {
                frame: zstd::bulk::compress(text.as_bytes(), LEVEL)
                    .unwrap_or_default()
                    .into_boxed_slice(),
                dictionary: None,
            });
        }
        Arc::new(Packed {
            frame: frame.into_boxed_slice(),
            dictionary: dictionary.cloned(),
        })
    }

    /// Bytes held for this object (the frame).
    pub(super) fn len(&self) -> usize {
        self.frame.len()
    }
}

impl PackedText for Packed {
    fn unpack(&self) -> Option<String> {
        let size = zstd_safe::get_frame_content_size(&self.frame).ok()??;
        let mut out = Vec::with_capacity(usize::try_from(size).ok()?);
        UNPACKER
            .with(|dctx| {
                let mut dctx = dctx.borrow_mut();
                match &self.dictionary {
                    Some(d) => dctx.decompress_using_ddict(&mut out, &self.frame, &d.unpacking),
                    None => dctx.decompress(&mut out, &self.frame),
                }
            })
            .ok()?;
        String::from_utf8(out).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(i: usize) -> String {
        format!(
            r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"cm-{i}","namespace":"ns-{}","labels":{{"app":"svc-{}"}}}},"data":{{"LOG_LEVEL":"info","URL":"postgres://db-{i}.internal:5432/svc"}}}}"#,
            i % 7,
            i / 3
        )
    }

    #[test]
    fn a_packed_object_unpacks_to_its_text_with_and_without_a_dictionary() {
        let texts: Vec<String> = (0..500).map(object).collect();
        let dictionary = Dictionary::train(texts.iter().map(String::as_str));
        assert!(dictionary.is_some(), "500 alike objects train a dictionary");
        for d in [dictionary.as_ref(), None] {
            for text in &texts {
                let packed = Packed::pack(text, d);
                assert_eq!(packed.unpack().as_deref(), Some(text.as_str()));
            }
        }
        // an object unlike the sample still round-trips
        let odd = r#"{"kind":"Secretless","data":{"x":"ünïcode ✓"}}"#;
        assert_eq!(
            Packed::pack(odd, dictionary.as_ref()).unpack().as_deref(),
            Some(odd)
        );
    }

    #[test]
    fn alike_objects_cost_less_with_the_dictionary_of_their_kind() {
        let texts: Vec<String> = (0..500).map(object).collect();
        let raw: usize = texts.iter().map(String::len).sum();
        let dictionary = Dictionary::train(texts.iter().map(String::as_str)).expect("trained");
        let alone: usize = texts.iter().map(|t| Packed::pack(t, None).len()).sum();
        let with: usize = texts
            .iter()
            .map(|t| Packed::pack(t, Some(&dictionary)).len())
            .sum();
        assert!(alone < raw, "zstd alone packs: {alone} of {raw}");
        assert!(
            with * 2 < alone,
            "the dictionary halves it: {with} against {alone}"
        );
    }

    #[test]
    fn too_few_objects_train_no_dictionary() {
        let texts: Vec<String> = (0..MIN_SAMPLES - 1).map(object).collect();
        assert!(Dictionary::train(texts.iter().map(String::as_str)).is_none());
    }
}
