//! The API from its own contract: Schemathesis (PyPI, installed by
//! `scripts/schemathesis/install.sh`) drives a running `driftguard serve` on the demo from the
//! OpenAPI document the server publishes, with every check it has: no 5xx, every status,
//! content type, header and body as the document says, schema-valid requests accepted and
//! invalid ones refused, and authentication enforced on every operation that declares it
//! (`ignored_auth`: the same request without the token, or with a wrong one, must be refused).
//! Afterwards the server still answers and its log holds no panic and no Secret value.

mod util;

use std::process::Command;
use std::time::{Duration, Instant};

use util::demo_copy;
use util::e2e::{free_port, spawn_server};

const TOKEN: &str = "contract-test-token-4b1d";
/// The value of the demo's Secret: in no answer and no log line.
const DEMO_PASSWORD: &str = "demo-only-not-a-real-password";

#[test]
fn the_api_keeps_its_openapi_contract_under_schemathesis() {
    let st = driftguard_test_support::schemathesis();
    let (tmp, demo) = demo_copy();
    let config = demo.join("driftguard.yaml");
    let mut text = std::fs::read_to_string(&config).expect("config");
    // Schemathesis sends every operation without its token and with a wrong one
    // (`ignored_auth`): far more failures than a person makes
    text.push_str("server:\n  tokenEnv: CONTRACT_TOKENS\n  webhookSecretEnv: CONTRACT_HOOK\n  failedCredentialsBurst: 100000\n");
    std::fs::write(&config, text).expect("config written");
    let port = free_port();
    let server = spawn_server(
        &demo,
        &["--config", "driftguard.yaml"],
        &[
            ("CONTRACT_TOKENS", TOKEN),
            ("CONTRACT_HOOK", "hook-secret-77"),
        ],
        port,
        tmp.path().join("serve.log"),
        TOKEN,
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while !matches!(server.get("/api/v1/environments"), Some((200, _))) {
        assert!(
            Instant::now() < deadline,
            "serve did not answer:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // real names for the path parameters part of the time, so that the operations are
    // reached past their 404s
    let st_config = tmp.path().join("schemathesis.toml");
    std::fs::write(
        &st_config,
        r#"
[dictionaries.environments]
values = ["prod", "staging"]
[dictionaries.objects]
values = ["Deployment.apps/shop/api", "ConfigMap/shop/web-config", "Secret/shop/api-credentials"]

[parameters]
env = { dictionary = "environments", probability = 0.7 }
environment = { dictionary = "environments", probability = 0.5 }
object = { dictionary = "objects", probability = 0.5 }

# `object` of the event list needs an environment (the parameter, or `env:` in the reference):
# a dependency between parameters OpenAPI cannot state, so a schema-valid object alone is
# refused there; every other check runs on that operation
[[operations]]
include-path = "/api/v1/events"
checks.positive_data_acceptance.enabled = false

# acknowledging names `episodes` or an `environment` (one of the two), a reason that is not
# blank and an expiry still to come: rules between fields and of the clock that OpenAPI cannot
# state, so a schema-valid body can be refused there; every other check runs on it
[[operations]]
include-path = "/api/v1/acknowledgements"
include-method = "POST"
checks.positive_data_acceptance.enabled = false

# a preview reads two revisions of a Git repository: the demo's environments are folders
# (a clear 400), and a schema-valid revision need not exist (404); every other check runs on it
[[operations]]
include-path = "/api/v1/preview"
include-method = "POST"
checks.positive_data_acceptance.enabled = false
"#,
    )
    .expect("schemathesis config");
    let url = format!("http://127.0.0.1:{port}/api/v1/openapi.json");
    let started = Instant::now();
    let out = Command::new(&st)
        .arg("--config-file")
        .arg(&st_config)
        // every check is on by default (the configuration turns one off for one operation;
        // `--checks` on the command line would override that)
        .args(["run", &url, "--header"])
        .arg(format!("Authorization: Bearer {TOKEN}"))
        .args([
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "40",
            // one worker: CPython 3.11's `ast.parse` is not safe across threads (hypothesis
            // describes lambdas with it: "AST constructor recursion depth mismatch")
            "--workers",
            "1",
            "--seed",
            "20261127",
            "--request-timeout",
            "10",
            "--no-color",
        ])
        .current_dir(tmp.path())
        .env("NO_COLOR", "1")
        .output()
        .expect("schemathesis runs");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "schemathesis took {:.1}s:\n{report}",
        started.elapsed().as_secs_f64()
    );
    assert!(
        out.status.success(),
        "schemathesis found the API off its contract ({}):\n{report}\nserver log:\n{}",
        out.status,
        server.log()
    );
    // it did test every operation of the document (but the document itself, which
    // Schemathesis leaves out)
    let doc = server.json("/api/v1/openapi.json").expect("the document");
    let operations: usize = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .filter(|(path, _)| path.as_str() != "/api/v1/openapi.json")
        .map(|(_, p)| {
            p.as_object().map_or(0, |m| {
                m.keys()
                    .filter(|k| ["get", "post", "put", "patch", "delete"].contains(&k.as_str()))
                    .count()
            })
        })
        .sum();
    assert!(operations >= 10, "{operations} operations");
    assert!(
        report.contains(&format!("Tested: {operations}")),
        "not every one of the {operations} operations was tested:\n{report}"
    );
    // the server is still up, and said nothing it must not
    assert!(matches!(server.get("/healthz"), Some((200, _))));
    let log = server.log();
    assert!(!log.contains("panicked"), "{log}");
    assert!(!log.contains(DEMO_PASSWORD), "a Secret value in the log");
    assert!(
        !report.contains(DEMO_PASSWORD),
        "a Secret value in an answer"
    );
}
