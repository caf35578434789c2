//! Indexing: both sides normalized into an [`EnvState`].

use std::borrow::Borrow;

use crate::doc::Doc;
use crate::id::ResourceId;
use crate::ignore::JsonPointer;
use crate::manifest::ManifestError;
use crate::model::{ObjectMeta, RawLive, RawManifest, RawObject};
use crate::normalize::identify;
use crate::ports::{DesiredSet, LiveSnapshot, PackedDesired, Prediction};
use crate::scope::Scopes;

use super::ownership::{claim_prefixes, hpa_target, kind_of, orphan_eligible};
use super::{Engine, EnvState, FastSet};

/// The fields a renderer marked as made anew on every run, as pointers.
fn unstable_pointers(m: &RawManifest) -> Vec<JsonPointer> {
    m.provenance
        .rendered
        .iter()
        .flat_map(|r| &r.unstable)
        .filter_map(|p| JsonPointer::parse(p).ok())
        .collect()
}

impl Engine {
    /// The pointers left out of both sides of `id`: the ignore rules', an HPA's replicas, and
    /// the fields its renderer makes anew on every run.
    pub(crate) fn pointers_in(&self, st: &EnvState, id: &ResourceId) -> Vec<JsonPointer> {
        let mut p = self.pointers(id, &st.hpa_targets);
        if let Some(u) = st.unstable.get(id) {
            p.extend(u.iter().cloned());
        }
        p
    }

    /// Normalizes and indexes both sides. The raw objects are only read: the state keeps
    /// compact normalized copies.
    pub fn index(&self, desired: &DesiredSet, live: &LiveSnapshot) -> EnvState {
        self.index_predicted(desired, live, &[])
    }

    /// [`Engine::index`] comparing with what the API server would make of the desired objects
    /// ([`crate::ports::LiveSource::predict`]'s answers, in any order): see
    /// [`super::predicted`]. Refused predictions leave Git's objects compared; their reasons
    /// join the live errors.
    pub fn index_predicted(
        &self,
        desired: &DesiredSet,
        live: &LiveSnapshot,
        predictions: &[Prediction],
    ) -> EnvState {
        self.index_known(desired, live, predictions, FastSet::default())
    }

    /// [`Engine::index_predicted`] for an environment whose stored records hold open drifts
    /// on `open_drifts` ([`EnvState::open_drifts`]).
    pub fn index_known(
        &self,
        desired: &DesiredSet,
        live: &LiveSnapshot,
        predictions: &[Prediction],
        open_drifts: FastSet<ResourceId>,
    ) -> EnvState {
        let of_kind = |keep: fn(ObjectMeta<'_>) -> bool| -> Vec<&RawObject> {
            desired
                .objects
                .iter()
                .map(|m| &m.object)
                .filter(|o| keep(o.meta()))
                .collect()
        };
        let mut st = self.start_state(
            desired.revision.clone(),
            desired.errors.clone(),
            open_drifts,
            &of_kind(is_owner),
            live,
        );
        let crds = of_kind(is_definition);
        let scopes = learn_scopes(!desired.objects.is_empty(), &crds, live);
        self.index_desired(&mut st, scopes, desired.objects.iter(), predictions, live);
        st.live.reserve(live.objects.len());
        // one parsed object at a time: a compact one is dropped once it is tracked
        for raw in live.objects.iter() {
            self.track_live(&mut st, &raw);
        }
        st
    }

    /// [`Engine::index_known`] consuming both sides, as a full scan does: the desired objects
    /// wait packed as text and each is parsed and let go once it is normalized, each live
    /// object's text once it is tracked, so the peak of a scan is not both sides parsed beside
    /// the index they become.
    pub fn index_consuming(
        &self,
        desired: PackedDesired,
        live: LiveSnapshot,
        predictions: &[Prediction],
        open_drifts: FastSet<ResourceId>,
    ) -> EnvState {
        let PackedDesired {
            revision,
            objects,
            errors,
        } = desired;
        let owners: Vec<RawManifest> = objects.iter_where(is_owner).collect();
        let owners: Vec<&RawObject> = owners.iter().map(|m| &m.object).collect();
        let mut st = self.start_state(revision, errors, open_drifts, &owners, &live);
        let crds: Vec<RawManifest> = objects.iter_where(is_definition).collect();
        let crds: Vec<&RawObject> = crds.iter().map(|m| &m.object).collect();
        let scopes = learn_scopes(!objects.is_empty(), &crds, &live);
        self.index_desired(&mut st, scopes, objects.into_parsed(), predictions, &live);
        let LiveSnapshot { objects, .. } = live;
        st.live.reserve(objects.len());
        for raw in objects.into_parsed() {
            self.track_live(&mut st, &raw);
        }
        st
    }

