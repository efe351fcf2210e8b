//! Secrets are files: `secretKeyRef {name, key}` (and annotations of the form
//! `{secretName}/{key}`) name the file `{secrets_dir}/{name}/{key}`, as Kubernetes mounts a
//! secret. Both parts must be one plain path segment: a `/`, `..`, NUL or an empty part could
//! make Herald read a file outside the secrets directory, so it is refused at load with an
//! error naming the field. Errors never carry a secret's value, only its path.

use std::path::{Path, PathBuf};

use super::{ManifestError, SecretKeySelector};

/// A checked reference to one secret file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    pub name: String,
    pub key: String,
}

impl SecretRef {
    /// Checks a `secretKeyRef` found at `field` (e.g. `spec.secretToken.secretKeyRef`).
    pub fn from_selector(field: &str, selector: &SecretKeySelector) -> Result<Self, ManifestError> {
        check_segment(&format!("{field}.name"), &selector.name)?;
        check_segment(&format!("{field}.key"), &selector.key)?;
        Ok(Self {
            name: selector.name.clone(),
            key: selector.key.clone(),
        })
    }

    /// Parses `{secretName}/{key}` (an annotation's value) found at `field`.
    pub fn parse(field: &str, text: &str) -> Result<Self, ManifestError> {
        let Some((name, key)) = text.split_once('/') else {
            return Err(ManifestError::new(
                field,
                format!("expected {{secretName}}/{{key}}, got {text:?}"),
            ));
        };
        check_segment(field, name)?;
        check_segment(field, key)?;
        Ok(Self {
            name: name.to_owned(),
            key: key.to_owned(),
        })
    }

    pub fn path(&self, secrets_dir: &Path) -> PathBuf {
        secrets_dir.join(&self.name).join(&self.key)
    }

    /// Reads the secret's bytes. Blocking (one small file): call it where configuration is
    /// loaded or on the blocking pool.
    #[allow(
        clippy::disallowed_methods,
        reason = "configuration loading: runs before serving, on the loading thread, not in a task"
    )]
    pub fn read(&self, field: &str, secrets_dir: &Path) -> Result<Vec<u8>, ManifestError> {
        let path = self.path(secrets_dir);
        std::fs::read(&path)
            .map_err(|e| ManifestError::new(field, format!("cannot read {}: {e}", path.display())))
    }
}

/// One path segment a secret name or key may be: not empty, not `.` or `..`, no `/`, `\`
/// or NUL. (Kubernetes' own rules are narrower; these are the ones that keep the path inside
/// the secrets directory.)
fn check_segment(field: &str, segment: &str) -> Result<(), ManifestError> {
    let problem = if segment.is_empty() {
        Some("is empty")
    } else if segment == "." || segment == ".." || segment.contains("..") {
        Some("contains `..`")
    } else if segment.contains('/') || segment.contains('\\') {
        Some("contains a path separator")
    } else if segment.contains('\0') {
        Some("contains NUL")
    } else {
        None
    };
    match problem {
        // The name of a secret is not its value: quoting it helps find the manifest's mistake.
        Some(problem) => Err(ManifestError::new(
            field,
            format!(
                "secret name or key {segment:?} {problem}: it must be one file name under --secrets-dir"
            ),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selector(name: &str, key: &str) -> SecretKeySelector {
        SecretKeySelector {
            name: name.into(),
            key: key.into(),
            optional: None,
        }
    }

    #[test]
    fn names_and_keys_that_could_leave_the_secrets_dir_are_refused_naming_the_field() {
        let field = "spec.secretToken.secretKeyRef";
        for (name, key, bad) in [
            ("..", "x", "name"),
            ("gh", "../x", "key"),
            ("a/b", "x", "name"),
            ("gh", "", "key"),
            ("", "x", "name"),
            ("gh", "a\0b", "key"),
            ("gh", "..hidden", "key"),
            ("gh", "a\\b", "key"),
        ] {
            let err = SecretRef::from_selector(field, &selector(name, key)).unwrap_err();
            assert_eq!(err.field, format!("{field}.{bad}"), "{name:?}/{key:?}");
        }
        let ok = SecretRef::from_selector(field, &selector("gh", "token.v2")).unwrap();
        assert_eq!(ok.path(Path::new("/s")), PathBuf::from("/s/gh/token.v2"));
    }

    proptest::proptest! {
        /// Whatever a manifest says, an accepted reference names a file exactly two levels
        /// under the secrets directory: no root, no `..`, no `.`.
        #[test]
        fn an_accepted_reference_stays_inside_the_secrets_dir(
            name in r"[a-z./\\\x00-]{0,6}",
            key in r"[a-z./\\\x00-]{0,6}",
        ) {
            let parsed = SecretRef::parse("f", &format!("{name}/{key}"));
            let selected = SecretRef::from_selector("f", &selector(&name, &key));
            for accepted in [parsed, selected].into_iter().flatten() {
                let path = accepted.path(Path::new("/secrets"));
                let inside = path.strip_prefix("/secrets").unwrap();
                let parts: Vec<_> = inside.components().collect();
                proptest::prop_assert_eq!(parts.len(), 2, "{:?}", path);
                for part in parts {
                    proptest::prop_assert!(
                        matches!(part, std::path::Component::Normal(p) if p != ".." && p != "."),
                        "{:?}", path
                    );
                }
            }
        }
    }

    #[test]
    fn an_annotation_reference_is_name_slash_key() {
        let f = "metadata.annotations.x";
        assert_eq!(
            SecretRef::parse(f, "gh/old").unwrap(),
            SecretRef {
                name: "gh".into(),
                key: "old".into()
            }
        );
        for bad in ["gh", "gh/", "/old", "gh/../x", "../gh/x", "gh/a/b"] {
            assert_eq!(SecretRef::parse(f, bad).unwrap_err().field, f, "{bad:?}");
        }
    }
}
