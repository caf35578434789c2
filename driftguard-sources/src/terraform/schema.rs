//! The providers' schemas of a root module (`terraform providers schema -json`), read as the
//! core's [`Arguments`] once per set of locked providers and kept, for the process and in the
//! environment's data folder (`arguments-<key>.json`, for the next `driftguard scan`): the
//! schemas of one provider release never change, and starting the provider to print them
//! takes seconds (the AWS provider's are 14 MB of JSON; its arguments kept, 1,526 resource types, are 0.24 MB).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use driftguard_core::error::chain;
use driftguard_core::terraform::Arguments;

use super::run::Session;

/// The arguments read so far, by [`Session::providers_key`].
static READ: Mutex<Option<HashMap<String, Arc<Arguments>>>> = Mutex::new(None);

/// The arguments of the resource types of `s`'s providers: from the process's cache, else the
/// data folder's, else from `terraform providers schema -json` (after `init`). The error says
/// why they are unknown.
pub(crate) fn arguments(s: &Session<'_>) -> Result<Arc<Arguments>, String> {
    let key = s.providers_key();
    let kept = s.data.join(format!("arguments-{key}.json"));
    let known = READ
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .as_ref()
        .and_then(|m| m.get(&key).cloned());
    if let Some(a) = known {
        // another environment's, read by this process: kept for this one's next process too
        if !kept.exists() {
            if let Ok(b) = serde_json::to_vec(&*a) {
                let _ = std::fs::write(&kept, b);
            }
        }
        return Ok(a);
    }
    let arguments = match std::fs::read(&kept)
        .ok()
        .and_then(|b| serde_json::from_slice::<Arguments>(&b).ok())
    {
        Some(a) => Arc::new(a),
        None => {
            let text = s
                .run(vec!["providers".into(), "schema".into(), "-json".into()])
                .map_err(|e| chain(&s.fail("providers schema", e)))?;
            let arguments = Arc::new(Arguments::from_schema_json(&text)?);
            drop(text);
            // a cache: a folder that cannot be written costs the next process a provider start
            if let Ok(b) = serde_json::to_vec(&*arguments) {
                let _ = std::fs::write(&kept, b);
            }
            arguments
        }
    };
    READ.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get_or_insert_with(HashMap::new)
        .insert(key, Arc::clone(&arguments));
    Ok(arguments)
}