    /// The state before any object is indexed: what the desired and live owners (an HPA's
    /// target, a StatefulSet's claims) say about the fields others own.
    fn start_state(
        &self,
        revision: Option<crate::model::Revision>,
        errors: Vec<ManifestError>,
        open_drifts: FastSet<ResourceId>,
        desired_owners: &[&RawObject],
        live: &LiveSnapshot,
    ) -> EnvState {
        let env = &self.spec.name;
        let mut st = EnvState {
            revision,
            errors,
            open_drifts,
            ..EnvState::default()
        };
        // desired objects without a namespace are in the default one (live ones never lack it)
        let default_ns = self.spec.default_namespace();
        // only these kinds are parsed here: the other live objects once each, when tracked
        let live_owners: Vec<RawLive> = live.objects.iter_where(is_owner).collect();
        for (raw, ns) in desired_owners
            .iter()
            .map(|o| (*o, Some(default_ns)))
            .chain(live_owners.iter().map(|l| (&l.object, None)))
        {
            match kind_of(raw) {
                Some("HorizontalPodAutoscaler") => {
                    st.hpa_targets.extend(hpa_target(env, raw, ns));
                }
                Some("StatefulSet") => st.claim_prefixes.extend(claim_prefixes(raw, ns)),
                _ => {}
            }
        }
        st
    }

    /// Normalizes the desired objects into `st` (each let go once normalized when `objects`
    /// owns them), then what is known before the live objects are: the managed namespaces,
    /// the kinds orphans are looked for in, the server's predictions, the live errors.
    fn index_desired<M: Borrow<RawManifest>>(
        &self,
        st: &mut EnvState,
        scopes: Scopes,
        objects: impl Iterator<Item = M>,
        predictions: &[Prediction],
        live: &LiveSnapshot,
    ) {
        let env = &self.spec.name;
        let default_ns = self.spec.default_namespace();
        // grown once: a table doubled as it fills leaves the smaller ones behind
        let (least, most) = objects.size_hint();
        st.desired.reserve(most.unwrap_or(least));
        for m in objects {
            let m = m.borrow();
            let result = identify(env, &m.object.0).and_then(|(mut id, api_version)| {
                let namespaced = scopes.namespaced(&id.group, &id.kind);
                if id.namespace.is_none() && namespaced {
                    id.namespace = Some(default_ns.to_owned());
                }
                // kubectl, Helm and the API server ignore the namespace of a cluster-scoped
                // object's manifest: the object is the cluster's one of that name
                if !namespaced {
                    id.namespace = None;
                }
                let mut pointers = self.pointers(&id, &st.hpa_targets);
                let unstable = unstable_pointers(m);
                if !unstable.is_empty() {
                    pointers.extend(unstable.iter().cloned());
                    st.unstable.insert(id.clone(), unstable);
                }
                if let Some(first) = st.desired.get(&id) {
                    return Ok(Err(format!(
                        "duplicate object {id}: also defined at {}",
                        first.provenance
                    )));
                }
                let d = self.normalizer.desired_as(id, api_version, m, &pointers)?;
                st.desired.insert(Box::new(d));
                Ok(Ok(()))
            });
            let message = match result {
                Ok(Ok(())) => continue,
                Ok(Err(duplicate)) => duplicate,
                Err(e) => e.to_string(),
            };
            st.errors.push(ManifestError {
                file: m.provenance.file.clone(),
                line: m.provenance.line,
                field: None,
                message,
            });
        }
        st.managed_namespaces = match &self.spec.managed_namespaces {
            Some(list) => list.iter().cloned().collect(),
            None => st
                .desired
                .keys()
                .filter(|id| id.group.is_empty() && id.kind == "Namespace")
                .map(|id| id.name.clone())
                .collect(),
        };
        st.orphan_kinds = match &self.spec.orphan_kinds {
            Some(list) => list.iter().cloned().collect(),
            None => st.desired.keys().map(ResourceId::group_kind).collect(),
        };
        for p in predictions {
            match p {
                Ok(raw) => self.add_prediction(st, raw),
                Err(why) => st.live_errors.push(format!("server-side diff: {why}")),
            }
        }
        for e in &live.errors {
            st.unknown_kinds.insert(e.kind.clone());
            st.live_errors
                .push(format!("cannot read {}: {}", e.kind, e.message));
        }
    }

