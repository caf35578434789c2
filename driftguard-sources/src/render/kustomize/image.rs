//! Argo CD's image overrides (`spec.source.kustomize.images`): `kustomize edit set image`
//! arguments, read as kustomize reads them (`kustomize/commands/edit/set/setimage.go`, and
//! `api/internal/image` for splitting a reference).

use std::fmt;

/// One image override: the image `name` matched in the objects, and what replaces its name,
/// tag or digest (empty: kept). `*` keeps the value the kustomization already gives.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageOverride {
    /// The image name matched (`nginx`, `ghcr.io/acme/api`), without tag or digest.
    pub name: String,
    /// Its new name.
    pub new_name: String,
    /// Its new tag.
    pub new_tag: String,
    /// Its new digest (`sha256:...`).
    pub digest: String,
}

/// An image override that is not one of the forms kustomize accepts.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not an image override: write `name=newName:tag`, `name=newName@digest`, `name=newName`, `name:tag` or `name@digest`"
)]
pub struct ImageSyntaxError(pub String);

impl ImageOverride {
    /// Reads one override: `name=newName[:tag][@digest]`, `name:tag[@digest]` or
    /// `name@digest`. A bare name (`nginx`) says nothing and is refused, as kustomize refuses
    /// it.
    pub fn parse(arg: &str) -> Result<Self, ImageSyntaxError> {
        let (key, value) = match arg.split_once('=') {
            Some((k, v)) => (Some(k), v),
            None => (None, arg),
        };
        let (name, tag, digest) = split(value);
        if name == arg {
            return Err(ImageSyntaxError(arg.to_owned()));
        }
        let (name, new_name) = match key {
            Some(k) => (k.to_owned(), name.to_owned()),
            None => (name.to_owned(), String::new()),
        };
        Ok(ImageOverride {
            name,
            new_name,
            new_tag: tag.to_owned(),
            digest: digest.to_owned(),
        })
    }

    /// The override as a kustomization's `images:` entry (empty fields left out).
    pub(crate) fn to_entry(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        for (key, value) in [
            ("name", &self.name),
            ("newName", &self.new_name),
            ("newTag", &self.new_tag),
            ("digest", &self.digest),
        ] {
            if !value.is_empty() {
                m.insert(key.into(), value.clone().into());
            }
        }
        m
    }
}

impl fmt::Display for ImageOverride {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if !self.new_name.is_empty() {
            write!(f, "={}", self.new_name)?;
        }
        if !self.new_tag.is_empty() {
            write!(f, ":{}", self.new_tag)?;
        }
        if !self.digest.is_empty() {
            write!(f, "@{}", self.digest)?;
        }
        Ok(())
    }
}

/// Splits an image reference into name, tag and digest, as kustomize's `image.Split`: a `:`
/// or `@` before the first `/` belongs to the registry's host and port.
fn split(image: &str) -> (&str, &str, &str) {
    let slash = match image.find('/') {
        Some(i) if i > 0 => i,
        _ => 0,
    };
    let search = &image[slash..];
    let at = search.find('@').map(|i| i + slash);
    let colon = search.find(':').map(|i| i + slash);
    match (colon, at) {
        (None, None) => (image, "", ""),
        (Some(c), Some(a)) if c < a => (&image[..c], &image[c + 1..a], &image[a + 1..]),
        (_, Some(a)) => (&image[..a], "", &image[a + 1..]),
        (Some(c), None) => (&image[..c], &image[c + 1..], ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(name: &str, new_name: &str, new_tag: &str, digest: &str) -> ImageOverride {
        ImageOverride {
            name: name.into(),
            new_name: new_name.into(),
            new_tag: new_tag.into(),
            digest: digest.into(),
        }
    }

    #[test]
    fn the_forms_of_argo_cd_and_kustomize() {
        let d = "sha256:24a0c4b4a4c0eb97a1aabb8e29f18e917d05abfe1b7a7c07857230879ce7d3d3";
        let cases = [
            (
                "postgres=eu.gcr.io/my-project/postgres:latest",
                image("postgres", "eu.gcr.io/my-project/postgres", "latest", ""),
            ),
            (
                &format!("my-app=my-registry/my-app@{d}"),
                image("my-app", "my-registry/my-app", "", d),
            ),
            (
                &format!("my-app=my-registry/my-app:v1@{d}"),
                image("my-app", "my-registry/my-app", "v1", d),
            ),
            ("node:8.15.0", image("node", "", "8.15.0", "")),
            ("mysql=mariadb", image("mysql", "mariadb", "", "")),
            (&format!("alpine@{d}"), image("alpine", "", "", d)),
            (&format!("alpine:3.19@{d}"), image("alpine", "", "3.19", d)),
            // the registry's port is not a tag
            (
                "localhost:5000/shop/api:1.2",
                image("localhost:5000/shop/api", "", "1.2", ""),
            ),
            (
                "api=registry.example:5000/shop/api",
                image("api", "registry.example:5000/shop/api", "", ""),
            ),
            // `*` keeps what the kustomization gives
            ("nginx=*:1.27", image("nginx", "*", "1.27", "")),
        ];
        for (arg, want) in cases {
            let got = ImageOverride::parse(arg).unwrap_or_else(|e| panic!("{arg}: {e}"));
            assert_eq!(got, want, "{arg}");
            assert_eq!(got.to_string(), *arg, "printed back");
        }
    }

    #[test]
    fn a_bare_name_says_nothing_and_is_refused() {
        for arg in ["nginx", "ghcr.io/acme/api", "localhost:5000/api"] {
            let e = ImageOverride::parse(arg).expect_err(arg);
            assert!(e.to_string().starts_with(&format!("`{arg}` is not")), "{e}");
        }
    }

    #[test]
    fn entries_leave_empty_fields_out() {
        let e = ImageOverride::parse("node:8").expect("valid").to_entry();
        assert_eq!(
            serde_json::Value::Object(e),
            serde_json::json!({"name": "node", "newTag": "8"})
        );
    }
}
