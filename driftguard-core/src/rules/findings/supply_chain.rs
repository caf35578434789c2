//! Supply-chain findings on a modified object: image tags, digests, registries.

use super::*;

// ------------------------------------------------------------------ images

/// A parsed image reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Image {
    pub(super) registry: String,
    pub(super) repository: String,
    pub(super) tag: Option<String>,
    pub(super) digest: Option<String>,
}

pub(super) fn parse_image(s: &str) -> Image {
    let (rest, digest) = match s.split_once('@') {
        Some((r, d)) => (r, Some(d.to_owned())),
        None => (s, None),
    };
    // a tag is after the last `:` that comes after the last `/`
    let slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[slash..].rfind(':') {
        Some(i) => (&rest[..slash + i], Some(rest[slash + i + 1..].to_owned())),
        None => (rest, None),
    };
    let (registry, repository) = match name.split_once('/') {
        Some((first, path))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first.to_owned(), path.to_owned())
        }
        _ => ("docker.io".to_owned(), name.to_owned()),
    };
    Image {
        registry,
        repository,
        tag,
        digest,
    }
}

impl Image {
    pub(super) fn mutable(&self) -> bool {
        self.digest.is_none()
            && self
                .tag
                .as_deref()
                .is_none_or(|t| MUTABLE_TAGS.iter().any(|m| m.eq_ignore_ascii_case(t)))
    }
}

pub(super) fn image_field(ctx: &mut Ctx<'_>, f: &FieldDiff, segs: &[String]) {
    let who = container_of(segs)
        .map(|(_, n)| format!("container `{n}`"))
        .unwrap_or_else(|| "a container".to_owned());
    let (Some(live), desired) = (
        f.live.as_ref().and_then(Value::as_str),
        f.desired.as_ref().and_then(Value::as_str),
    ) else {
        return;
    };
    let l = parse_image(live);
    let p = &f.path;
    let d = desired.map(parse_image);
    let mut specific = false;
    if l.mutable() && !d.as_ref().is_some_and(Image::mutable) {
        specific = true;
        ctx.add(
            "image-mutable-tag",
            FindingCategory::SupplyChain,
            Severity::High,
            Some(p),
            format!(
                "{who} runs `{live}` in the cluster: a mutable tag, so what runs can change \
                 without any change here"
            ),
        );
    }
    if let Some(d) = &d {
        if d.digest.is_some() && l.digest.is_none() {
            specific = true;
            ctx.add(
                "image-digest-dropped",
                FindingCategory::SupplyChain,
                Severity::High,
                Some(p),
                format!(
                    "{who} runs `{live}` in the cluster without the digest Git pins (`{}`)",
                    desired.unwrap_or_default()
                ),
            );
        }
        if d.registry != l.registry || d.repository != l.repository {
            specific = true;
            ctx.add(
                "image-registry-changed",
                FindingCategory::SupplyChain,
                Severity::High,
                Some(p),
                format!(
                    "{who} pulls from `{}/{}` in the cluster instead of `{}/{}` (Git)",
                    l.registry, l.repository, d.registry, d.repository
                ),
            );
        }
    }
    if !specific {
        ctx.add(
            "image-not-in-git",
            FindingCategory::SupplyChain,
            Severity::Medium,
            Some(p),
            format!(
                "{who} runs `{live}` in the cluster; Git names `{}`: what runs was not \
                 reviewed through Git (a hotfix not written back, or a release not applied)",
                desired.unwrap_or("(absent)")
            ),
        );
    }
}