    /// Keeps the server's answer for a desired object, projected on Git's fields.
    fn add_prediction(&self, st: &mut EnvState, raw: &RawObject) {
        let Ok((id, _)) = identify(&self.spec.name, &raw.0) else {
            return;
        };
        let Some(d) = st.desired.get(&id) else {
            return;
        };
        let pointers = self.pointers_in(st, &id);
        let Ok(answer) = self
            .normalizer
            .normalize(&self.spec.name, &raw.0, &pointers)
        else {
            return;
        };
        let projected =
            super::predicted::project(&d.object.content.to_value(), &answer.content.to_value());
        st.predicted.insert(id, Doc::from_value(&projected));
    }

    /// Normalizes one live object into `st` if it is tracked. Returns its identity.
    pub fn insert_live(&self, st: &mut EnvState, raw: &RawLive) -> Option<ResourceId> {
        let id = raw.object.meta().id(&self.spec.name);
        self.track_live(st, raw).then_some(id)
    }

    /// [`Engine::insert_live`] without handing the identity back.
    fn track_live(&self, st: &mut EnvState, raw: &RawLive) -> bool {
        let Ok((id, api_version)) = identify(&self.spec.name, &raw.object.0) else {
            return false;
        };
        let desired = st.desired.get(&id);
        if desired.is_none() && !st.orphan_kinds.contains(&id.group_kind()) {
            return false;
        }
        let pointers = self.pointers_in(st, &id);
        // compared once, here, before the content is stored: what an object in sync with Git
        // keeps is its comparison
        let judged =
            self.normalizer
                .live_view_as(
                    id.clone(),
                    api_version,
                    raw,
                    &pointers,
                    |content| match desired {
                        Some(d) => {
                            let predicted = st.predicted.get(&id);
                            let mut cmp = self.compare_with(d, predicted, api_version, content);
                            self.add_unset_changes(d, content, &raw.object.0, &mut cmp);
                            let differs = !cmp.in_sync();
                            (Some(cmp), differs)
                        }
                        None => (None, true),
                    },
                );
        let Ok((mut live, cmp)) = judged else {
            return false;
        };
        match cmp {
            Some(cmp) => {
                // attribution data is kept only when it can be needed: a drift now, or the
                // end of an open one (who wrote the object back)
                if !cmp.in_sync() || st.open_drifts.contains(&id) {
                    self.normalizer
                        .attach_attribution(raw, &pointers, &mut live);
                }
                live.compared = Some(cmp);
            }
            None => {
                if !orphan_eligible(st, &id, &live) {
                    st.live.remove(&id);
                    return false;
                }
                self.normalizer
                    .attach_attribution(raw, &pointers, &mut live);
            }
        }
        st.live.insert(Box::new(live));
        true
    }
}

/// The kinds whose objects say something of others' fields: an HPA owns its target's
/// replicas, a StatefulSet its claims.
fn is_owner(meta: ObjectMeta<'_>) -> bool {
    matches!(meta.kind, "HorizontalPodAutoscaler" | "StatefulSet")
}

/// A custom resource definition: it tells the scope of its kind.
fn is_definition(meta: ObjectMeta<'_>) -> bool {
    meta.kind == "CustomResourceDefinition"
}

/// What the desired definitions and the live objects tell of the scope of kinds; nothing is
/// read when no desired object asks.
fn learn_scopes(any_desired: bool, definitions: &[&RawObject], live: &LiveSnapshot) -> Scopes {
    let mut scopes = Scopes::default();
    if !any_desired {
        return scopes;
    }
    for d in definitions {
        scopes.learn_definition(&d.0);
    }
    live.objects.for_each_meta(|meta| {
        scopes.learn_live(&meta.group_kind(), meta.namespace.is_some());
    });
    for (kind, namespaced) in &live.served {
        scopes.learn_served(kind, *namespaced);
    }
    scopes
}
