//! Where history is kept (`store`) and where the Secret key comes from (`secretKey`).

use super::super::{ConfigFile, ResolvedConfig, SecretKeyPlan};
use super::{check_file, Problems};

/// One database at most.
pub(super) fn store(problems: &mut Problems, f: &ConfigFile) {
    if let Some(store) = &f.store {
        if store.sqlite.is_some() && store.mongodb.is_some() {
            problems.add("store", "`sqlite` and `mongodb` are both set: choose one");
        }
    }
}

/// One source of the key: a variable named, or a file that exists.
pub(super) fn secret_key(problems: &mut Problems, f: &ConfigFile, plan: &ResolvedConfig) {
    let Some(k) = &f.secret_key else {
        return;
    };
    match (&k.env, &k.file) {
        (None, None) => problems.add("secretKey", "set `env` (an environment variable) or `file`"),
        (Some(_), Some(_)) => {
            problems.add("secretKey", "`env` and `file` are both set: choose one")
        }
        (Some(v), None) if v.trim().is_empty() => {
            problems.add("secretKey.env", "must not be empty")
        }
        (None, Some(_)) => {
            if let Some(SecretKeyPlan::File(p)) = &plan.secret_key {
                check_file(problems, "secretKey.file", p);
            }
        }
        _ => {}
    }
}
