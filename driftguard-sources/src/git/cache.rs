//! What a [`Reader`](super::reader::Reader) keeps between loads, reused while the content is
//! unchanged: parsed files by blob id, rendered kustomizations by root tree, renderings by
//! the key of their inputs; and when it forgets them (what the last two loads did not use).

use std::collections::HashMap;
use std::sync::Arc;

use gix::ObjectId;

use crate::render::Rendered;
use crate::tree::select::FileObjects;

/// Parsed files and rendered kustomizations, reused while their content is unchanged.
#[derive(Debug, Default)]
pub(super) struct Caches {
    /// Generation of the last full load.
    pub(super) generation: u64,
    /// Parsed files by blob id, with the generation that last used them.
    pub(super) parsed: gix::hashtable::HashMap<ObjectId, (u64, Arc<FileObjects>)>,
    /// Rendered kustomizations by (root tree, folder).
    pub(super) rendered: HashMap<(ObjectId, String), (u64, Arc<FileObjects>)>,
    /// Renderings of the environment (a chart, a command) by the key of their inputs, with
    /// the generation that last used them.
    pub(super) renders: HashMap<u64, (u64, Arc<Rendered>)>,
    /// Renderings of earlier revisions made for history, with when they were last used.
    pub(super) old_renders: HashMap<u64, (u64, Arc<Rendered>)>,
    /// The clock of `old_renders`.
    pub(super) old_tick: u64,
    /// The newest commit that changed the rendering's inputs, by commit (`None`: not found
    /// within [`MAX_HISTORY_WALK`](super::reader::MAX_HISTORY_WALK) commits).
    pub(super) inputs_commits: HashMap<ObjectId, (u64, Option<ObjectId>)>,
}

impl Caches {
    /// Forgets what the last two loads did not use.
    pub(super) fn forget_unused(&mut self) {
        let keep = self.generation.saturating_sub(1);
        self.parsed.retain(|_, (g, _)| *g >= keep);
        self.rendered.retain(|_, (g, _)| *g >= keep);
        self.renders.retain(|_, (g, _)| *g >= keep);
        self.inputs_commits.retain(|_, (g, _)| *g >= keep);
    }
}
